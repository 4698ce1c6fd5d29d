"""The offline model: deterministic, input-derived replies that validate against any pydantic schema."""

from __future__ import annotations

import datetime
import enum
import itertools
import json
import os
import re
import subprocess
import sys
import uuid
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError, create_model

from dagwright.llm.offline import (
    Completion,
    OfflineModel,
    count_prompt_tokens,
    count_tokens,
    find_schema,
)


class QA(BaseModel):
    answer: str
    confidence: float


def _json_schema_format(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": model.__name__, "schema": model.model_json_schema(), "strict": True},
    }


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- exact replies and token counts -------------------------------------------------------------------


def test_structured_reply_is_pinned() -> None:
    completion = OfflineModel().complete(_user("What is ML?"), response_format=_json_schema_format(QA))
    assert completion == Completion(
        content='{"answer": "answer to \'What is ML?\' (offline 9e44)", "confidence": 0.85}',
        prompt_tokens=10,
        completion_tokens=18,
        model="dagwright-offline",
    )
    assert completion.total_tokens == 28
    assert QA.model_validate_json(completion.content).confidence == 0.85


def test_plain_text_reply_quotes_the_question() -> None:
    completion = OfflineModel().complete(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "question: What is ML?"}]
    )
    assert completion.content == "reply to 'What is ML?' (offline ae12)"
    assert (completion.prompt_tokens, completion.completion_tokens) == (20, 10)


def test_model_name_can_be_given() -> None:
    assert OfflineModel(name="local").complete(_user("hi")).model == "local"
    assert OfflineModel().complete(_user("hi"), model="gpt-4o-mini").model == "gpt-4o-mini"


def test_json_mode_without_schema_still_answers_a_json_object() -> None:
    content = OfflineModel().complete(_user("hi"), response_format={"type": "json_object"}).content
    assert json.loads(content) == {"reply": "reply to 'hi' (offline 897b)"}


def test_token_estimate() -> None:
    assert [count_tokens(text) for text in ("", "a", "abcd", "abcde", "x" * 400)] == [0, 1, 1, 2, 100]
    messages = [{"role": "system", "content": "x" * 10}, {"role": "user", "content": "y" * 3}]
    assert count_prompt_tokens(messages) == 3 + (3 + 4) + (1 + 4)
    parts = [{"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "text", "text": "efgh"}]}]
    assert count_prompt_tokens(parts) == 3 + 3 + 4  # "abcd\nefgh" is 9 characters


# -- excerpts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What is ML?", "What is ML?"),
        ("Answer the question.\n\nquestion: What is ML?\ncontext: none", "What is ML?"),
        ("## Inputs\n\n<question>Why is the sky blue?</question>", "Why is the sky blue?"),
        ('{"question": "Is it safe?", "n": 3}', "Is it safe?"),
        ("Reply in JSON.\n<output_schema>{}</output_schema>", "Reply in JSON."),
        (
            "topic: the long-term economic consequences of remote work for mid-sized cities",
            "the long-term economic consequences...",
        ),
    ],
)
def test_strings_quote_an_excerpt_of_the_last_user_message(text: str, expected: str) -> None:
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
    messages = [{"role": "user", "content": "an earlier question"}, {"role": "assistant", "content": "ok"}]
    messages.append({"role": "user", "content": text})
    reply = json.loads(
        OfflineModel().complete(messages, response_format={"type": "json_object", "schema": schema}).content
    )
    match = re.fullmatch(r"summary for '(.*)' \(offline [0-9a-f]{4}\)", reply["summary"])
    assert match is not None, reply
    assert match.group(1) == expected
    assert len(expected) <= 40


def test_list_items_and_dict_keys_are_readable() -> None:
    class Report(BaseModel):
        sources: list[str]
        scores: dict[str, float]

    reply = Report.model_validate_json(
        OfflineModel().complete(_user("topic: solar panels"), response_format=_json_schema_format(Report)).content
    )
    assert reply.sources[0].startswith("source 1 for 'solar panels' (offline ")
    assert reply.sources[1].startswith("source 2 for 'solar panels' (offline ")
    assert list(reply.scores)[:2] == ["solar", "panels"]
    assert all(0 <= value <= 1 for value in reply.scores.values())


# -- determinism and sensitivity to the input -------------------------------------------------------------


class _Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class _Item(BaseModel):
    name: str
    qty: Annotated[int, Field(ge=1, le=99)]


class _Everything(BaseModel):
    answer: str
    confidence: float
    count: int
    ok: bool
    color: _Color
    mood: Literal["calm", "tense", "glad"]
    items: list[_Item]
    extra: dict[str, int]
    pair: tuple[int, str]
    when: datetime.datetime
    ident: uuid.UUID
    note: str | None = None


_CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from tests.test_offline_model import _Everything, _conversation
from dagwright.llm.offline import OfflineModel
schema = _Everything.model_json_schema()
fmt = {{"type": "json_schema", "json_schema": {{"name": "E", "schema": schema, "strict": True}}}}
print(json.dumps([OfflineModel().complete(_conversation(i), response_format=fmt).content for i in range(5)]))
"""


def _conversation(i: int) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": f"You are agent number {i}."},
        {"role": "user", "content": f"question: what is item {i}?"},
    ]


def test_replies_are_identical_across_processes() -> None:
    fmt = _json_schema_format(_Everything)
    here = [OfflineModel().complete(_conversation(i), response_format=fmt).content for i in range(5)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    replies = []
    for seed in ("1", "987"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD.format(root=root)], capture_output=True, text=True, env=env, check=True
        )
        replies.append(json.loads(out.stdout))
    assert replies[0] == here
    assert replies[1] == here
    for content in here:
        _Everything.model_validate_json(content)


def test_different_inputs_give_different_replies() -> None:
    model = OfflineModel()
    fmt = _json_schema_format(_Everything)
    contents = [model.complete(_conversation(i), response_format=fmt).content for i in range(40)]
    assert len(set(contents)) == 40
    # Only the system message differs: the replies still differ, strings included.
    one = model.complete([{"role": "system", "content": "optimist"}, *_user("Adopt it?")], response_format=fmt)
    two = model.complete([{"role": "system", "content": "skeptic"}, *_user("Adopt it?")], response_format=fmt)
    first, second = json.loads(one.content), json.loads(two.content)
    assert first["answer"] != second["answer"]
    assert first["answer"].startswith("answer to 'Adopt it?' (offline ")
    # The same input again gives the same reply.
    assert model.complete(_conversation(3), response_format=fmt).content == contents[3]


# -- where the schema comes from --------------------------------------------------------------------------


_SCHEMA_A = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
_SCHEMA_B = {"type": "object", "properties": {"b": {"type": "boolean"}}, "required": ["b"]}


def _with_block(schema: Any) -> str:
    return f"Reply with JSON.\n<output_schema>\n{json.dumps(schema)}\n</output_schema>"


def test_find_schema_sources_in_order() -> None:
    prompt = [{"role": "system", "content": _with_block(_SCHEMA_B)}, *_user("go")]
    strict = {"type": "json_schema", "json_schema": {"name": "A", "schema": _SCHEMA_A, "strict": True}}
    assert find_schema(prompt, strict) == _SCHEMA_A
    assert find_schema(prompt, {"type": "json_object", "schema": _SCHEMA_A}) == _SCHEMA_A
    assert find_schema(prompt, None) == _SCHEMA_B
    assert find_schema(prompt, {"type": "text"}) == _SCHEMA_B
    assert find_schema(prompt, {"type": "json_object"}) == _SCHEMA_B
    assert find_schema(_user("go"), None) is None


def test_find_schema_takes_the_last_block() -> None:
    messages = [
        {"role": "system", "content": _with_block(_SCHEMA_A)},
        {"role": "user", "content": _with_block(_SCHEMA_A) + "\nor rather\n" + _with_block(_SCHEMA_B)},
        {"role": "assistant", "content": "noted"},
    ]
    assert find_schema(messages, None) == _SCHEMA_B
    fenced = "<output_schema>\n```json\n" + json.dumps(_SCHEMA_A) + "\n```\n</output_schema>"
    assert find_schema(_user(fenced), None) == _SCHEMA_A


@pytest.mark.parametrize(
    ("messages", "response_format", "error", "message"),
    [
        (_user("<output_schema>{not json</output_schema>"), None, ValueError, "block in message 0 is not valid JSON"),
        (_user("<output_schema>[1]</output_schema>"), None, ValueError, "must hold a JSON object"),
        (_user("x"), {"type": "xml"}, ValueError, "response_format type must be 'text', 'json_object' or"),
        (_user("x"), {"type": "json_schema"}, ValueError, "needs a 'json_schema' object"),
        (_user("x"), {"type": "json_object", "schema": [1]}, ValueError, "response_format['schema'] must be"),
        ("hello", None, TypeError, "messages must be a list of chat messages, got str"),
        ([{"role": "user", "content": "x"}, "oops"], None, TypeError, "message 1 must be a dict"),
        ([{"content": "x"}], None, ValueError, "message 0 has no 'role' string"),
        ([{"role": "user", "content": 3}], None, TypeError, "message 0: 'content' must be a string"),
    ],
)
def test_bad_input_is_named(messages: Any, response_format: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        OfflineModel().complete(messages, response_format=response_format)


def test_bad_schema_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape("$ref '#/$defs/Missing' points to nothing in the schema")):
        OfflineModel().complete(
            _user("x"), response_format={"type": "json_object", "schema": {"$ref": "#/$defs/Missing"}}
        )
    endless = {"$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"]}}}
    endless["$ref"] = "#/$defs/A"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="the schema has no finite instance"):
        OfflineModel().complete(_user("x"), response_format={"type": "json_object", "schema": endless})


# -- schema coverage --------------------------------------------------------------------------------------


class _Tree(BaseModel):
    label: str
    children: list[_Tree] = []


class _Chain(BaseModel):
    value: int
    next: _Chain | None


class _Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class _Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class _Coverage(BaseModel):
    code: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{2,4}$")]
    slug: Annotated[str, Field(pattern=r"^[a-z]+(?:-[a-z]+)*$", max_length=30)]
    short: Annotated[str, Field(min_length=2, max_length=4)]
    long: Annotated[str, Field(min_length=120)]
    tree: _Tree
    chain: _Chain
    pet: Annotated[_Cat | _Dog, Field(discriminator="kind")]
    pets: list[_Cat | _Dog]
    tags: set[str]
    flags: frozenset[bool]
    pick: Annotated[list[Literal["a", "b"]], Field(min_length=1, max_length=2)]
    grid: list[list[int]]
    odd: Annotated[int, Field(gt=10, lt=13, multiple_of=11)]
    tiny: Annotated[float, Field(gt=0.1, lt=0.1000001)]
    big: Annotated[int, Field(ge=10**6)]
    neg: Annotated[int, Field(le=-5)]
    step: Annotated[float, Field(ge=0, le=1, multiple_of=0.25)]
    probability: float
    day: datetime.date
    at: datetime.time
    span: datetime.timedelta
    weights: dict[Literal["x", "y", "z"], Annotated[float, Field(ge=0, le=1)]]
    nothing: None
    anything: Any
    fixed: Literal["only"]
    maybe: int | None = None
    default_only: int = 7


@pytest.mark.parametrize("question", ["What is ML?", "", "x" * 500, "ünïcødé ✓ 'quoted'"])
def test_broad_schema_validates(question: str) -> None:
    content = OfflineModel().complete(_user(question), response_format=_json_schema_format(_Coverage)).content
    reply = _Coverage.model_validate_json(content)
    assert reply.code[3] == "-"
    assert 2 <= len(reply.short) <= 4
    assert reply.odd == 11
    assert reply.fixed == "only"
    assert reply.flags == {False, True}


@st.composite
def _numeric_constraints(draw: st.DrawFn) -> tuple[Any, dict[str, Any]]:
    integer = draw(st.booleans())
    values = st.integers(-1000, 1000) if integer else st.floats(-1e4, 1e4)
    bounds: dict[str, Any] = {}
    lower = draw(st.sampled_from([None, "ge", "gt"]))
    if lower:
        bounds[lower] = draw(values)
    upper = draw(st.sampled_from([None, "le", "lt"]))
    if upper:
        bounds[upper] = draw(values)
    if integer and draw(st.booleans()):
        bounds["multiple_of"] = draw(st.integers(1, 7))
    return (int if integer else float), bounds


def _satisfiable(tp: Any, bounds: dict[str, Any]) -> bool:
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    if tp is float:
        return low is None or high is None or high - low > 1e-6
    start = -3000 if low is None else low
    stop = 3000 if high is None else high
    return any(
        ("gt" not in bounds or n > bounds["gt"])
        and ("lt" not in bounds or n < bounds["lt"])
        and n % bounds.get("multiple_of", 1) == 0
        for n in range(start, stop + 1)
    )


@settings(max_examples=150, deadline=None)
@given(spec=_numeric_constraints(), name=st.sampled_from(["count", "confidence", "score", "amount"]))
def test_numeric_bounds_are_respected(spec: tuple[Any, dict[str, Any]], name: str) -> None:
    tp, bounds = spec
    assume(_satisfiable(tp, bounds))
    fields: dict[str, Any] = {name: (Annotated[tp, Field(**bounds)], ...)}
    model = create_model("Bounded", **fields)
    content = OfflineModel().complete(_user(name), response_format=_json_schema_format(model)).content
    model.model_validate_json(content)


# -- hypothesis: random pydantic models validate in all three schema modes ---------------------------------

_NAMES = [
    "answer", "summary", "confidence", "score", "title", "reasons", "count", "label", "tags", "value", "rating",
    "probability", "notes", "verdict", "steps", "sources", "details", "amount", "flag", "kind",
]  # fmt: skip
_counter = itertools.count()


def _enum_type(values: list[str]) -> Any:
    return enum.Enum(f"Choice{next(_counter)}", {f"m{i}": v for i, v in enumerate(values)})


def _model_type(fields: dict[str, Any]) -> Any:
    spec: dict[str, Any] = {name: (tp, ...) for name, tp in fields.items()}
    return create_model(f"Nested{next(_counter)}", **spec)


_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)


@st.composite
def _bounded_int(draw: st.DrawFn) -> Any:
    low = draw(st.one_of(st.none(), st.integers(-1000, 1000)))
    high = draw(st.one_of(st.none(), st.integers(-1000, 1000).filter(lambda h: low is None or h >= low)))
    return Annotated[int, Field(ge=low, le=high)]


@st.composite
def _bounded_float(draw: st.DrawFn) -> Any:
    low = draw(st.one_of(st.none(), st.floats(-1e6, 1e6)))
    high = draw(st.one_of(st.none(), st.floats(-1e6, 1e6).filter(lambda h: low is None or h > low + 1e-3)))
    return Annotated[float, Field(gt=low, lt=high)]


@st.composite
def _bounded_str(draw: st.DrawFn) -> Any:
    low = draw(st.integers(0, 50))
    high = draw(st.integers(low, 80))
    return Annotated[str, Field(min_length=low, max_length=high)]


_leaves = st.one_of(
    st.sampled_from([str, int, float, bool, datetime.date, datetime.datetime, uuid.UUID, set[str], frozenset[int]]),
    st.lists(st.one_of(_words, st.integers(-5, 5)), min_size=1, max_size=4, unique=True).map(
        lambda values: Literal[tuple(values)]
    ),
    st.lists(_words, min_size=1, max_size=4, unique=True).map(_enum_type),
    _bounded_int(),
    _bounded_float(),
    _bounded_str(),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        children.map(lambda tp: tp | None),
        children.map(lambda tp: list[tp]),  # type: ignore[valid-type]
        children.map(lambda tp: dict[str, tp]),  # type: ignore[valid-type]
        children.map(lambda tp: tuple[tp, ...]),  # type: ignore[valid-type]
        st.lists(children, min_size=1, max_size=3).map(lambda tps: tuple[tuple(tps)]),  # type: ignore[misc]
        st.dictionaries(st.sampled_from(_NAMES), children, min_size=1, max_size=3).map(_model_type),
    )


_types = st.recursive(_leaves, _extend, max_leaves=6)


@st.composite
def _models(draw: st.DrawFn) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=5, unique=True)):
        tp = draw(_types)
        fields[name] = (tp | None, None) if draw(st.booleans()) else (tp, ...)
    model: type[BaseModel] = create_model(f"Random{next(_counter)}", **fields)
    return model


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=_models(), question=st.text(max_size=60), system=st.text(max_size=20))
def test_random_models_validate_in_every_schema_mode(model: type[BaseModel], question: str, system: str) -> None:
    schema = model.model_json_schema()
    offline = OfflineModel()
    strict = {"type": "json_schema", "json_schema": {"name": "Out", "schema": schema, "strict": True}}
    llama = {"type": "json_object", "schema": schema}
    prompted = [{"role": "system", "content": system + "\n" + _with_block(schema)}, *_user(question)]
    plain = [{"role": "system", "content": system}, *_user(question)]
    replies = [
        offline.complete(plain, response_format=strict),
        offline.complete(plain, response_format=llama),
        offline.complete(prompted),
    ]
    for completion in replies:
        try:
            model.model_validate_json(completion.content)
        except ValidationError as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(
                f"{completion.content}\ndoes not validate against\n{json.dumps(schema)}\n{exc}"
            ) from exc
        assert completion.completion_tokens == count_tokens(completion.content) > 0
    # The schema arrived the same way in the first two modes, so the replies are equal.
    assert replies[0].content == replies[1].content
