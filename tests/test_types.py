"""Port types: parsing, JSON form and every assignability rule of ``is_assignable``."""

from __future__ import annotations

import enum
import itertools
import json
import pickle
import re
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from strategies import NAMED, fitting_values, literal_values, model, type_exprs, type_like_json

from dagwright.compiler.types import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    NONE,
    STR,
    ModelField,
    TypeExpr,
    TypeSyntaxError,
    from_json,
    from_python,
    is_assignable,
    list_of,
    optional,
    parse_type,
    register_type,
    union,
    value_misfit,
)

# --------------------------------------------------------------------------- the rules, one by one

RULES: list[tuple[str, str, str]] = [
    # numbers
    ("int", "float", "ok"),
    ("bool", "int", "ok"),
    ("bool", "float", "ok"),
    ("float", "int", "error"),
    ("int", "bool", "error"),
    ("str", "int", "error"),
    ("bytes", "str", "error"),
    ("str", "bytes", "error"),
    # None and optionals
    ("int", "int | None", "ok"),
    ("int", "float | None", "ok"),
    ("None", "int | None", "ok"),
    ("int | None", "int", "warning"),
    ("Optional[str]", "str", "warning"),
    ("int | None", "float", "warning"),
    ("None", "str", "error"),
    ("str | None", "int", "error"),
    # unions
    ("int | str", "int | str | None", "ok"),
    ("int | str", "str | int", "ok"),
    ("int | str", "int", "error"),
    ("bool | int", "float", "ok"),
    # containers
    ("list[int]", "list[float]", "ok"),
    ("list[float]", "list[int]", "error"),
    ("list[str]", "str", "error"),
    ("dict[str, int]", "dict[str, float]", "ok"),
    ("dict[str, float]", "dict[str, int]", "error"),
    ("dict[int, str]", "dict[str, str]", "error"),
    ("list[int | None]", "list[int]", "warning"),
    ("tuple[int, str]", "tuple[float, str]", "ok"),
    ("tuple[int, str]", "tuple[int]", "error"),
    ("tuple[int, bool]", "tuple[float, ...]", "ok"),
    ("tuple[()]", "tuple[str, ...]", "ok"),
    ("tuple[int, ...]", "tuple[int, int]", "error"),
    ("tuple[int, ...]", "tuple[float, ...]", "ok"),
    ("list[int]", "tuple[int, ...]", "error"),
    # Any
    ("list[dict[str, bytes]]", "Any", "ok"),
    ("Any", "int", "ok"),
    ("Any | None", "int", "ok"),
    # literals
    ("Literal['a']", "str", "ok"),
    ("Literal['a', 'b']", "str", "ok"),
    ("Literal[1, True]", "int", "ok"),
    ("Literal[1]", "float", "ok"),
    ("Literal[1]", "str", "error"),
    ("str", "Literal['a']", "error"),
    ("int", "Literal[1, 2]", "error"),
    ("Literal['a', 'b']", "Literal['a', 'b', 'c']", "ok"),
    ("Literal['a', 'z']", "Literal['a', 'b']", "error"),
    ("Literal[True]", "Literal[1]", "error"),
    ("Literal['a', None]", "str", "warning"),
    ("Literal['a', None]", "str | None", "ok"),
    ("Literal[None]", "None", "ok"),
    ("Literal[None]", "str", "error"),
    ("None", "Literal['a', None]", "ok"),
    ("Literal['a'] | None", "Literal['a', None]", "ok"),
    ("Literal['a', 1]", "str | int", "ok"),
    ("Literal['a', 1]", "str", "error"),
    ("Literal['a', 'b']", "Literal['a'] | Literal['b']", "ok"),
    ("list[Literal['a', 'b']]", "list[str]", "ok"),
]


@pytest.mark.parametrize(("src", "dst", "level"), RULES, ids=[f"{s} -> {d}" for s, d, _ in RULES])
def test_rule(src: str, dst: str, level: str) -> None:
    result = is_assignable(parse_type(src), parse_type(dst))
    assert result.level == level
    assert bool(result) is (level != "error")
    assert result.ok is (level != "error")
    if level != "ok":
        assert result.reason
    else:
        assert result.reason == ""


EXACT_REASONS: list[tuple[str, str, str]] = [
    ("float", "int", "float is not assignable to int: the value may have a fractional part"),
    ("int | None", "int", "int | None may be None but int does not accept None"),
    ("list[str]", "str", "list[str] is not assignable to str: a container is not text"),
    (
        "list[float]",
        "list[int]",
        "list item: float into int: float is not assignable to int: the value may have a fractional part",
    ),
    (
        "str",
        "Literal['a']",
        "str is not assignable to Literal['a']: any str may not be one of the allowed values; "
        "declare the producing field as Literal['a']",
    ),
    (
        "Literal['a', 'z']",
        "Literal['a', 'b']",
        "Literal['a', 'z'] is not assignable to Literal['a', 'b']: 'z' not allowed",
    ),
    ("tuple[int, str]", "tuple[int]", "tuple[int, str] is not assignable to tuple[int]: 2 items, expected 1"),
    ("None", "str", "None is not assignable to str (declare the input as str | None)"),
]


@pytest.mark.parametrize(("src", "dst", "reason"), EXACT_REASONS, ids=[f"{s} -> {d}" for s, d, _ in EXACT_REASONS])
def test_reason_text(src: str, dst: str, reason: str) -> None:
    assert is_assignable(parse_type(src), parse_type(dst)).reason == reason


# --------------------------------------------------------------------------- models and custom classes


class Person(BaseModel):
    name: str
    age: int


class PersonView(BaseModel):
    name: str


class PersonLoose(BaseModel):
    name: str
    age: float
    nickname: str | None = None


class PersonWithEmail(BaseModel):
    name: str
    age: int
    email: str


class PersonAgeText(BaseModel):
    name: str
    age: str


class MaybeNamed(BaseModel):
    name: str | None = None
    age: int


def test_model_type_shape() -> None:
    t = from_python(Person)
    assert t.kind == "model"
    assert t.name == f"{__name__}.Person"
    assert t.fields == (ModelField("name", STR, True), ModelField("age", INT, True))
    assert json.loads(t.schema)["required"] == ["name", "age"]
    assert str(t) == "Person"


MODEL_RULES: list[tuple[type[BaseModel], type[BaseModel], str, str]] = [
    (Person, Person, "ok", ""),
    (Person, PersonView, "ok", ""),
    (Person, PersonLoose, "ok", ""),
    (PersonView, Person, "error", "PersonView is not assignable to Person: it has no field 'age' (int)"),
    (Person, PersonWithEmail, "error", "Person is not assignable to PersonWithEmail: it has no field 'email' (str)"),
    (Person, PersonAgeText, "error", "field 'age': int is not assignable to str"),
    (PersonLoose, Person, "error", "field 'age': float is not assignable to int: the value may have a fractional part"),
    (
        MaybeNamed,
        Person,
        "warning",
        "field 'name': str | None may be None but str does not accept None",
    ),
]


@pytest.mark.parametrize(("src", "dst", "level", "reason"), MODEL_RULES)
def test_model_rules(src: type[BaseModel], dst: type[BaseModel], level: str, reason: str) -> None:
    result = is_assignable(from_python(src), from_python(dst))
    assert (result.level, result.reason) == (level, reason)


def test_model_and_plain_types() -> None:
    person = from_python(Person)
    assert is_assignable(person, STR).level == "error"
    assert is_assignable(person, ANY).level == "ok"
    assert is_assignable(person, optional(person)).level == "ok"
    assert is_assignable(list_of(person), list_of(from_python(PersonView))).level == "ok"
    assert is_assignable(TypeExpr("dict", (STR, ANY)), person).level == "error"


class Animal:
    pass


class Dog(Animal):
    pass


class Puppy(Dog):
    pass


class Rock:
    pass


def test_named_custom_types() -> None:
    animal, dog, puppy, rock = map(from_python, (Animal, Dog, Puppy, Rock))
    assert dog.kind == "named"
    assert puppy.bases == (f"{__name__}.Dog", f"{__name__}.Animal")
    assert is_assignable(dog, dog).level == "ok"
    assert is_assignable(dog, animal).level == "ok"
    assert is_assignable(puppy, animal).level == "ok"
    assert is_assignable(animal, dog).level == "error"
    assert is_assignable(animal, dog).reason == f"{__name__}.Animal is not assignable to {__name__}.Dog"
    assert is_assignable(rock, animal).level == "error"
    assert is_assignable(dog, STR).level == "error"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def test_enum_is_a_literal_of_its_values() -> None:
    assert from_python(Color) == TypeExpr("literal", values=("red", "blue"))
    assert is_assignable(from_python(Color), STR).level == "ok"


# --------------------------------------------------------------------------- text and Python forms

PARSED: list[tuple[str, TypeExpr]] = [
    ("str", STR),
    ("  int  ", INT),
    ("None", NONE),
    ("object", ANY),
    ("typing.List[str]", list_of(STR)),
    ("t.Optional[int]", optional(INT)),
    ("Set[int]", list_of(INT)),
    ("dict", TypeExpr("dict", (ANY, ANY))),
    ("tuple", TypeExpr("tuple", (ANY,), variadic=True)),
    ("Union[int, Union[str, None]]", union((INT, STR, NONE))),
    ("Optional[Optional[int]]", optional(INT)),
    ("int | Any", ANY),
    ("Literal[-3]", TypeExpr("literal", values=(-3,))),
]


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[t for t, _ in PARSED])
def test_parse_type(text: str, expected: TypeExpr) -> None:
    assert parse_type(text) == expected


PARSE_ERRORS: list[tuple[str, str, int, int, str]] = [
    ("strr", "unknown type 'strr'", 0, 4, "did you mean 'str'?"),
    ("list[flaot]", "unknown type 'flaot'", 5, 5, "did you mean 'float'?"),
    ("Zebra", "unknown type 'Zebra'", 0, 5, "register custom types with dagwright.register_type"),
    ("list[int, str]", "list takes one type argument, got 2", 0, 14, ""),
    ("Literal[1.5]", "Literal values must be strings, integers, booleans or None", 8, 3, ""),
    ("int[str]", "int[...] takes two bounds, the lowest and the highest value: int[0, 1]", 0, 8, ""),
    ("float[str, 1]", "a bound of float[...] must be a number or None", 6, 3, ""),
    ("bool[0, 1]", "bool does not take type arguments", 0, 4, ""),
    ("'str'", "a quoted type ('str') is not supported here", 0, 5, "write it unquoted"),
    ("3", "invalid type expression", 0, 1, ""),
    ("int int", "invalid type syntax: invalid syntax", 4, 1, ""),
    ("list[int", "invalid type syntax: '[' was never closed", 4, 1, ""),
]


@pytest.mark.parametrize(
    ("text", "message", "offset", "length", "hint"), PARSE_ERRORS, ids=[e[0] for e in PARSE_ERRORS]
)
def test_parse_type_errors(text: str, message: str, offset: int, length: int, hint: str) -> None:
    with pytest.raises(TypeSyntaxError) as info:
        parse_type(text)
    assert (info.value.message, info.value.offset, info.value.length, info.value.hint) == (
        message,
        offset,
        length,
        hint,
    )


def test_parse_type_with_custom_names(type_registry: None) -> None:
    assert parse_type("list[P]", {"P": Person}) == list_of(from_python(Person))
    register_type(Dog)
    assert parse_type("Dog | None") == optional(from_python(Dog))
    with pytest.raises(TypeError, match="register_type\\(\\) takes a class"):
        register_type("Dog")  # type: ignore[arg-type]


PYTHON_FORMS: list[tuple[object, TypeExpr]] = [
    (str, STR),
    (type(None), NONE),
    (typing.Any, ANY),
    (list, list_of(ANY)),
    (frozenset[str], list_of(STR)),
    (typing.Annotated[int, "meta"], INT),
    (int | None, optional(INT)),
    (typing.Optional[list[int]], optional(list_of(INT))),  # noqa: UP045
    (tuple[()], TypeExpr("tuple", ())),
    (typing.Tuple[()], TypeExpr("tuple", ())),  # noqa: UP006
    (typing.Tuple, TypeExpr("tuple", (ANY,), variadic=True)),  # noqa: UP006
    (tuple, TypeExpr("tuple", (ANY,), variadic=True)),
    (typing.Literal["a", 1], TypeExpr("literal", values=("a", 1))),
    ("list[int]", list_of(INT)),
]


@pytest.mark.parametrize(("annotation", "expected"), PYTHON_FORMS, ids=[str(e) for _, e in PYTHON_FORMS])
def test_from_python(annotation: object, expected: TypeExpr) -> None:
    assert from_python(annotation) == expected


def test_from_python_rejects_what_has_no_port_type() -> None:
    with pytest.raises(TypeError, match="unsupported type annotation"):
        from_python(3)
    with pytest.raises(TypeError, match="dict takes two type arguments"):
        from_python(dict[str])  # type: ignore[misc]
    with pytest.raises(TypeError, match=re.escape("Literal values must be str, int, bool or None, got 1.5")):
        from_python(typing.Literal[1.5])  # type: ignore[valid-type]


def test_literal_one_and_true_differ() -> None:
    one, true = TypeExpr("literal", values=(1,)), TypeExpr("literal", values=(True,))
    assert one != true
    assert from_json(one.to_json()) == one
    assert from_json(true.to_json()) == true


def test_type_expr_is_immutable() -> None:
    with pytest.raises(AttributeError, match="TypeExpr is immutable"):
        INT.kind = "str"
    with pytest.raises(ValueError, match="unknown type kind 'integer'"):
        TypeExpr("integer")


# --------------------------------------------------------------------------- JSON form errors

JSON_ERRORS: list[tuple[object, str]] = [
    ("strr", "type: unknown type 'strr'"),
    (3, "type: expected a type name or object, got int"),
    ({"kind": ["list"]}, "type: unknown type kind ['list']"),
    ({"kind": "list"}, "type: list takes 1 type argument(s), got 0"),
    ({"kind": "list", "args": "str"}, "type.args: expected a list"),
    ({"kind": "list", "args": ["strr"]}, "type.args[0]: unknown type 'strr'"),
    ({"kind": "tuple", "variadic": True}, "type: tuple takes 1 type argument(s), got 0"),
    ({"kind": "tuple", "args": ["int"], "variadic": "yes"}, "type.variadic: expected true or false"),
    ({"kind": "str", "args": ["int"]}, "type: unknown key(s) ['args'] for a str type"),
    ({"kind": "list", "args": ["int"], "name": "x"}, "type: unknown key(s) ['name'] for a list type"),
    ({"kind": "literal", "values": [1.5]}, "type.values: expected a list of strings, integers, booleans or null"),
    ({"kind": "model"}, "type: a model type needs a 'name'"),
    ({"kind": "named", "name": 7}, "type.name: expected a string"),
    ({"kind": "model", "name": "M", "fields": {}}, "type.fields: expected a list"),
    (
        {"kind": "model", "name": "M", "fields": ["x"]},
        "type.fields[0]: expected an object with a 'name' string and a 'type'",
    ),
    (
        {"kind": "model", "name": "M", "fields": [{"type": "str"}]},
        "type.fields[0]: expected an object with a 'name' string and a 'type'",
    ),
    (
        {"kind": "model", "name": "M", "fields": [{"name": "a", "type": "int", "required": "no"}]},
        "type.fields[0].required: expected true or false",
    ),
    (
        {"kind": "model", "name": "M", "fields": [{"name": "a", "type": {"kind": "list", "args": ["x"]}}]},
        "type.fields[0].type.args[0]: unknown type 'x'",
    ),
    ({"kind": "named", "name": "N", "bases": "Base"}, "type.bases: expected a list of strings"),
]


@pytest.mark.parametrize(("data", "message"), JSON_ERRORS, ids=[m for _, m in JSON_ERRORS])
def test_from_json_errors_name_the_path(data: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        from_json(data)
    assert str(info.value) == message


def test_from_json_refuses_absurd_nesting() -> None:
    data: object = "str"
    for _ in range(200):
        data = {"kind": "list", "args": [data]}
    with pytest.raises(ValueError, match="type nested more than 64 levels deep"):
        from_json(data)


@settings(max_examples=500)
@given(type_like_json)
def test_from_json_accepts_a_type_or_raises_value_error(data: object) -> None:
    """Hand-edited JSON: either a usable type comes back, or a ValueError naming the path."""
    try:
        t = from_json(data)
    except ValueError as err:
        assert str(err).startswith("type")
        return
    str(t)
    assert is_assignable(t, t).level == "ok"
    assert is_assignable(t, STR).level in ("ok", "warning", "error")
    assert from_json(json.loads(json.dumps(t.to_json()))) == t


# --------------------------------------------------------------------------- properties

all_types = type_exprs(models=True, named=True)
text_types = type_exprs()
no_any = type_exprs(models=True, named=True, any_=False)


@settings(max_examples=300)
@given(all_types)
def test_reflexive(t: TypeExpr) -> None:
    assert is_assignable(t, t).level == "ok"


@settings(max_examples=300)
@given(all_types, all_types)
def test_every_verdict_short_of_ok_says_why(a: TypeExpr, b: TypeExpr) -> None:
    result = is_assignable(a, b)
    assert (result.reason == "") == (result.level == "ok")


@settings(max_examples=200)
@given(all_types)
def test_anything_into_any_and_any_into_anything(t: TypeExpr) -> None:
    assert is_assignable(t, ANY).level == "ok"
    assert is_assignable(ANY, t).level == "ok"


@settings(max_examples=300)
@given(all_types)
def test_json_round_trip(t: TypeExpr) -> None:
    data = json.loads(json.dumps(t.to_json()))
    back = from_json(data)
    assert back == t
    assert hash(back) == hash(t)
    assert back.to_json() == t.to_json()
    assert back.schema == t.schema
    assert back.bases == t.bases
    assert str(back) == str(t)
    assert pickle.loads(pickle.dumps(t)) == t


@settings(max_examples=300)
@given(text_types)
def test_text_round_trip(t: TypeExpr) -> None:
    assert parse_type(str(t)) == t


@settings(max_examples=200)
@given(all_types)
def test_into_optional(t: TypeExpr) -> None:
    """``T -> T | None`` is ok; ``T | None -> T`` is a warning exactly when T does not accept None."""
    assert is_assignable(t, optional(t)).level == "ok"
    accepts_none = is_assignable(NONE, t).level == "ok"
    assert t.is_optional == accepts_none
    assert is_assignable(optional(t), t).level == ("ok" if accepts_none else "warning")


@settings(max_examples=200)
@given(st.lists(literal_values, min_size=1, max_size=4, unique_by=lambda v: (type(v).__name__, v)), all_types)
def test_literal_is_the_union_of_its_values(values: list[object], dst: TypeExpr) -> None:
    """``Literal[a, b]`` behaves like ``Literal[a] | Literal[b]`` (and ``Literal[None]`` like ``None``)."""
    lit = TypeExpr("literal", values=tuple(values))  # type: ignore[arg-type]
    parts = union(NONE if v is None else TypeExpr("literal", values=(v,)) for v in values)  # type: ignore[arg-type]
    assert is_assignable(lit, dst).level == is_assignable(parts, dst).level


_LEVEL = {"ok": 0, "warning": 1, "error": 2}


@st.composite
def supertypes(draw: st.DrawFn, t: TypeExpr, depth: int = 0, *, add_optional_fields: bool = False) -> TypeExpr:
    """A type every value of ``t`` fits, built by one rule of the checker applied at some depth."""

    def up(x: TypeExpr) -> TypeExpr:
        return draw(supertypes(x, depth + 1, add_optional_fields=add_optional_fields)) if depth < 3 else x

    k = t.kind
    options = ["same", "optional", "union"]
    options += {"int": ["float"], "bool": ["int", "float"], "none": ["literal_none"]}.get(k, [])
    if k == "literal":
        options += ["value_types", "superset"]
    if k in ("list", "dict", "tuple", "union"):
        options.append("inside")
    if k == "tuple" and not t.variadic:
        options.append("variadic")
    if k == "named" and t.bases:
        options.append("base")
    if k == "model":
        options.append("subset")
    choice = draw(st.sampled_from(options))
    if choice == "same":
        return t
    if choice == "optional":
        return optional(t)
    if choice == "union":
        return union((t, draw(type_exprs(any_=False, max_leaves=2))))
    if choice in ("float", "int"):
        return FLOAT if choice == "float" else INT
    if choice == "literal_none":
        return TypeExpr("literal", values=(None, draw(st.text(max_size=2))))
    if choice == "value_types":
        return union(
            NONE if v is None else BOOL if isinstance(v, bool) else INT if isinstance(v, int) else STR for v in t.values
        )
    if choice == "superset":
        extra = draw(st.text(min_size=1, max_size=2).filter(lambda s: s not in t.values))
        return TypeExpr("literal", values=(*t.values, extra))
    if choice == "variadic":
        item = union(up(a) for a in t.args) if t.args else draw(type_exprs(any_=False, max_leaves=2))
        return TypeExpr("tuple", (item,), variadic=True)
    if choice == "base":
        base = draw(st.sampled_from(t.bases))
        return next(n for n in NAMED if n.name == base)
    if choice == "subset":
        kept = [f for f in t.fields if draw(st.booleans())]
        fields = [ModelField(f.name, up(f.type), f.required and draw(st.booleans())) for f in kept]
        if add_optional_fields:
            taken = {f.name for f in t.fields}
            fields += [ModelField(n, draw(type_exprs(max_leaves=2)), False) for n in "xyz" if n not in taken][:1]
        return model(fields)
    # "inside": the same constructor around wider parts
    if k == "list":
        return list_of(up(t.args[0]))
    if k == "dict":
        return TypeExpr("dict", (up(t.args[0]), up(t.args[1])))
    if k == "tuple":
        return TypeExpr("tuple", tuple(up(a) for a in t.args), variadic=t.variadic)
    return union(up(a) for a in t.args)


@st.composite
def chains(draw: st.DrawFn, add_optional_fields: bool = False) -> tuple[TypeExpr, TypeExpr, TypeExpr]:
    a = draw(no_any)
    b = draw(supertypes(a, add_optional_fields=add_optional_fields))
    c = draw(supertypes(b, add_optional_fields=add_optional_fields))
    return a, b, c


@settings(max_examples=250)
@given(chains())
def test_widening_rules_are_sound_and_compose(chain: tuple[TypeExpr, TypeExpr, TypeExpr]) -> None:
    """Each widening step the rules allow is ok, and so is any chain of them (transitivity)."""
    a, b, c = chain
    assert is_assignable(a, b).level == "ok", (str(a), str(b), is_assignable(a, b).reason)
    assert is_assignable(b, c).level == "ok", (str(b), str(c), is_assignable(b, c).reason)
    assert is_assignable(a, c).level == "ok", (str(a), str(c), is_assignable(a, c).reason)


@settings(max_examples=150)
@given(st.lists(type_exprs(models=True, named=True, any_=False, optional_fields=False), min_size=3, max_size=8))
def test_transitive_on_random_pools(pool: list[TypeExpr]) -> None:
    """For any three types of a pool: a -> b ok and b -> c ok means a -> c is not an error.

    ``Any`` is left out: it is gradual (int -> Any -> str are both ok by design). Models
    have required fields only: width subtyping with optional fields is not transitive
    (the counterexample below; random pools find it, nested in lists and unions too).
    """
    level = {(a, b): is_assignable(a, b).level for a in pool for b in pool}
    for a, b, c in itertools.product(pool, repeat=3):
        if level[a, b] == "ok" and level[b, c] == "ok":
            assert level[a, c] != "error", (str(a), str(b), str(c))


def test_structural_subtyping_with_optional_fields_is_not_transitive() -> None:
    """The one known counterexample to transitivity, kept visible on purpose.

    M1 {f: int} -> M2 {} is ok (M2 needs nothing); M2 -> M3 {f?: str} is ok (f is
    optional and M2 has none); but M1 -> M3 is an error, rightly: an M1 value
    carries an int where M3 wants a str. Width subtyping with optional fields is
    not transitive (TypeScript has the same property), so each edge is checked on
    its own types and a chain is never inferred.
    """
    m1 = TypeExpr("model", name="app.M1", fields=(ModelField("f", INT),))
    m2 = TypeExpr("model", name="app.M2")
    m3 = TypeExpr("model", name="app.M3", fields=(ModelField("f", STR, required=False),))
    assert is_assignable(m1, m2).level == "ok"
    assert is_assignable(m2, m3).level == "ok"
    assert is_assignable(m1, m3).level == "error"
    assert is_assignable(m1, m3).reason == "field 'f': int is not assignable to str"


# --------------------------------------------------------------------------- values (defaults)


def _without_bytes(t: TypeExpr) -> bool:
    return (
        t.kind != "bytes" and all(_without_bytes(a) for a in t.args) and all(_without_bytes(f.type) for f in t.fields)
    )


@settings(max_examples=400)
@given(
    type_exprs(models=True, named=True)
    .filter(_without_bytes)
    .flatmap(lambda t: st.tuples(st.just(t), fitting_values(t)))
)
def test_a_value_of_a_type_fits_it(case: tuple[TypeExpr, Any]) -> None:
    t, value = case
    assert value_misfit(value, t) is None


@pytest.mark.parametrize(
    ("value", "type_text", "why"),
    [
        (True, "int", "True is not an int"),
        ("1", "float", "'1' is not a float"),
        (1.5, "int", "1.5 is not an int"),
        (None, "str", "None is not a str"),
        ([1, "a"], "list[int]", "item 1: 'a' is not an int"),
        ({"a": 1}, "list[int]", "{'a': 1} is not a list"),
        ({"1": "x"}, "dict[int, str]", "key '1': '1' is not an int"),
        ("c", "Literal['a', 'b']", "'c' is not one of Literal['a', 'b']"),
        (1, "Literal[True]", "1 is not one of Literal[True]"),
        ([1, 2, 3], "tuple[int, int]", "[1, 2, 3] has 3 items, tuple[int, int] takes 2"),
        ("x", "int | None", "'x' is none of int | None"),
        ("", "bytes", "'' is not bytes (JSON data holds none)"),
    ],
)
def test_a_value_that_does_not_fit_says_why(value: Any, type_text: str, why: str) -> None:
    assert value_misfit(value, parse_type(type_text)) == why
