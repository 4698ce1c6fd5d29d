"""Bounded numbers: ``confidence: float[0, 1]`` in text, ``OutputField(ge=0, le=1)`` in classes.

Bounds are part of the port type: sent in the reply's JSON schema, checked on replies and inputs, kept
through the IR's JSON, and checked at compile time (a number without bounds into a bounded input is DW020).
"""

from __future__ import annotations

import json
import re
from typing import Annotated

import pytest
from annotated_types import Ge, Le
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from dagwright.agent import BaseAgent
from dagwright.compiler.signature import InputField, OutputField, Signature, SignatureError, as_signature
from dagwright.compiler.types import (
    FLOAT,
    INT,
    TypeConversionError,
    TypeExpr,
    bounded,
    from_json,
    from_python,
    is_assignable,
    parse_type,
    value_misfit,
)
from dagwright.flow import Flow
from dagwright.llm.structured import output_schema, parse_reply, validate_inputs
from dagwright.testing import Fault, OpenAITestServer


class Judged(Signature):
    """Judge the claim."""

    claim: str = InputField()
    confidence: float = OutputField(description="How sure", ge=0, le=1)
    score: int = OutputField(ge=1, le=10)


def test_the_three_spellings_make_one_type() -> None:
    text = as_signature("claim -> confidence: float[0, 1], score: int[1, 10]")
    assert [f.type for f in text.outputs] == [f.type for f in as_signature(Judged).outputs]
    assert from_python(Annotated[float, Field(ge=0, le=1)]) == parse_type("float[0, 1]")
    assert from_python(Annotated[float, Ge(0), Le(1)]) == parse_type("float[0.0, 1.0]")
    assert str(parse_type("int[1, None] | None")) == "int[1, None] | None"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q -> c: float[1, 0]", "the lower bound 1 is above the upper bound 0"),
        ("q -> c: float[0]", "takes two bounds"),
        ("q -> c: float['a', 1]", "must be a number or None"),
        ("q -> c: int[0.5, 2]", "int bounds must be whole numbers"),
    ],
)
def test_bad_bounds_point_at_the_field(text: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        as_signature(text)


def test_bounds_on_what_is_not_a_number_are_an_error() -> None:
    with pytest.raises(SignatureError, match="ge= and le= bound numbers"):

        class Bad(Signature):
            name: str = OutputField(ge=0)

    with pytest.raises(TypeConversionError, match="exclusive bound"):
        from_python(Annotated[float, Field(gt=0)])


def test_the_schema_carries_the_bounds_and_replies_are_checked() -> None:
    spec = as_signature(Judged)
    properties = output_schema(spec)["properties"]
    assert properties["confidence"] == {"type": "number", "minimum": 0, "maximum": 1, "description": "How sure"}
    assert properties["score"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert parse_reply(spec, '{"confidence": 0.5, "score": 3}') == ({"confidence": 0.5, "score": 3}, [])
    outputs, problems = parse_reply(spec, '{"confidence": 1.05, "score": 195840}')
    assert outputs is None
    assert problems == [
        "confidence: Input should be less than or equal to 1: 1.05 is not a number from 0 to 1",
        "score: Input should be less than or equal to 10: 195840 is not a whole number from 1 to 10",
    ]


def test_inputs_are_checked_against_their_bounds() -> None:
    spec = as_signature("level: float[0, 1] -> a")
    assert validate_inputs(spec, {"level": 1}) == {"level": 1}
    with pytest.raises(ValueError, match=r"input 'level' expects float\[0, 1\], got float 1\.5"):
        validate_inputs(spec, {"level": 1.5})
    with pytest.raises(SignatureError, match="does not fit"):
        as_signature("level: float[0, 1] = 2.0 -> a")


def test_an_out_of_range_reply_is_repaired() -> None:
    with OpenAITestServer() as server:
        server.enqueue(Fault(content='{"confidence": 14, "score": 3}'))
        agent = BaseAgent(config={"base_url": server.base_url, "api_key": "k"}, signature=Judged)
        out = agent.run(claim="The sky is green")
        repair = server.requests[1]["messages"][-1]["content"]
    assert 0 <= out["confidence"] <= 1
    assert "confidence: Input should be less than or equal to 1" in repair


def test_assignability_of_bounded_numbers() -> None:
    unit = parse_type("float[0, 1]")
    assert is_assignable(unit, FLOAT).level == "ok"
    assert is_assignable(parse_type("int[0, 1]"), unit).level == "ok"
    assert is_assignable(parse_type("float[0.2, 0.5]"), unit).level == "ok"
    assert is_assignable(FLOAT, unit).level == "warning"
    assert is_assignable(parse_type("float[0, 2]"), unit).level == "warning"
    assert is_assignable(parse_type("Literal[0, 1]"), unit).level == "ok"
    assert is_assignable(parse_type("Literal[0, 5]"), parse_type("int[0, 3]")).level == "error"
    assert is_assignable(unit, INT).level == "error"  # a float is still no int


def test_an_unbounded_float_into_a_bounded_input_is_dw020() -> None:
    flow = Flow("bounds")
    flow.add_function("guess", _guess)
    flow.add_agent("judge", "claim: str, prior: float[0, 1] -> verdict: str")
    flow.connect("guess.output", "judge.prior")
    flow.input("claim")
    flow.input("x")
    [warning] = [d for d in flow.validate() if d.code == "DW020"]
    assert warning.severity == "warning" and warning.node == "judge" and warning.port == "prior"
    assert "guess.output (float) flows into judge.prior (float[0, 1])" in warning.message


def _guess(x: float) -> float:
    return x / 2


@given(
    st.tuples(st.integers(-5, 5), st.integers(-5, 5)).map(sorted),
    st.tuples(st.integers(-5, 5), st.integers(-5, 5)).map(sorted),
    st.integers(-6, 6),
)
def test_a_range_inside_another_takes_only_values_the_other_takes(a: list[int], b: list[int], value: int) -> None:
    inner, outer = TypeExpr("int", bounds=(a[0], a[1])), TypeExpr("int", bounds=(b[0], b[1]))
    if is_assignable(inner, outer).level == "ok" and value_misfit(value, inner) is None:
        assert value_misfit(value, outer) is None
    assert from_json(inner.to_json()) == inner
    assert bounded(INT, a[0], a[1]) == inner


def test_lists_take_length_bounds() -> None:
    class Plan(Signature):
        task: str = InputField()
        steps: list[str] = OutputField(min_length=1, max_length=5)

    text = as_signature("task -> steps: list[str][1, 5]")
    assert as_signature(Plan).outputs[0].type == text.outputs[0].type
    assert str(text.outputs[0].type) == "list[str][1, 5]"
    assert output_schema(text)["properties"]["steps"] == {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "maxItems": 5,
    }
    assert parse_reply(text, '{"steps": []}')[1] == [
        "steps: List should have at least 1 item after validation, not 0: 0 item(s) is not a list[str] of 1 to 5 items"
    ]
    assert is_assignable(text.outputs[0].type, parse_type("list[str]")).level == "ok"
    assert is_assignable(parse_type("list[str]"), text.outputs[0].type).level == "warning"
    with pytest.raises(SignatureError, match="only list"):
        as_signature("q -> a: dict[str, int][1, 2]")


def test_a_confidence_out_of_range_fails_the_vote_by_name() -> None:
    from dagwright import Kaizen

    with OpenAITestServer() as server:
        kaizen = Kaizen(config={"base_url": server.base_url, "api_key": "k"})
        experts = [
            kaizen.create_agent(f"e{i}", signature="question: str -> decision: str, confidence: float") for i in (1, 2)
        ]
        flow = kaizen.create_consensus_workflow(experts, confidence_threshold=0.5)
        assert {d.code for d in flow.validate()} >= {"DW020"}
        server.enqueue(Fault(content='{"decision": "yes", "confidence": 1.5}'))
        result = flow.run(question="q")
    assert not result.success
    assert re.search(r"voter 'e[12]' gave confidence 1\.5, outside \[0, 1\]", result.nodes["vote"].error or "")


# --------------------------------------------------------------------------- string lengths


class Headline(Signature):
    story: str = InputField()
    title: str = OutputField(description="The headline", min_length=5, max_length=40)
    tags: list[str] = OutputField(min_length=1, max_length=3)


def test_strings_take_length_bounds_spelled_as_lists_do() -> None:
    text = as_signature("story -> title: str[5, 40], tags: list[str][1, 3]")
    assert [f.type for f in as_signature(Headline).outputs] == [f.type for f in text.outputs]
    assert from_python(Annotated[str, Field(min_length=5, max_length=40)]) == parse_type("str[5, 40]")
    assert str(parse_type("str[1, None] | None")) == "str[1, None] | None"
    title = text.outputs[0].type
    assert from_json(title.to_json()) == title and title.to_json() == {"kind": "str", "bounds": [5, 40]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q -> a: str[5]", r"takes two bounds, the least and the most characters: str\[1, 280\]"),
        ("q -> a: str[-1, 3]", "a str's length bounds are whole numbers >= 0"),
        ("q -> a: str[1.5, 3]", "a str's length bounds are whole numbers >= 0"),
        ("q -> a: str[9, 3]", "the lower bound 9 is above the upper bound 3"),
    ],
)
def test_bad_string_bounds_point_at_the_field(text: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        as_signature(text)


def test_length_bounds_on_what_has_no_length_are_an_error() -> None:
    with pytest.raises(SignatureError, match="bound the length of a str or a list"):

        class Bad(Signature):
            count: int = OutputField(min_length=1)


def test_the_schema_carries_string_lengths_and_replies_are_checked_by_name() -> None:
    spec = as_signature(Headline)
    title = output_schema(spec)["properties"]["title"]
    assert title == {"type": "string", "minLength": 5, "maxLength": 40, "description": "The headline"}
    assert parse_reply(spec, '{"title": "Rain in Spain", "tags": ["weather"]}')[1] == []
    outputs, problems = parse_reply(spec, '{"title": "Rain", "tags": ["weather"]}')
    assert outputs is None
    assert problems == [
        "title: String should have at least 5 characters: 'Rain' (4 characters) is not a text of 5 to 40 characters"
    ]
    long = "x" * 90
    [problem] = parse_reply(spec, f'{{"title": "{long}", "tags": ["w"]}}')[1]
    assert problem.startswith("title: String should have at most 40 characters: 'xxx") and "(90 characters)" in problem


def test_strict_json_schema_says_string_lengths_in_words() -> None:
    """OpenAI's strict mode refuses minLength / maxLength: they move into the description; json_object keeps them."""
    from dagwright.llm.structured import response_format

    spec = as_signature(Headline)
    strict = response_format(spec, "json_schema")
    assert strict is not None and strict["json_schema"]["strict"] is True
    title = strict["json_schema"]["schema"]["properties"]["title"]
    assert title == {"type": "string", "description": "The headline (a text of 5 to 40 characters)"}
    assert strict["json_schema"]["schema"]["properties"]["tags"]["minItems"] == 1  # strict mode takes those
    loose = response_format(spec, "json_object")
    assert loose is not None and loose["schema"]["properties"]["title"]["maxLength"] == 40


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "prompt"])
def test_a_bounded_text_reply_is_repaired_and_the_instructions_say_the_bounds(mode: str) -> None:
    with OpenAITestServer() as server:
        server.enqueue(Fault(content='{"title": "Rain", "tags": ["weather"]}'))
        config = {"base_url": server.base_url, "api_key": "k", "structured_output": mode}
        out = BaseAgent(config=config, signature=Headline).run(story="It rained all day in Madrid.")
        # Between them (but in prompt mode, which sends no format), the repair went once with a grammar of the
        # lengths, which this server ignores.
        first, repair = server.requests[0]["messages"], server.requests[-1]["messages"]
        grammars = ["grammar" in r for r in server.requests]
        assert grammars == ([False, False] if mode == "prompt" else [False, True, False])
    assert 5 <= len(out["title"]) <= 40 and 1 <= len(out["tags"]) <= 3
    assert "title (a text of 5 to 40 characters)" in first[0]["content"]
    assert "'Rain' (4 characters) is not a text of 5 to 40 characters" in repair[-1]["content"]


def test_a_bounded_text_gets_a_smaller_output_budget() -> None:
    from dagwright.llm.structured import output_budget

    assert output_budget(as_signature("q -> a: str[1, 20]")) < output_budget(as_signature("q -> a: str"))
    assert output_budget(as_signature("q -> a: str[1, None]")) == output_budget(as_signature("q -> a: str"))
    assert output_budget(as_signature("q -> a: list[int][1, 2]")) < output_budget(as_signature("q -> a: list[int]"))


def test_inputs_and_defaults_are_checked_against_string_lengths() -> None:
    spec = as_signature("name: str[1, 8] -> a")
    assert validate_inputs(spec, {"name": "Ada"}) == {"name": "Ada"}
    with pytest.raises(ValueError, match=r"input 'name' expects str\[1, 8\]"):
        validate_inputs(spec, {"name": ""})
    with pytest.raises(SignatureError, match="does not fit"):
        as_signature("name: str[1, 8] = 'far too long' -> a")
    assert (
        value_misfit("far too long", parse_type("str[1, 8]")) == "'far too long' (12 characters) is outside str[1, 8]"
    )


def test_assignability_of_bounded_texts() -> None:
    short = parse_type("str[1, 40]")
    assert is_assignable(short, parse_type("str")).level == "ok"
    assert is_assignable(parse_type("str[5, 10]"), short).level == "ok"
    assert is_assignable(parse_type("str"), short).level == "warning"
    assert is_assignable(parse_type("str[0, 80]"), short).level == "warning"
    assert is_assignable(parse_type("Literal['yes', 'no']"), short).level == "ok"
    assert is_assignable(parse_type("Literal['']"), short).level == "error"
    assert is_assignable(short, parse_type("int[1, 40]")).level == "error"  # a text is still no number


def test_an_unbounded_text_into_a_bounded_input_is_dw020() -> None:
    flow = Flow("lengths")
    flow.add_agent("writer", "topic: str -> draft: str")
    flow.add_agent("tweeter", "draft: str[1, 280] -> tweet: str[1, 280]")
    flow.connect("writer.draft", "tweeter.draft")
    flow.input("topic")
    [warning] = [d for d in flow.validate() if d.code == "DW020"]
    assert warning.node == "tweeter" and warning.port == "draft"
    assert "writer.draft (str) flows into tweeter.draft (str[1, 280])" in warning.message
    assert "a text whose length is outside [1, 280]" in warning.message
    assert "min_length" in (warning.hint or "")
    bounded_flow = Flow("lengths")
    bounded_flow.add_agent("writer", "topic: str -> draft: str[1, 200]")
    bounded_flow.add_agent("tweeter", "draft: str[1, 280] -> tweet: str")
    bounded_flow.connect("writer.draft", "tweeter.draft")
    bounded_flow.input("topic")
    assert not [d for d in bounded_flow.validate() if d.code == "DW020"]


@given(st.integers(0, 6), st.integers(0, 6), st.text(max_size=8))
def test_a_text_fits_its_bounds_exactly_when_its_length_does(lo: int, hi: int, value: str) -> None:
    lo, hi = min(lo, hi), max(lo, hi)
    t = TypeExpr("str", bounds=(lo, hi))
    assert (value_misfit(value, t) is None) == (lo <= len(value) <= hi)
    spec = as_signature(f"q -> a: str[{lo}, {hi}]")
    assert (parse_reply(spec, json.dumps({"a": value}))[1] == []) == (lo <= len(value) <= hi)
