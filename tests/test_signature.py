"""Signatures: the text form, the class form, their errors and normalization."""

from __future__ import annotations

import re
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from strategies import identifiers, json_values, type_exprs

from dagwright.compiler.signature import (
    MISSING,
    FieldSpec,
    InputField,
    OutputField,
    Signature,
    SignatureError,
    SignatureSpec,
    as_signature,
    make_signature,
    parse_signature,
)
from dagwright.compiler.types import (
    ANY,
    BOOL,
    BYTES,
    FLOAT,
    INT,
    NONE,
    STR,
    TypeExpr,
    from_python,
    list_of,
    optional,
    register_type,
    union,
    value_misfit,
)


class Citation(BaseModel):
    url: str
    title: str


class Score:
    """A custom (non-pydantic) class used by name in signatures."""


def _in(name: str, ftype: TypeExpr = STR, default: Any = MISSING) -> FieldSpec:
    return FieldSpec(name, ftype, "input", "", default)


def _out(name: str, ftype: TypeExpr = STR) -> FieldSpec:
    return FieldSpec(name, ftype, "output")


# --------------------------------------------------------------------------- text form


def test_parse_typed_fields() -> None:
    spec = parse_signature("question: str -> answer: str, confidence: float")
    assert spec == SignatureSpec((_in("question"),), (_out("answer"), _out("confidence", FLOAT)))
    assert list(spec.input_fields) == ["question"]
    assert list(spec.output_fields) == ["answer", "confidence"]
    assert spec.output_fields["confidence"].type == FLOAT
    assert spec.input_fields["question"].required
    assert spec.output_fields["answer"].required


def test_untyped_names_are_str() -> None:
    spec = parse_signature("a, b -> c")
    assert spec == SignatureSpec((_in("a"), _in("b")), (_out("c"),))


def test_whitespace_and_newlines_are_free() -> None:
    spec = parse_signature("  question :  str ,\n context: list[ str ]\n->\n answer  ")
    assert spec == SignatureSpec((_in("question"), _in("context", list_of(STR))), (_out("answer"),))


LIT_YES_NO = TypeExpr("literal", values=("yes", "no"))
TYPE_FORMS: list[tuple[str, TypeExpr]] = [
    ("int", INT),
    ("float", FLOAT),
    ("bool", BOOL),
    ("str", STR),
    ("bytes", BYTES),
    ("Any", ANY),
    ("list[str]", list_of(STR)),
    ("List[int]", list_of(INT)),
    ("list", list_of(ANY)),
    ("dict[str, float]", TypeExpr("dict", (STR, FLOAT))),
    ("Dict[str, list[int]]", TypeExpr("dict", (STR, list_of(INT)))),
    ("tuple[int, str]", TypeExpr("tuple", (INT, STR))),
    ("tuple[int, ...]", TypeExpr("tuple", (INT,), variadic=True)),
    ("Tuple[()]", TypeExpr("tuple", ())),
    ("Optional[int]", optional(INT)),
    ("int | None", optional(INT)),
    ("None | int", optional(INT)),
    ("Union[int, str]", union((INT, STR))),
    ("Union[int, str, None]", union((INT, STR, NONE))),
    ("typing.Optional[str]", optional(STR)),
    ("Literal['yes', 'no']", LIT_YES_NO),
    ("Literal[1, -2, True, None]", TypeExpr("literal", values=(1, -2, True, None))),
    ("list[Literal['yes', 'no']] | None", optional(list_of(LIT_YES_NO))),
]


@pytest.mark.parametrize(("text", "expected"), TYPE_FORMS, ids=[t for t, _ in TYPE_FORMS])
def test_every_type_form(text: str, expected: TypeExpr) -> None:
    spec = parse_signature(f"x: {text} -> y: {text}")
    assert spec.inputs[0].type == expected
    assert spec.outputs[0].type == expected


PYTHON_EQUIVALENTS: list[tuple[str, object]] = [
    ("List[int]", typing.List[int]),  # noqa: UP006
    ("Optional[int]", typing.Optional[int]),  # noqa: UP045
    ("Union[int, str]", typing.Union[int, str]),  # noqa: UP007
    ("dict[str, float]", dict[str, float]),
    ("tuple[int, ...]", tuple[int, ...]),
    ("Literal['yes', 'no']", typing.Literal["yes", "no"]),
]


@pytest.mark.parametrize(("text", "annotation"), PYTHON_EQUIVALENTS, ids=[t for t, _ in PYTHON_EQUIVALENTS])
def test_text_types_match_python_annotations(text: str, annotation: object) -> None:
    assert parse_signature(f"x: {text} -> y").inputs[0].type == from_python(annotation)


def test_registered_types_by_name(type_registry: None) -> None:
    register_type(Citation)
    register_type(Score, "Score")
    spec = parse_signature("query -> citations: list[Citation], score: Score | None")
    assert spec.outputs[0].type == list_of(from_python(Citation))
    assert spec.outputs[0].type.args[0].kind == "model"
    assert spec.outputs[0].type.args[0].name == f"{__name__}.Citation"
    assert spec.outputs[1].type == optional(from_python(Score))
    assert spec.outputs[1].type.args[0].kind == "named"


def test_types_mapping_names_custom_types() -> None:
    spec = parse_signature("query -> best: Cite", types={"Cite": Citation})
    assert spec.outputs[0].type == from_python(Citation)
    with pytest.raises(SignatureError, match="unknown type 'Cite'"):
        parse_signature("query -> best: Cite")


def test_registering_a_type_invalidates_the_cache(type_registry: None) -> None:
    with pytest.raises(SignatureError, match="unknown type 'Score'"):
        parse_signature("a -> s: Score")
    register_type(Score)
    assert parse_signature("a -> s: Score").outputs[0].type == from_python(Score)


def test_input_defaults() -> None:
    spec = parse_signature("a: int = 3, b: list[str] = ['x'], c: str | None = None -> out")
    assert [f.default for f in spec.inputs] == [3, ["x"], None]
    assert [f.required for f in spec.inputs] == [False, False, False]
    assert spec.inputs[0] == _in("a", INT, 3)
    assert str(spec) == "a: int = 3, b: list[str] = ['x'], c: str | None = None -> out: str"


def test_parse_results_are_cached() -> None:
    text = "cached_q: str -> cached_a: list[int]"
    assert parse_signature(text) is parse_signature(text)
    types = {"Cite": Citation}
    assert parse_signature("q -> c: Cite", types) is parse_signature("q -> c: Cite", dict(types))


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="a signature string is expected, got int"):
        parse_signature(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- text errors


def _caret_line(err: SignatureError) -> tuple[str, str]:
    """The quoted text line and the caret line of the rendered error."""
    lines = str(err).split("\n")
    return lines[-2], lines[-1]


# (text, message fragment, position, length, field)
ERRORS: list[tuple[str, str, int, int, str | None]] = [
    ("   ", "empty signature", 0, 1, None),
    ("question answer", "missing '->'", 15, 1, None),
    ("a -> b -> c", "more than one '->'", 7, 2, None),
    ("  -> answer", "no input fields before '->'", 2, 2, None),
    ("question ->   ", "no output fields after '->'", 9, 2, None),
    ("value -> value", "field 'value' is both an input and an output", 9, 5, "value"),
    ("text: str -> summary, text", "field 'text' is both an input and an output", 22, 4, "text"),
    ("a: str, a: int -> b", "duplicate input field 'a'", 8, 1, "a"),
    ("q -> b, c: int, b: str", "duplicate output field 'b'", 16, 1, "b"),
    ("q: strr -> a", "unknown type 'strr'", 3, 4, "q"),
    ("q: list[Strr] -> a", "unknown type 'Strr'", 8, 4, "q"),
    ("q: str -> a: dict[str]", "dict takes two type arguments", 13, 9, "a"),
    ("q: Optional -> a", "Optional needs type arguments", 3, 8, "q"),
    ("q: list[int -> a", "'[' is never closed", 7, 1, None),
    ("q: list[int]] -> a", "unmatched ']'", 12, 1, None),
    ("q: int + -> a", "invalid syntax in the input fields", 8, 1, None),
    ("q -> a: 3", "invalid type expression", 8, 1, "a"),
    ("q: 'str' -> a", "a quoted type ('str') is not supported", 3, 5, "q"),
    ("q -> a = 1", "output field 'a' cannot have a default", 9, 1, "a"),
    ("q = foo() -> a", "must be a literal value", 4, 1, "q"),
    ("q = {[1]: 2} -> a", "must be a literal value", 4, 1, "q"),
    ("q = {1, 2} -> a", "must be JSON data", 4, 1, "q"),
    ("q = 1e999 -> a", "must be JSON data", 4, 1, "q"),
    ("*q -> a", "unexpected '*'", 0, 1, None),
    ("q -> \\", "no output fields after '->'", 2, 2, None),
    ("# q -> a", "no input fields before '->'", 4, 2, None),
]


@pytest.mark.parametrize(("text", "fragment", "position", "length", "field"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_point_at_the_position(text: str, fragment: str, position: int, length: int, field: str | None) -> None:
    with pytest.raises(SignatureError) as info:
        parse_signature(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert fragment in err.message
    assert err.text == text
    assert (err.position, err.length, err.field) == (position, length, field)
    quoted, carets = _caret_line(err)
    assert quoted == "    " + text.split("\n")[0]
    assert carets == "    " + " " * position + "^" * max(1, min(length, len(text) - position))


def test_empty_text_has_no_position() -> None:
    with pytest.raises(SignatureError) as info:
        parse_signature("")
    assert info.value.position is None
    assert str(info.value) == "empty signature: expected 'inputs -> outputs'"


def test_error_hints() -> None:
    with pytest.raises(SignatureError) as info:
        parse_signature("q: strr -> a")
    assert info.value.hint == "did you mean 'str'?"
    assert str(info.value).startswith("input field 'q': unknown type 'strr' (did you mean 'str'?)\n")
    with pytest.raises(SignatureError) as info:
        parse_signature("value -> value")
    assert info.value.hint == "rename the output, e.g. 'improved_value'"


def test_error_on_a_later_line_points_into_that_line() -> None:
    text = "question: str,\n  context: lisst[str]\n-> answer"
    with pytest.raises(SignatureError) as info:
        parse_signature(text)
    err = info.value
    assert err.position == text.index("lisst")
    assert str(err).split("\n")[-2:] == ["      context: lisst[str]", "               ^^^^^"]


def test_caret_counts_characters_not_bytes() -> None:
    text = "frage_ä: strr -> antwort"
    with pytest.raises(SignatureError) as info:
        parse_signature(text)
    assert info.value.position == text.index("strr")


def test_arrow_inside_a_literal_is_not_a_separator() -> None:
    spec = parse_signature("q: Literal['->', \"a'->\"] -> a")
    assert spec.inputs[0].type == TypeExpr("literal", values=("->", "a'->"))


# --------------------------------------------------------------------------- class form


class QA(Signature):
    """Answer the question.

    Be brief.
    """

    question: str = InputField(description="User question")
    context: list[str] = InputField(description="Background", default=[])
    answer: str = OutputField(description="Answer")
    confidence: float = OutputField()


def test_class_form_fields() -> None:
    assert list(QA.input_fields) == ["question", "context"]
    assert list(QA.output_fields) == ["answer", "confidence"]
    assert QA.input_fields["question"] == FieldSpec("question", STR, "input", "User question")
    assert QA.input_fields["context"] == FieldSpec("context", list_of(STR), "input", "Background", [])
    assert QA.output_fields["confidence"] == FieldSpec("confidence", FLOAT, "output")
    assert QA.input_fields["question"].required
    assert not QA.input_fields["context"].required
    assert QA.instructions == "Answer the question.\n\nBe brief."


def test_class_form_on_instances() -> None:
    qa = QA()
    assert qa.input_fields == QA.input_fields
    assert list(qa.output_fields) == ["answer", "confidence"]
    assert qa.instructions == QA.instructions


def test_class_fields_are_read_only_mappings() -> None:
    with pytest.raises(TypeError):
        QA.input_fields["new"] = _in("new")  # type: ignore[index]


def test_class_form_equals_text_form() -> None:
    class Plain(Signature):
        question: str = InputField()
        answer: str = OutputField()

    text = parse_signature("question -> answer")
    assert Plain.spec().inputs == text.inputs
    assert Plain.spec().outputs == text.outputs
    assert Plain.spec().name == "test_class_form_equals_text_form.<locals>.Plain"


def test_subclass_extends_base_fields() -> None:
    class Cited(QA):
        """Answer with sources."""

        style: str = InputField(default="short")
        sources: list[str] = OutputField()

    assert list(Cited.input_fields) == ["question", "context", "style"]
    assert list(Cited.output_fields) == ["answer", "confidence", "sources"]
    assert Cited.instructions == "Answer with sources."
    assert list(QA.output_fields) == ["answer", "confidence"]  # the base is untouched


def test_subclass_may_redefine_a_field() -> None:
    class Sure(QA):
        confidence: int = OutputField(description="0-100")

    assert list(Sure.output_fields) == ["answer", "confidence"]
    assert Sure.output_fields["confidence"].type == INT


def test_class_field_without_input_or_output_field() -> None:
    with pytest.raises(
        SignatureError, match=r"field 'answer' of signature .*Bad needs InputField\(\) or OutputField\(\)"
    ):

        class Bad(Signature):
            question: str = InputField()
            answer: str

    with pytest.raises(SignatureError) as info:

        class Bad2(Signature):
            question: str = "plain default"

    assert info.value.field == "question"


def test_class_field_without_annotation() -> None:
    with pytest.raises(SignatureError, match=r"field 'answer' of signature .*Bad has no type annotation") as info:

        class Bad(Signature):
            question: str = InputField()
            answer = OutputField()

    assert info.value.field == "answer"
    assert info.value.hint == "answer: str = OutputField(description='')"


@pytest.mark.parametrize("default", [{1, 2}, object(), float("nan"), {1: "x"}, b"raw"])
def test_class_field_with_non_json_default(default: object) -> None:
    with pytest.raises(SignatureError, match=r"the default of field 'q' of signature .*Bad must be JSON data") as info:

        class Bad(Signature):
            q: str = InputField(default=default)
            a: str = OutputField()

    assert info.value.field == "q"


def test_class_field_on_both_sides() -> None:
    with pytest.raises(SignatureError, match=r"field 'q' of signature .*Both is both an input and an output"):

        class Base(Signature):
            q: str = InputField()

        class Both(Base):
            q: str = OutputField()


def test_class_field_with_unsupported_type() -> None:
    with pytest.raises(SignatureError, match="unsupported type for field 'q'"):

        class Bad(Signature):
            q: typing.Literal[1.5] = InputField()  # type: ignore[valid-type]
            a: str = OutputField()


def test_make_signature() -> None:
    cls = make_signature("q -> a: int", "Count.", name="Count", descriptions={"a": "how many"})
    assert issubclass(cls, Signature)
    assert cls.instructions == "Count."
    assert cls.output_fields["a"] == FieldSpec("a", INT, "output", "how many")
    assert cls.spec().name == "Count"
    with pytest.raises(SignatureError, match="description given for unknown field 'aa'") as info:
        make_signature("q -> a", descriptions={"aa": "x"})
    assert info.value.hint == "did you mean 'a'?"


# --------------------------------------------------------------------------- normalizing


def test_as_signature_accepts_every_form() -> None:
    spec = QA.spec()
    assert as_signature(QA) is spec
    assert as_signature(QA()) is spec
    assert as_signature(spec) is spec
    assert as_signature("question -> answer") == parse_signature("question -> answer")


@pytest.mark.parametrize("bad", [None, 3, ["q -> a"], object, Signature.__new__])
def test_as_signature_rejects_others(bad: object) -> None:
    with pytest.raises(TypeError, match="a signature must be a Signature subclass"):
        as_signature(bad)


# --------------------------------------------------------------------------- properties

default_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)


text_types = type_exprs(max_leaves=4)


@st.composite
def signature_specs(draw: st.DrawFn) -> SignatureSpec:
    """A valid spec that has a text form: distinct names, text-expressible types, trailing defaults."""
    names = draw(st.lists(identifiers, min_size=2, max_size=7, unique=True))
    split = draw(st.integers(1, len(names) - 1))
    in_names, out_names = names[:split], names[split:]
    n_defaults = draw(st.integers(0, len(in_names)))
    inputs = []
    for i, name in enumerate(in_names):
        default = draw(default_values) if i >= len(in_names) - n_defaults else MISSING
        ftype = draw(text_types)
        if default is not MISSING and value_misfit(default, ftype) is not None:
            ftype = ANY  # a default must fit its field's type (tested apart)
        inputs.append(FieldSpec(name, ftype, "input", "", default))
    outputs = [FieldSpec(name, draw(text_types), "output") for name in out_names]
    return SignatureSpec(tuple(inputs), tuple(outputs))


@settings(max_examples=200)
@given(signature_specs())
def test_text_form_round_trips(spec: SignatureSpec) -> None:
    text = str(spec)
    parsed = parse_signature(text)
    assert parsed == spec
    assert [type(f.default) for f in parsed.inputs] == [type(f.default) for f in spec.inputs]
    assert str(parsed) == text


signature_alphabet = st.sampled_from([*"ab_:,->[]()|'\"=. \n1\\", "->", "int", "list", "Literal", "None", "*"])


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=40), st.lists(signature_alphabet, max_size=25).map("".join)))
def test_any_text_parses_or_raises_signature_error(text: str) -> None:
    try:
        spec = parse_signature(text)
    except SignatureError as err:
        assert err.message
        assert err.position is None or 0 <= err.position <= len(text)
        str(err)
    else:
        assert spec.inputs and spec.outputs
        names = [f.name for f in spec.inputs + spec.outputs]
        assert len(names) == len(set(names))


# --------------------------------------------------------------------------- container defaults


@settings(max_examples=200)
@given(json_values, json_values)
def test_specs_with_any_json_defaults_are_hashable_and_equal_exactly_when_the_defaults_are(a: Any, b: Any) -> None:
    first, second = FieldSpec("x", ANY, "input", default=a), FieldSpec("x", ANY, "input", default=b)
    same = a == b and _kinds(a) == _kinds(b)
    assert (first == second) == same
    if same:
        assert hash(first) == hash(second)
    assert first.default is a  # the default stays the value given


def _kinds(value: Any) -> Any:
    """The Python types inside JSON data: ``1 == 1.0 == True`` in Python, not as defaults."""
    if isinstance(value, list):
        return ["list", *map(_kinds, value)]
    if isinstance(value, dict):
        return {k: _kinds(v) for k, v in value.items()}
    return type(value).__name__


def test_list_and_dict_defaults_in_both_forms() -> None:
    spec = parse_signature("topic: str, transcript: list[str] = [], weights: dict[str, float] = {} -> verdict: str")
    assert [f.default for f in spec.inputs] == [MISSING, [], {}]
    assert hash(spec) == hash(
        parse_signature("topic, transcript: list[str] = [], weights: dict[str, float] = {} -> verdict")
    )

    class Judge(Signature):
        """Judge the debate."""

        topic: str = InputField()
        transcript: list[str] = InputField(default=[])
        verdict: str = OutputField()

    assert Judge.input_fields["transcript"].default == []
    assert hash(as_signature(Judge)) == hash(as_signature(Judge))
    assert parse_signature("x: list[int] = [1] -> y") != parse_signature("x: list[int] = [2] -> y")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x: str, n: int = 'abc' -> y",
            "the default of input field 'n' does not fit its type int: 'abc' is not an int",
        ),
        ("x, n: int = True -> y", "the default of input field 'n' does not fit its type int: True is not an int"),
        ("x, t: list[str] = [1] -> y", "does not fit its type list[str]: item 0: 1 is not a str"),
        ("x, m: dict[str, int] = {'a': 'b'} -> y", "does not fit its type dict[str, int]: 'a': 'b' is not an int"),
        ("x, c: Literal['a', 'b'] = 'z' -> y", "'z' is not one of Literal['a', 'b']"),
        ("x, p: tuple[int, str] = [1] -> y", "[1] has 1 items, tuple[int, str] takes 2"),
    ],
)
def test_a_default_must_fit_its_type(text: str, message: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(message)):
        parse_signature(text)


def test_defaults_that_fit() -> None:
    spec = parse_signature(
        "x, f: float = 1, o: int | None = None, t: tuple[int, ...] = [1, 2], a: Any = {'k': [1]} -> y"
    )
    assert [f.default for f in spec.inputs][1:] == [1, None, [1, 2], {"k": [1]}]


def test_a_class_signature_default_must_fit_its_type() -> None:
    with pytest.raises(SignatureError, match=r"the default of field .n. of signature .*Bad does not fit its type int"):

        class Bad(Signature):
            """Bad."""

            n: int = InputField(default="three")
            y: str = OutputField()

        as_signature(Bad)


def test_fields_named_like_schema_keywords_stay_in_the_reply_schema() -> None:
    from dagwright.llm.structured import output_schema, parse_reply

    spec = as_signature("q -> title: str, properties: str, description: str")
    schema = output_schema(spec)
    assert list(schema["properties"]) == ["title", "properties", "description"] == schema["required"]
    assert all(p == {"type": "string"} for p in schema["properties"].values())
    reply = '{"title": "t", "properties": "p", "description": "d"}'
    assert parse_reply(spec, reply) == ({"title": "t", "properties": "p", "description": "d"}, [])
