"""Bounded numbers and texts on servers whose schema grammars do not bound them (llama.cpp's).

A signature's outputs with a bounded number, or a text of bounded length (which OpenAI's strict form says
only in words), get a GBNF grammar of dagwright's own, which keeps each within its bounds. What is checked
here, without a model:

1. the numbers a grammar's number rule accepts are exactly the decimal numerals within the bounds (its
   patterns are read as a Python regex and compared with ``Decimal`` arithmetic);
2. a grammar is written for the whole reply in field order, and only for outputs with such a bound;
3. against the loopback server, over real HTTP with the real ``openai`` client: a server that enforces
   grammars gets one in the repair of a reply out of bounds (a number, or a text whose lengths were said
   only in words), and from then on in every first request; one that ignores or refuses the field is
   remembered and sent none again; a value is never changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dagwright.agent import BaseAgent
from dagwright.compiler.signature import as_signature
from dagwright.llm import client as llm
from dagwright.llm.grammar import GRAMMAR_SCHEMA_COMMENT, Unsupported, number_regex, output_grammar, schema_grammar
from dagwright.testing import Fault, OpenAITestServer

CONSENSUS = "question: str -> decision: Literal['yes', 'no'], confidence: float[0, 1]"
# A JSON number without an exponent: what every numeral a grammar accepts must be.
JSON_NUMERAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


@pytest.fixture(autouse=True)
def _fresh_servers() -> Iterator[None]:
    llm.forget_modes()
    yield
    llm.forget_modes()


# --------------------------------------------------------------------------- numbers within bounds

numerals = st.builds(
    lambda sign, whole, fraction: f"{sign}{whole}{'.' + fraction if fraction is not None else ''}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just(0), st.integers(1, 10**6), st.integers(1, 120)),
    st.none() | st.text("0123456789", min_size=1, max_size=6),
)
bounds = st.none() | st.decimals(-1000, 1000, places=3, allow_nan=False, allow_infinity=False).map(
    lambda d: float(d) if d != d.to_integral_value() else int(d)
)


def within(numeral: str, low: Any, high: Any, integer: bool) -> bool:
    value = Decimal(numeral)
    if integer and "." in numeral:
        return False
    return (low is None or value >= Decimal(str(low))) and (high is None or value <= Decimal(str(high)))


def ordered(low: Any, high: Any) -> bool:
    return low is None or high is None or Decimal(str(low)) <= Decimal(str(high))


@given(numerals, bounds, bounds, st.booleans())
@example("1.5", 0, 1, False)
@example("1.0000", 0, 1, False)
@example("0.9999", 0, 1, False)
@example("-0", 0, 1, False)
@example("-0.0", 0, 1, False)
@example("10.25", -2.5, 10.25, False)
@example("10.251", -2.5, 10.25, False)
@example("-2.50", -2.5, 10.25, False)
@example("-2.501", -2.5, 10.25, False)
@example("100", 1, 100, True)
@example("101", 1, 100, True)
@example("7", 6.5, 7.5, True)
@example("3.14159", 3.14, 3.15, False)
@example("999", 998, None, True)
@example("1000", 998, None, True)
@example("-5", None, -3, False)
def test_a_number_rule_accepts_exactly_the_numerals_within_its_bounds(
    numeral: str, low: Any, high: Any, integer: bool
) -> None:
    if not ordered(low, high) or (low is None and high is None):
        return
    try:
        pattern = re.compile(number_regex(low, high, integer=integer))
    except Unsupported:
        # Only an integer range with no whole number in it (e.g. 6.5 to 6.7) has no rule.
        assert integer and low is not None and high is not None
        return
    assert bool(pattern.fullmatch(numeral)) == within(numeral, low, high, integer), (numeral, low, high)


@given(bounds, bounds, st.booleans(), st.data())
def test_every_numeral_a_number_rule_accepts_is_json_and_within_bounds(
    low: Any, high: Any, integer: bool, data: st.DataObject
) -> None:
    if not ordered(low, high) or (low is None and high is None):
        return
    try:
        regex = number_regex(low, high, integer=integer)
    except Unsupported:
        return
    numeral = data.draw(st.from_regex(f"\\A(?:{regex})\\Z"))
    assert JSON_NUMERAL.fullmatch(numeral), numeral
    assert within(numeral, low, high, integer), (numeral, low, high)


def test_an_empty_or_unusable_range_has_no_rule() -> None:
    with pytest.raises(Unsupported, match=r"no whole number is from 6\.5 to 6\.7"):
        number_regex(6.5, 6.7, integer=True)
    with pytest.raises(Unsupported, match="no number is from 2 to 1"):
        number_regex(2, 1, integer=False)
    with pytest.raises(Unsupported, match="more than 40 digits"):
        number_regex(0, 1e300, integer=False)
    with pytest.raises(Unsupported, match="a bound must be a number"):
        number_regex("0", 1, integer=False)


# --------------------------------------------------------------------------- whole grammars


def test_a_grammar_covers_the_reply_in_field_order_and_keeps_the_schema_in_its_first_line() -> None:
    grammar = output_grammar(as_signature(CONSENSUS))
    assert grammar is not None
    first, *rules = grammar.splitlines()
    assert first.startswith(GRAMMAR_SCHEMA_COMMENT)
    assert json.loads(first[len(GRAMMAR_SCHEMA_COMMENT) :])["properties"]["confidence"]["maximum"] == 1
    text = "\n".join(rules)
    assert text.index('"\\"decision\\""') < text.index('"\\"confidence\\""')
    assert '("\\"yes\\"" | "\\"no\\"")' in text
    # 0 to 1: 0 with any fraction, 1 with only zeros, and JSON's negative zero.
    number = (
        'output-confidence-number ::= (("0" ("." [0-9] ([0-9])*)? | "1" ("." "0" ("0")*)?) '
        '| "-" ("0" "." "0" ("0")* | "0"))'
    )
    assert number in text
    # Every rule used is defined.
    defined = {line.split(" ::= ")[0] for line in rules}
    used = set(
        re.findall(r"(?<![\"\w\[-])([a-z][a-z0-9-]*)(?![\w\"\]-])", " ".join(r.split(" ::= ", 1)[1] for r in rules))
    )
    assert used - {"u"} <= defined


def test_only_outputs_with_a_bounded_number_or_text_get_a_grammar() -> None:
    assert output_grammar(as_signature("question: str -> answer: str, n: int, tags: list[str][1, 3]")) is None
    text = output_grammar(as_signature("question: str -> answer: str[5, 60], n: int"))
    assert text is not None and 'output-answer-string ::= "\\"" char{5,60} "\\""' in text
    assert output_grammar(as_signature("question: str -> scores: list[float[0, 10]][1, 3]")) is not None
    assert output_grammar(as_signature("question: str -> score: int[1, 5] | None")) is not None


def test_each_kind_of_output_has_its_rule() -> None:
    spec = as_signature(
        "q: str -> answer: str[5, 60], items: list[int[0, 9]][1, 3], m: dict[str, float[0, 1]], "
        "t: tuple[int, str], o: float[0, 1] | None, flag: bool"
    )
    grammar = output_grammar(spec)
    assert grammar is not None
    assert 'output-answer-string ::= "\\"" char{5,60} "\\""' in grammar
    assert 'output-items-list ::= "[" ws output-items-item-number (ws "," ws output-items-item-number){0,2} ws "]"' in (
        grammar
    )
    assert "output-m-map ::=" in grammar and "output-t-tuple ::=" in grammar
    assert "(output-m-value-number | null)" in grammar
    assert '"\\"flag\\"" ws ":" ws boolean' in grammar


def test_what_no_grammar_is_written_for_is_said() -> None:
    with pytest.raises(Unsupported, match="optional properties"):
        schema_grammar({"type": "object", "properties": {"a": {"type": "number", "maximum": 1}}, "required": []})
    with pytest.raises(Unsupported, match="is not local"):
        schema_grammar({"$ref": "https://example.com/schema"})


# --------------------------------------------------------------------------- against the loopback server


def agent(server: OpenAITestServer, signature: str = CONSENSUS, **config: Any) -> BaseAgent:
    settings = {"provider": "openai", "base_url": server.base_url, "api_key": "k", "max_retries": 0, **config}
    return BaseAgent(config=settings, signature=signature, name="expert")


def sent(server: OpenAITestServer) -> list[str]:
    """What each request carried: a grammar, or its response format's type (``-`` for none)."""
    out = []
    for body in server.requests:
        fmt = body.get("response_format")
        out.append("grammar" if "grammar" in body else fmt["type"] if fmt else "-")
        assert not ("grammar" in body and fmt), "a grammar goes in place of the response format"
    return out


def test_a_server_that_enforces_grammars_gets_one_in_the_repair_then_in_every_request() -> None:
    with OpenAITestServer(grammars="enforce", ignores_bounds=1) as server:
        expert = agent(server)
        first = expert.execute(question="Is tea healthy?")
        assert first.success, first.error
        assert 0 <= first.data["confidence"] <= 1
        assert sent(server) == ["json_schema", "grammar"]
        repair = server.requests[1]["messages"][-1]["content"]
        assert "confidence: Input should be less than or equal to 1: 1.5 is not a number from 0 to 1" in repair
        assert llm.grammar_support(expert.config.settings()) is True
        second = expert.execute(question="Is coffee healthy?")
        assert second.success and sent(server)[2:] == ["grammar"]


def test_the_llama_cpp_python_path_json_object_then_grammar() -> None:
    with OpenAITestServer(grammars="enforce", ignores_bounds=1, reject_json_schema=True) as server:
        expert = agent(server)
        result = expert.execute(question="Is tea healthy?")
        assert result.success, result.error
        assert sent(server) == ["json_schema", "json_object", "grammar"]
        assert result.metadata["structured_output"] == "json_object"


def test_a_server_that_refuses_the_field_is_repaired_without_it_and_remembered() -> None:
    with OpenAITestServer(grammars="refuse", ignores_bounds=1) as server:
        expert = agent(server)
        result = expert.execute(question="Is tea healthy?")
        assert result.success, result.error
        assert sent(server) == ["json_schema", "grammar", "json_schema"]
        assert llm.grammar_support(expert.config.settings()) is False
        server.enqueue(Fault(content='{"decision": "yes", "confidence": 1.5}'))
        again = expert.execute(question="Is coffee healthy?")
        # Out of bounds once more, repaired without a grammar this time: the value is never clamped.
        assert again.success and sent(server)[3:] == ["json_schema", "json_schema"]


def test_a_server_that_ignores_the_field_is_asked_again_with_the_response_format_and_remembered() -> None:
    with OpenAITestServer(grammars="ignore", ignores_bounds=1) as server:
        expert = agent(server)
        result = expert.execute(question="Is tea healthy?")
        # The grammar went unheeded (the reply is prose): the repair is sent again with its response format.
        assert result.success, result.error
        assert sent(server) == ["json_schema", "grammar", "json_schema"]
        assert llm.grammar_support(expert.config.settings()) is False
        server.enqueue(*[Fault(content='{"decision": "yes", "confidence": 1.5}')] * 2)
        again = expert.execute(question="Is coffee healthy?")
        assert not again.success and "1.5 is not a number from 0 to 1" in (again.error or "")
        assert sent(server)[3:] == ["json_schema", "json_schema"]


SHORT = "question: str -> answer: str[5, 60]"


def test_a_text_past_lengths_said_only_in_words_is_repaired_under_a_grammar_that_keeps_them() -> None:
    # llama-server takes OpenAI's strict json_schema, whose lengths are said in the description, which its
    # grammar does not read: the model writes past them, and the repair's grammar keeps the length.
    with OpenAITestServer(grammars="enforce", ignores_bounds=1) as server:
        writer = agent(server, SHORT)
        first = writer.execute(question="What is tea?")
        assert first.success, first.error
        assert 5 <= len(first.data["answer"]) <= 60
        assert sent(server) == ["json_schema", "grammar"]
        schema = server.requests[0]["response_format"]["json_schema"]["schema"]
        assert "maxLength" not in schema["properties"]["answer"]
        assert "char{5,60}" in server.requests[1]["grammar"]
        assert "answer: String should have at most 60 characters" in server.requests[1]["messages"][-1]["content"]
        assert llm.grammar_support(writer.config.settings()) is True
        second = writer.execute(question="What is coffee?")
        assert second.success and sent(server)[2:] == ["grammar"]


def test_a_text_length_in_the_schema_needs_no_grammar() -> None:
    # json_object carries minLength / maxLength in its schema, which llama.cpp's grammar keeps.
    with OpenAITestServer(grammars="enforce", ignores_bounds=5, reject_json_schema=True) as server:
        result = agent(server, SHORT).execute(question="What is tea?")
        assert result.success, result.error
        assert sent(server) == ["json_schema", "json_object"]


def test_openai_refuses_the_grammar_of_a_text_past_its_lengths_once() -> None:
    with OpenAITestServer(grammars="refuse", ignores_bounds=1) as server:
        writer = agent(server, SHORT)
        result = writer.execute(question="What is tea?")
        assert result.success, result.error
        assert sent(server) == ["json_schema", "grammar", "json_schema"]
        assert llm.grammar_support(writer.config.settings()) is False
        assert writer.execute(question="What is coffee?").success and sent(server)[3:] == ["json_schema"]


def test_openai_s_own_api_is_never_sent_a_grammar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    for base_url in (None, "https://api.openai.com/v1"):
        assert llm.grammar_support(llm.LLMSettings("openai", "gpt-4o-mini", base_url=base_url)) is False
    assert llm.grammar_support(llm.LLMSettings("openai", "m", base_url="http://127.0.0.1:8080/v1")) is None


def test_no_grammar_without_bounded_numbers_in_prompt_mode_or_with_a_fixed_mode_refusal() -> None:
    with OpenAITestServer(grammars="enforce", ignores_bounds=5) as server:
        plain = agent(server, "question: str -> answer: str, n: int")
        assert plain.execute(question="Is tea healthy?").success
        assert sent(server) == ["json_schema"]
        prompt = agent(server, structured_output="prompt")
        result = prompt.execute(question="Is tea healthy?")
        assert sent(server)[1:] == ["-", "-"] and not result.success


def test_the_test_server_options_are_checked() -> None:
    with pytest.raises(ValueError, match="grammars must be one of 'enforce', 'ignore', 'refuse', got 'on'"):
        OpenAITestServer(grammars="on")
    with pytest.raises(ValueError, match="ignores_bounds must be a number of replies >= 0, got -1"):
        OpenAITestServer(ignores_bounds=-1)
