"""Bounded numbers: ``confidence: float[0, 1]`` in text, ``OutputField(ge=0, le=1)`` in classes.

Bounds are part of the port type: sent in the reply's JSON schema, checked on replies and inputs, kept
through the IR's JSON, and checked at compile time (a number without bounds into a bounded input is DW020).
"""

from __future__ import annotations

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
