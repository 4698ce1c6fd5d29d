"""Port types: the serializable type expression and every compatibility rule.

A :class:`TypeExpr` is what a port of the IR carries. It is built from Python
annotations (:func:`from_python`), from text (:func:`parse_type`, using Python's
own parser), or from JSON (:func:`from_json`), and it never needs the original
Python objects again: a pydantic model is kept as its import path, its fields
and its JSON schema, so a graph loaded from JSON type-checks without importing
anything.

All assignability rules live in :func:`is_assignable`, so there is one place to
read (and to change) what may flow into what.
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import json
import math
import numbers
import types as _pytypes
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from dagwright.compiler.suggest import suggest

__all__ = [
    "ANY",
    "BOOL",
    "BYTES",
    "FLOAT",
    "INT",
    "NONE",
    "STR",
    "Bounds",
    "Compatibility",
    "ModelField",
    "TypeExpr",
    "TypeSyntaxError",
    "bounded",
    "exact_fits",
    "from_json",
    "from_python",
    "is_assignable",
    "json_key",
    "list_of",
    "optional",
    "parse_type",
    "register_type",
    "registered_types",
    "sized",
    "union",
    "value_misfit",
    "without_bounds",
]

LiteralValue = str | int | bool | None
JSONValue = Any  # JSON data; kept loose because JSON is recursive
Bound = int | float | None
Bounds = tuple[()] | tuple[Bound, Bound]
"""Inclusive bounds ``(lowest, highest)``, None for an open side; ``()`` when there are none: a number's
values (``float[0, 1]``), a string's length in characters (``str[1, 280]``) or a list's length in items
(``list[str][1, None]``)."""

_PRIMITIVES = ("any", "none", "str", "int", "float", "bool", "bytes")
_KINDS = frozenset((*_PRIMITIVES, "list", "dict", "tuple", "union", "literal", "model", "named"))


class TypeExpr:
    """An immutable, hashable type expression.

    ``kind`` is one of ``any none str int float bool bytes list dict tuple union
    literal model named``. ``args`` holds the parameters of ``list``, ``dict``,
    ``tuple`` and ``union``; ``values`` the values of a ``literal``; ``name`` the
    import path of a ``model`` or ``named`` type; ``fields`` a model's fields;
    ``bases`` the import paths of a named type's base classes (for subclass
    checks); ``schema`` a model's JSON schema as canonical JSON text; ``bounds``
    an ``int`` or ``float``'s inclusive bounds ``(ge, le)`` (``float[0, 1]``), the least and most characters
    of a ``str`` (``str[1, 280]``), or the least and most items of a ``list`` (``list[str][1, None]``).
    """

    __slots__ = ("_hash", "args", "bases", "bounds", "fields", "kind", "name", "schema", "values", "variadic")

    kind: str
    args: tuple[TypeExpr, ...]
    values: tuple[LiteralValue, ...]
    name: str
    fields: tuple[ModelField, ...]
    bases: tuple[str, ...]
    schema: str
    variadic: bool
    bounds: Bounds
    _hash: int

    def __init__(
        self,
        kind: str,
        args: tuple[TypeExpr, ...] = (),
        *,
        values: tuple[LiteralValue, ...] = (),
        name: str = "",
        fields: tuple[ModelField, ...] = (),
        bases: tuple[str, ...] = (),
        schema: str = "",
        variadic: bool = False,
        bounds: Bounds = (),
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown type kind {kind!r}; expected one of {sorted(_KINDS)}")
        if bounds:
            bounds = _checked_bounds(kind, bounds)
        set_ = object.__setattr__
        set_(self, "kind", kind)
        set_(self, "args", args)
        set_(self, "values", values)
        set_(self, "name", name)
        set_(self, "fields", fields)
        set_(self, "bases", bases)
        set_(self, "schema", schema)
        set_(self, "variadic", variadic)
        set_(self, "bounds", bounds)
        # Hashes are looked up on every edge check: compute once.
        set_(self, "_hash", hash((kind, args, _literal_key(values), name, fields, variadic, bounds)))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("TypeExpr is immutable")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, TypeExpr):
            return NotImplemented
        return (
            self._hash == other._hash
            and self.kind == other.kind
            and self.args == other.args
            and _literal_key(self.values) == _literal_key(other.values)
            and self.name == other.name
            and self.fields == other.fields
            and self.variadic == other.variadic
            and _bounds_key(self.bounds) == _bounds_key(other.bounds)
        )

    def __repr__(self) -> str:
        return f"TypeExpr({str(self)!r})"

    def __str__(self) -> str:
        return _display(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (from_json, (self.to_json(),))

    @property
    def is_optional(self) -> bool:
        """True when ``None`` is an accepted value."""
        if self.kind in ("none", "any"):
            return True
        if self.kind == "union":
            return any(a.is_optional for a in self.args)
        if self.kind == "literal":
            return None in self.values
        return False

    def without_none(self) -> TypeExpr:
        """This type with ``None`` removed from it (``int | None`` -> ``int``)."""
        if self.kind == "union":
            return union(a for a in self.args if a.kind != "none")
        return self

    def to_json(self) -> JSONValue:
        """A JSON-ready form; primitives are plain strings (a bounded number or text is ``{"kind", "bounds"}``)."""
        if self.bounds and self.kind in _PRIMITIVES:
            return {"kind": self.kind, "bounds": list(self.bounds)}
        if self.kind in _PRIMITIVES:
            return self.kind
        out: dict[str, JSONValue] = {"kind": self.kind}
        if self.bounds:
            out["bounds"] = list(self.bounds)
        if self.args:
            out["args"] = [a.to_json() for a in self.args]
        if self.kind == "literal":
            out["values"] = list(self.values)
        if self.variadic:
            out["variadic"] = True
        if self.name:
            out["name"] = self.name
        if self.kind == "model":
            out["fields"] = [{"name": f.name, "type": f.type.to_json(), "required": f.required} for f in self.fields]
            if self.schema:
                out["schema"] = json.loads(self.schema)
        if self.bases:
            out["bases"] = list(self.bases)
        return out


def json_key(value: Any) -> Any:
    """A hashable stand-in for JSON data, equal exactly when the data is (``1``, ``1.0`` and ``True`` differ)."""
    if isinstance(value, (list, tuple)):
        return ("list", tuple(json_key(v) for v in value))
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((str(k), json_key(v)) for k, v in value.items())))
    return (type(value).__name__, value)


def _bounds_key(bounds: Bounds) -> tuple[Any, ...]:
    # float[0, 1] and float[0.0, 1.0] are one type: bounds compare as numbers.
    return tuple(None if b is None else float(b) for b in bounds)


def _checked_bounds(kind: str, bounds: Bounds) -> Bounds:
    """``bounds`` when they fit ``kind``; otherwise a ValueError saying what is wrong."""
    if kind not in ("int", "float", "str", "list"):
        raise ValueError(f"only int, float (values), str and list (length) take bounds, not {kind}")
    if len(bounds) != 2:
        raise ValueError(f"bounds are (lowest, highest), two numbers or None, got {bounds!r}")
    for b in bounds:
        if b is not None and (not isinstance(b, (int, float)) or isinstance(b, bool) or not math.isfinite(b)):
            raise ValueError(f"a bound must be a finite number or None, got {b!r}")
        if kind == "int" and b is not None and not float(b).is_integer():
            raise ValueError(f"int bounds must be whole numbers, got {b!r}")
        if kind in _SIZED and b is not None and (not float(b).is_integer() or b < 0):
            raise ValueError(f"a {kind}'s length bounds are whole numbers >= 0, got {b!r}")
    lo, hi = bounds
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"the lower bound {lo!r} is above the upper bound {hi!r}")
    if lo is None and hi is None:
        return ()
    if kind in _SIZED:
        return (None if lo is None else int(lo), None if hi is None else int(hi))
    return (lo, hi)


_SIZED = ("str", "list")  # kinds whose bounds are a length: characters of a str, items of a list


def bounded(t: TypeExpr, ge: Bound = None, le: Bound = None) -> TypeExpr:
    """``t`` (an ``int`` or ``float``, optionally with None) with inclusive bounds; ``t`` when both are None.

    Bounds already on ``t`` are narrowed, never widened. Raises ValueError for any other type."""
    if ge is None and le is None:
        return t
    if t.kind == "union" and t.is_optional:
        return optional(bounded(t.without_none(), ge, le))
    if t.kind not in ("int", "float"):
        raise ValueError(f"ge= and le= bound numbers (int or float), not {t}")
    return TypeExpr(t.kind, t.args, bounds=_narrowed(t.bounds, ge, le))


def sized(t: TypeExpr, min_length: int | None = None, max_length: int | None = None) -> TypeExpr:
    """``t`` (a ``str`` or a ``list``, optionally with None) holding ``min_length`` to ``max_length``
    characters or items (inclusive); ``t`` when both are None. Raises ValueError for any other type."""
    if min_length is None and max_length is None:
        return t
    if t.kind == "union" and t.is_optional:
        return optional(sized(t.without_none(), min_length, max_length))
    if t.kind not in _SIZED:
        raise ValueError(f"min_length= and max_length= bound the length of a str or a list, not {t}")
    return TypeExpr(t.kind, t.args, bounds=_narrowed(t.bounds, min_length, max_length))


def _narrowed(old: Bounds, lo: Bound, hi: Bound) -> Bounds:
    old_lo, old_hi = old or (None, None)
    low = lo if old_lo is None else old_lo if lo is None else max(lo, old_lo)
    high = hi if old_hi is None else old_hi if hi is None else min(hi, old_hi)
    return (low, high)


@functools.lru_cache(maxsize=1024)
def without_bounds(t: TypeExpr) -> TypeExpr:
    """``t`` with every bound in it taken away, numbers' and lengths' (``list[float[0, 1]][1, 5]`` ->
    ``list[float]``)."""
    if t.bounds:
        return TypeExpr(t.kind, tuple(without_bounds(a) for a in t.args))
    if not t.args and not t.fields:
        return t
    args = tuple(without_bounds(a) for a in t.args)
    fields = tuple(ModelField(f.name, without_bounds(f.type), f.required) for f in t.fields)
    if args == t.args and fields == t.fields:
        return t
    if t.kind == "union":
        return union(args)
    return TypeExpr(
        t.kind, args, values=t.values, name=t.name, fields=fields, bases=t.bases, schema=t.schema, variadic=t.variadic
    )


def _within(value: float, bounds: Bounds) -> bool:
    if not bounds:
        return True
    lo, hi = bounds
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _bounds_text(bounds: Bounds) -> str:
    return ", ".join("None" if b is None else repr(b) for b in bounds)


def _literal_key(values: tuple[LiteralValue, ...]) -> tuple[tuple[str, LiteralValue], ...]:
    # Literal[1] and Literal[True] differ although 1 == True in Python.
    return tuple(map(json_key, values))


@dataclass(frozen=True, slots=True)
class ModelField:
    """One field of a structured (pydantic model) type."""

    name: str
    type: TypeExpr
    required: bool = True


ANY = TypeExpr("any")
NONE = TypeExpr("none")
STR = TypeExpr("str")
INT = TypeExpr("int")
FLOAT = TypeExpr("float")
BOOL = TypeExpr("bool")
BYTES = TypeExpr("bytes")
_BY_KIND = {t.kind: t for t in (ANY, NONE, STR, INT, FLOAT, BOOL, BYTES)}


def list_of(item: TypeExpr) -> TypeExpr:
    """``list[item]``."""
    return TypeExpr("list", (item,))


def optional(item: TypeExpr) -> TypeExpr:
    """``item | None``."""
    return union((item, NONE))


def union(members: Iterable[TypeExpr]) -> TypeExpr:
    """A flattened, de-duplicated union with ``None`` last; one member is itself."""
    flat: list[TypeExpr] = []
    has_none = False
    for m in members:
        for part in m.args if m.kind == "union" else (m,):
            if part.kind == "none":
                has_none = True
            elif part not in flat:
                flat.append(part)
    if any(m.kind == "any" for m in flat):
        return ANY
    if has_none:
        flat.append(NONE)
    if not flat:
        return NONE
    if len(flat) == 1:
        return flat[0]
    return TypeExpr("union", tuple(flat))


def _display(t: TypeExpr) -> str:
    k = t.kind
    if t.bounds and k == "list":
        return f"list[{_display(t.args[0])}][{_bounds_text(t.bounds)}]"
    if t.bounds:
        return f"{k}[{_bounds_text(t.bounds)}]"
    if k in _PRIMITIVES:
        return "Any" if k == "any" else ("None" if k == "none" else k)
    if k == "list":
        return f"list[{_display(t.args[0])}]"
    if k == "dict":
        return f"dict[{_display(t.args[0])}, {_display(t.args[1])}]"
    if k == "tuple":
        if t.variadic:
            return f"tuple[{_display(t.args[0])}, ...]"
        return f"tuple[{', '.join(_display(a) for a in t.args)}]" if t.args else "tuple[()]"
    if k == "union":
        return " | ".join(_display(a) for a in t.args)
    if k == "literal":
        return f"Literal[{', '.join(repr(v) for v in t.values)}]"
    return t.name.rsplit(".", 1)[-1]


# --------------------------------------------------------------------------- compatibility

OK, WARNING, ERROR = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Compatibility:
    """The answer of :func:`is_assignable`.

    ``level`` is ``"ok"``, ``"warning"`` (may fail at run time, e.g. an optional
    value into a required port) or ``"error"``; ``reason`` says why in words.
    """

    level: Literal["ok", "warning", "error"]
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True unless the value can never be correct (a warning is ok)."""
        return self.level != "error"

    def __bool__(self) -> bool:
        return self.level != "error"


_LEVEL_NAMES: tuple[Literal["ok", "warning", "error"], ...] = ("ok", "warning", "error")


def is_assignable(src: TypeExpr, dst: TypeExpr) -> Compatibility:
    """May a value of type ``src`` flow into a port of type ``dst``?

    The rules, in order:

    * anything into ``Any``, and ``Any`` into anything (it cannot be checked);
    * ``int`` into ``float``, ``bool`` into ``int``/``float`` (Python's numeric tower),
      never ``float`` into ``int``;
    * ``T`` into ``T | None``; ``T | None`` into ``T`` is a *warning* (it may be None);
    * a union into ``dst`` when every member is assignable; into a union when
      assignable to one of its members;
    * containers are covariant: ``list[int]`` into ``list[float]``, ``dict`` keys and
      values, ``tuple`` element-wise (``tuple[T, ...]`` accepts any fixed tuple of T);
    * ``Literal['a']`` into ``str``, and into a ``Literal`` holding all its values;
      plain ``str`` into a ``Literal`` is an error (declare the producer as a Literal);
    * a model into the same model, or into another model whose required fields it
      has with assignable types (a structural subset);
    * a named custom type into itself or one of its base classes;
    * a bounded number (``float[0, 1]``) into an unbounded one; a number without bounds, or with wider ones,
      into a bounded input is a *warning* (a value out of range fails at run time); a ``Literal`` of
      numbers into a bounded input, an error when a value is out of range.
    """
    level, reason = _check(src, dst)
    return Compatibility(_LEVEL_NAMES[level], reason)


@functools.lru_cache(maxsize=8192)
def _check(src: TypeExpr, dst: TypeExpr) -> tuple[int, str]:
    if src is dst or dst.kind == "any" or src.kind == "any" or src == dst:
        return OK, ""
    if src.kind == "union":
        return _check_union_source(src, dst)
    if src.kind == "literal" and dst.kind != "literal" and (len(src.values) > 1 or src.values == (None,)):
        return _check_literal_values(src, dst)
    if dst.kind == "union":
        best: tuple[int, str] | None = None
        for member in dst.args:
            result = _check(src, member)
            if result[0] == OK:
                return result
            if best is None or result[0] < best[0]:
                best = result
        assert best is not None
        if best[0] == WARNING:
            return best
        return ERROR, f"{src} is not assignable to any member of {dst}"
    if src.kind == "none":
        if dst.kind == "literal" and None in dst.values:
            return OK, ""
        return ERROR, f"None is not assignable to {dst} (declare the input as {dst} | None)"
    if src.bounds or dst.bounds:
        return _check_bounds(src, dst)
    if src.kind == "literal":
        return _check_literal_source(src, dst)
    sk, dk = src.kind, dst.kind
    if dk == "float" and sk in ("int", "bool"):
        return OK, ""
    if dk == "int" and sk == "bool":
        return OK, ""
    if dk == "int" and sk == "float":
        return ERROR, "float is not assignable to int: the value may have a fractional part"
    if dk == "literal":
        if sk in ("str", "int", "bool"):
            return ERROR, (
                f"{src} is not assignable to {dst}: any {src} may not be one of the allowed values; "
                f"declare the producing field as {dst}"
            )
        return ERROR, f"{src} is not assignable to {dst}"
    if sk != dk:
        if dk == "str" and sk in ("list", "tuple", "dict"):
            return ERROR, f"{src} is not assignable to str: a container is not text"
        return ERROR, f"{src} is not assignable to {dst}"
    if sk == "list":
        return _nested(_check(src.args[0], dst.args[0]), f"list item: {src.args[0]} into {dst.args[0]}")
    if sk == "dict":
        keys = _check(src.args[0], dst.args[0])
        values = _check(src.args[1], dst.args[1])
        if keys[0] >= values[0]:
            return _nested(keys, f"dict key: {src.args[0]} into {dst.args[0]}")
        return _nested(values, f"dict value: {src.args[1]} into {dst.args[1]}")
    if sk == "tuple":
        return _check_tuple(src, dst)
    if sk == "model":
        return _check_model(src, dst)
    if sk == "named":
        if src.name == dst.name or dst.name in src.bases:
            return OK, ""
        return ERROR, f"{src.name} is not assignable to {dst.name}"
    return ERROR, f"{src} is not assignable to {dst}"


def _check_bounds(src: TypeExpr, dst: TypeExpr) -> tuple[int, str]:
    """A check where either side is bounded (a number, a text or a list): the types without bounds, then the
    ranges."""
    plain_src = TypeExpr(src.kind, src.args) if src.bounds else src
    plain_dst = TypeExpr(dst.kind, dst.args) if dst.bounds else dst
    level, reason = _check(plain_src, plain_dst)
    if level == ERROR or not dst.bounds:
        return level, reason
    if src.kind == "literal":
        outside: list[LiteralValue] = [
            v
            for v in src.values
            if (dst.kind == "str" and isinstance(v, str) and not _within(len(v), dst.bounds))
            or (dst.kind != "str" and isinstance(v, (int, float)) and not _within(v, dst.bounds))
        ]
        if outside:
            return ERROR, f"{src} holds {', '.join(map(repr, outside))}, outside {dst}"
        return level, reason
    lo, hi = dst.bounds
    s_lo, s_hi = src.bounds or (None, None)
    if (lo is None or (s_lo is not None and s_lo >= lo)) and (hi is None or (s_hi is not None and s_hi <= hi)):
        return level, reason
    what = "without bounds" if not src.bounds else "with wider bounds"
    which = {"list": "a list whose length is", "str": "a text whose length is"}.get(dst.kind, "a value")
    which += " outside"
    return max(level, WARNING), (
        f"{src} ({what}) into {dst}: {which} [{_bounds_text(dst.bounds)}] fails at run time; "
        f"declare the producing field as {dst}"
    )


def _nested(result: tuple[int, str], where: str) -> tuple[int, str]:
    if result[0] == OK:
        return result
    return result[0], f"{where}: {result[1]}" if result[1] else where


def _check_union_source(src: TypeExpr, dst: TypeExpr) -> tuple[int, str]:
    worst = OK
    reasons: list[str] = []
    none_fails = False
    for member in src.args:
        level, reason = _check(member, dst)
        if level == ERROR and member.kind == "none":
            none_fails = True
            continue
        if level > OK:
            reasons.append(reason)
        worst = max(worst, level)
    if worst == ERROR:
        return ERROR, f"{src} is not assignable to {dst}: " + "; ".join(r for r in reasons if r)
    if none_fails:
        return WARNING, f"{src} may be None but {dst} does not accept None"
    return worst, "; ".join(r for r in reasons if r)


def _check_literal_values(src: TypeExpr, dst: TypeExpr) -> tuple[int, str]:
    # A literal is the union of its values: each may go to a different member of a
    # union (Literal['a', 1] into str | int), and None is None.
    worst: tuple[int, str] = (OK, "")
    rejected: list[LiteralValue] = []
    for value in src.values:
        part = NONE if value is None else TypeExpr("literal", values=(value,))
        level, reason = _check(part, dst)
        if level == ERROR and value is None and len(src.values) > 1:
            level, reason = WARNING, f"{src} may be None but {dst} does not accept None"
        if level == ERROR:
            rejected.append(value)
        if level > worst[0]:
            worst = (level, reason)
    if rejected:
        return ERROR, f"{src} is not assignable to {dst}: {', '.join(map(repr, rejected))} not accepted"
    return worst


def _check_literal_source(src: TypeExpr, dst: TypeExpr) -> tuple[int, str]:
    if dst.kind == "literal":
        allowed = set(_literal_key(dst.values))
        missing = [v for v, key in zip(src.values, _literal_key(src.values), strict=True) if key not in allowed]
        if missing == [None] and len(src.values) > 1:
            # As for unions: a value that may be None is a warning, not an error.
            return WARNING, f"{src} may be None but {dst} does not accept None"
        if missing:
            return ERROR, f"{src} is not assignable to {dst}: {', '.join(map(repr, missing))} not allowed"
        return OK, ""
    worst: tuple[int, str] = (OK, "")
    if None in src.values and _check(NONE, dst)[0] == ERROR:
        worst = (WARNING, f"{src} may be None but {dst} does not accept None")
    for value in src.values:
        if value is None:
            continue
        result = _check(_literal_value_type(value), dst)
        if result[0] > worst[0]:
            worst = result
    if worst[0] == ERROR:
        return ERROR, f"{src} is not assignable to {dst}"
    return worst


def _literal_value_type(value: LiteralValue) -> TypeExpr:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    return STR


def _check_tuple(src: TypeExpr, dst: TypeExpr) -> tuple[int, str]:
    if dst.variadic:
        worst: tuple[int, str] = (OK, "")
        for i, item in enumerate(src.args):
            result = _nested(_check(item, dst.args[0]), f"tuple item {i}")
            if result[0] > worst[0]:
                worst = result
        return worst
    if src.variadic:
        return ERROR, f"{src} is not assignable to {dst}: its length is not known"
    if len(src.args) != len(dst.args):
        return ERROR, f"{src} is not assignable to {dst}: {len(src.args)} items, expected {len(dst.args)}"
    worst = (OK, "")
    for i, (a, b) in enumerate(zip(src.args, dst.args, strict=True)):
        result = _nested(_check(a, b), f"tuple item {i}")
        if result[0] > worst[0]:
            worst = result
    return worst


def _check_model(src: TypeExpr, dst: TypeExpr) -> tuple[int, str]:
    if src.name == dst.name:
        return OK, ""
    src_fields = {f.name: f for f in src.fields}
    worst: tuple[int, str] = (OK, "")
    for field in dst.fields:
        have = src_fields.get(field.name)
        if have is None:
            if field.required:
                return ERROR, (
                    f"{_display(src)} is not assignable to {_display(dst)}: "
                    f"it has no field {field.name!r} ({field.type})"
                )
            continue
        result = _check(have.type, field.type)
        if not have.required and field.required and result[0] < WARNING:
            result = (WARNING, f"{src.name}.{field.name} is optional but {dst.name}.{field.name} is required")
        result = _nested(result, f"field {field.name!r}")
        if result[0] > worst[0]:
            worst = result
    return worst


# --------------------------------------------------------------------------- from Python annotations

_registry: dict[str, type] = {}
_registry_generation = 0


# --------------------------------------------------------------------------- values


def value_misfit(value: object, t: TypeExpr) -> str | None:
    """Why ``value`` (a default, or a value given to a flow input) is not of type ``t``, or None when it is.

    ``True`` is not an ``int``, ``1`` is a ``float`` (any ``numbers.Integral`` /
    ``numbers.Real``, so numpy scalars count); a model takes an object with its
    required fields, or an instance; a named class cannot be judged and takes anything.
    """
    kind = t.kind
    if kind == "model" and hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if kind in ("any", "named"):
        return None
    if kind == "union":
        if any(value_misfit(value, member) is None for member in t.args):
            return None
        return f"{value!r} is none of {t}"
    if kind == "none":
        return None if value is None else f"{value!r} is not None"
    if kind == "literal":
        return None if json_key(value) in _literal_key(t.values) else f"{value!r} is not one of {t}"
    if kind in _SCALAR_CHECKS:
        if not _SCALAR_CHECKS[kind](value):
            return f"{value!r} is not {'an' if kind == 'int' else 'a'} {kind}"
        if t.bounds and kind == "str" and not _within(len(value), t.bounds):  # type: ignore[arg-type]
            return f"{_short(value)} ({len(value)} characters) is outside {t}"  # type: ignore[arg-type]
        if t.bounds and kind != "str" and not _within(float(value), t.bounds):  # type: ignore[arg-type]
            return f"{value!r} is outside {t}"
        return None
    if kind == "bytes":
        return None if isinstance(value, (bytes, bytearray)) else f"{value!r} is not bytes (JSON data holds none)"
    if kind in ("list", "tuple"):
        if not isinstance(value, (list, tuple)):
            return f"{value!r} is not a {kind}"
        if t.bounds and not _within(len(value), t.bounds):
            return f"{len(value)} item(s) is outside {t}"
        if kind == "list" or t.variadic:
            item_types = [t.args[0] if t.args else ANY] * len(value)
        elif len(value) != len(t.args):
            return f"{value!r} has {len(value)} items, {t} takes {len(t.args)}"
        else:
            item_types = list(t.args)
        for i, (item, item_type) in enumerate(zip(value, item_types, strict=True)):
            why = value_misfit(item, item_type)
            if why is not None:
                return f"item {i}: {why}"
        return None
    if kind in ("dict", "model"):
        if not isinstance(value, Mapping):
            return f"{value!r} is not an object"
        if kind == "dict":
            key_type, value_type = t.args if len(t.args) == 2 else (ANY, ANY)
            for k in value:  # a JSON object's keys are strings
                why = value_misfit(k, key_type)
                if why is not None:
                    return f"key {k!r}: {why}"
            fields = [(str(k), v, value_type) for k, v in value.items()]
        else:
            declared = {f.name: f for f in t.fields}
            missing = [name for name, f in declared.items() if f.required and name not in value]
            if missing:
                return f"{t} needs {', '.join(map(repr, missing))}"
            fields = [(str(k), v, declared[k].type) for k, v in value.items() if k in declared]
        for key, item, item_type in fields:
            why = value_misfit(item, item_type)
            if why is not None:
                return f"{key!r}: {why}"
        return None
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_SCALAR_CHECKS: dict[str, Callable[[object], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
}

# The exact Python types whose every value passes value_misfit for a primitive kind: a check decided once per
# port tests ``type(value) in fits`` (one set lookup) before paying for value_misfit's isinstance/ABC checks.
_EXACT_FITS: dict[str, frozenset[type]] = {
    "str": frozenset((str,)),
    "int": frozenset((int,)),
    "float": frozenset((float, int)),
    "bool": frozenset((bool,)),
    "bytes": frozenset((bytes, bytearray)),
    "none": frozenset((type(None),)),
}
_NO_TYPES: frozenset[type] = frozenset()


@functools.lru_cache(maxsize=1024)
def exact_fits(t: TypeExpr) -> frozenset[type] | None:
    """The exact types (``type(value)``, not subclasses) whose every value fits ``t``, or None when any value does.

    For checking many values against one type cheaply: a value whose ``type()`` is in the set
    passes :func:`value_misfit` without looking at it; any other value must still be checked
    by :func:`value_misfit` (an empty set means "always ask it": containers, literals, models).
    None means :func:`value_misfit` takes every value (``Any``, a named class), so there is
    nothing to check.
    """
    kind = t.kind
    if kind in ("any", "named"):
        return None
    if t.bounds:
        return _NO_TYPES  # every value is checked against the bounds
    if kind in _EXACT_FITS:
        return _EXACT_FITS[kind]
    if kind == "union":
        members = [exact_fits(m) for m in t.args]
        if any(m is None for m in members):
            return None
        return frozenset().union(*(m for m in members if m is not None))
    # Items, keys and values of any type (as value_misfit reads a container type without arguments): only the
    # container itself is judged.
    if kind == "list" or (kind == "tuple" and t.variadic):
        item = t.args[0] if t.args else ANY
        return frozenset((list, tuple)) if exact_fits(item) is None else _NO_TYPES
    if kind == "dict":
        key, value = t.args if len(t.args) == 2 else (ANY, ANY)
        return frozenset((dict,)) if exact_fits(key) is None and exact_fits(value) is None else _NO_TYPES
    return _NO_TYPES


def register_type(tp: type, name: str | None = None) -> type:
    """Make a custom type (or a pydantic model) usable by name in signature strings.

    Usable as a decorator. The name defaults to the class name; registering a
    different class under a taken name replaces it.
    """
    global _registry_generation
    if not isinstance(tp, type):
        raise TypeError(f"register_type() takes a class, got {tp!r}")
    _registry[name or tp.__name__] = tp
    _registry_generation += 1
    return tp


def registered_types() -> Mapping[str, type]:
    """The types registered with :func:`register_type`, by name."""
    return dict(_registry)


def registry_generation() -> int:
    """A counter that changes whenever the registry does (for caches keyed on it)."""
    return _registry_generation


def callable_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The evaluated annotations of a function, of a ``functools.partial`` of one, or of a callable
    object's ``__call__`` (``typing.get_type_hints`` takes only the first)."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target)):
        call = inspect.getattr_static(type(target), "__call__", None)
        if call is not None and (inspect.isfunction(call) or inspect.ismethod(call)):
            target = call
    return typing.get_type_hints(target)


class TypeConversionError(TypeError):
    """A Python annotation that has no port type."""


_SIMPLE: dict[object, TypeExpr] = {
    str: STR,
    int: INT,
    float: FLOAT,
    bool: BOOL,
    bytes: BYTES,
    type(None): NONE,
    None: NONE,
    typing.Any: ANY,
    object: ANY,
}


def from_python(annotation: object) -> TypeExpr:
    """The :class:`TypeExpr` of a Python annotation (``list[int]``, ``Optional[str]``, a model...)."""
    try:
        return _from_python_cached(annotation)
    except TypeError as exc:  # unhashable annotations (rare): convert without the cache
        if isinstance(exc, TypeConversionError):
            raise
        return _from_python(annotation)


@functools.lru_cache(maxsize=2048)
def _from_python_cached(annotation: object) -> TypeExpr:
    return _from_python(annotation)


def _from_python(tp: object) -> TypeExpr:
    simple = _SIMPLE.get(tp) if _hashable(tp) else None
    if simple is not None:
        return simple
    if isinstance(tp, TypeExpr):
        return tp
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _annotated(args[0], args[1:])
    if origin in (Union, _pytypes.UnionType):
        return union(_from_python(a) for a in args)
    if origin is Literal:
        for v in args:
            if not isinstance(v, (str, int, bool)) and v is not None:
                raise TypeConversionError(f"Literal values must be str, int, bool or None, got {v!r}")
        return TypeExpr("literal", values=tuple(args))
    if origin in (list, set, frozenset) or tp in (list, set, frozenset):
        return list_of(_from_python(args[0]) if args else ANY)
    if origin is dict or tp is dict:
        if args and len(args) != 2:
            raise TypeConversionError(f"dict takes two type arguments, got {tp!r}")
        return TypeExpr("dict", (_from_python(args[0]), _from_python(args[1])) if args else (ANY, ANY))
    if origin is tuple or tp is tuple:
        if not args:
            if tp is tuple or tp is typing.Tuple:  # noqa: UP006 (the bare alias itself, not an annotation)
                return TypeExpr("tuple", (ANY,), variadic=True)
            return TypeExpr("tuple", ())  # tuple[()]: Python 3.11+ gives it no args at all
        if len(args) == 2 and args[1] is Ellipsis:
            return TypeExpr("tuple", (_from_python(args[0]),), variadic=True)
        if args == ((),):
            return TypeExpr("tuple", ())
        return TypeExpr("tuple", tuple(_from_python(a) for a in args))
    if isinstance(tp, type):
        if _is_pydantic_model(tp):
            return _model_type(tp)
        if issubclass(tp, enum.Enum):
            values = tuple(m.value for m in tp)
            if all(isinstance(v, (str, int, bool)) for v in values):
                return TypeExpr("literal", values=values)
        return TypeExpr("named", name=_qualified(tp), bases=tuple(_qualified(b) for b in tp.__mro__[1:-1]))
    if isinstance(tp, str):
        return parse_type(tp)
    raise TypeConversionError(f"unsupported type annotation {tp!r}")


def _annotated(base: object, metadata: tuple[object, ...]) -> TypeExpr:
    """``Annotated[float, Field(ge=0, le=1)]`` (or annotated_types' ``Ge``, ``Le``, ``Interval``): the bounds
    become the type's; other metadata is ignored, exclusive bounds (gt, lt) are refused."""
    t = _from_python(base)
    ge: Bound = None
    le: Bound = None
    lengths: dict[str, int | None] = {"min_length": None, "max_length": None}
    for item in metadata:
        for part in (item, *getattr(item, "metadata", ())):
            for name in ("gt", "lt"):
                if getattr(part, name, None) is not None:
                    raise TypeConversionError(f"{name}= (an exclusive bound) is not supported: use ge= / le=")
            if getattr(part, "ge", None) is not None:
                ge = part.ge
            if getattr(part, "le", None) is not None:
                le = part.le
            for name in lengths:
                if getattr(part, name, None) is not None:
                    lengths[name] = getattr(part, name)
    try:
        return sized(bounded(t, ge, le), **lengths)
    except ValueError as exc:
        raise TypeConversionError(str(exc)) from None


def _hashable(obj: object) -> bool:
    try:
        hash(obj)
    except TypeError:
        return False
    return True


def _qualified(tp: type) -> str:
    return f"{tp.__module__}.{tp.__qualname__}"


def _is_pydantic_model(tp: type) -> bool:
    return any(base.__name__ == "BaseModel" and base.__module__.startswith("pydantic") for base in tp.__mro__)


def _model_type(model: Any) -> TypeExpr:
    fields = tuple(
        ModelField(name, _from_python(info.annotation), bool(info.is_required()))
        for name, info in model.model_fields.items()
    )
    try:
        schema = json.dumps(model.model_json_schema(), sort_keys=True, separators=(",", ":"))
    except Exception:  # a model whose schema pydantic cannot produce still type-checks by its fields
        schema = ""
    return TypeExpr("model", name=_qualified(model), fields=fields, schema=schema)


# --------------------------------------------------------------------------- from text (ast)


class TypeSyntaxError(ValueError):
    """A type written as text that is not a valid type; ``offset``/``length`` locate it."""

    def __init__(self, message: str, offset: int = 0, length: int = 1, hint: str = "", lineno: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.lineno = lineno
        self.length = max(1, length)
        self.hint = hint


_NAMES: dict[str, TypeExpr] = {
    "str": STR,
    "int": INT,
    "float": FLOAT,
    "bool": BOOL,
    "bytes": BYTES,
    "Any": ANY,
    "None": NONE,
    "object": ANY,
    "list": list_of(ANY),
    "List": list_of(ANY),
    "dict": TypeExpr("dict", (ANY, ANY)),
    "Dict": TypeExpr("dict", (ANY, ANY)),
    "tuple": TypeExpr("tuple", (ANY,), variadic=True),
    "Tuple": TypeExpr("tuple", (ANY,), variadic=True),
}
_GENERICS = ("list", "List", "set", "Set", "dict", "Dict", "tuple", "Tuple", "Optional", "Union", "Literal")


def parse_type(text: str, types: Mapping[str, object] | None = None) -> TypeExpr:
    """Parse a type written as Python source (``"list[str] | None"``).

    ``types`` maps extra names to Python types (pydantic models, custom classes);
    names registered with :func:`register_type` are known too.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise TypeSyntaxError(f"invalid type syntax: {exc.msg}", max(0, (exc.offset or 1) - 1)) from None
    lead = len(text) - len(text.lstrip())
    return type_from_ast(tree.body, types, offset=lead)


def type_from_ast(node: ast.expr, types: Mapping[str, object] | None = None, offset: int = 0) -> TypeExpr:
    """Convert a parsed type expression; error offsets are shifted by ``offset``."""
    return _TypeBuilder(types or {}, offset).build(node)


class _TypeBuilder:
    def __init__(self, types: Mapping[str, object], offset: int) -> None:
        self.types = types
        self.offset = offset

    def fail(self, node: ast.AST, message: str, hint: str = "") -> TypeSyntaxError:
        start = getattr(node, "col_offset", 0)
        end = getattr(node, "end_col_offset", None) or start + 1
        line = getattr(node, "lineno", 1)
        return TypeSyntaxError(message, self.offset + start, end - start, hint, line)

    def build(self, node: ast.expr) -> TypeExpr:
        if isinstance(node, ast.Name):
            return self.name(node.id, node)
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted is None:
                raise self.fail(node, "invalid type expression")
            if dotted.startswith(("typing.", "t.")) and dotted.count(".") == 1:
                return self.name(dotted.split(".", 1)[1], node)
            return self.name(dotted, node)
        if isinstance(node, ast.Constant) and node.value is None:
            return NONE
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            raise self.fail(node, f"a quoted type ({node.value!r}) is not supported here", "write it unquoted")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return union((self.build(node.left), self.build(node.right)))
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        raise self.fail(node, "invalid type expression")

    def name(self, name: str, node: ast.AST) -> TypeExpr:
        known = _NAMES.get(name)
        if known is not None:
            return known
        custom = self.types.get(name)
        if custom is None:
            custom = _registry.get(name)
        if custom is not None:
            return _from_python(custom)
        if name in ("Optional", "Union", "Literal"):
            raise self.fail(node, f"{name} needs type arguments, e.g. {name}[...]")
        candidates = list(_NAMES) + list(self.types) + list(_registry) + ["Optional", "Union", "Literal"]
        close = suggest(name, candidates)
        hint = f"did you mean {close[0]!r}?" if close else "register custom types with dagwright.register_type"
        raise self.fail(node, f"unknown type {name!r}", hint)

    def subscript(self, node: ast.Subscript) -> TypeExpr:
        if isinstance(node.value, ast.Subscript):
            inner = self.subscript(node.value)
            if inner.kind != "list" or inner.bounds:
                raise self.fail(node, f"only list[...] takes length bounds (list[str][1, None]), not {inner}")
            lo, hi = self.bounds_of(node, "list[...]")
            try:
                return TypeExpr("list", inner.args, bounds=(lo, hi))
            except ValueError as exc:
                raise self.fail(node, f"list[...][...]: {exc}") from None
        base = _dotted(node.value)
        if base is not None and base.startswith(("typing.", "t.")):
            base = base.split(".", 1)[1]
        if base in ("int", "float", "str"):
            return self.number_bounds(base, node)
        if base not in _GENERICS:
            raise self.fail(node.value, f"{base or 'this'} does not take type arguments")
        items = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Literal":
            return TypeExpr("literal", values=tuple(self.literal_value(i) for i in items))
        if base == "tuple" or base == "Tuple":
            if len(items) == 2 and isinstance(items[1], ast.Constant) and items[1].value is Ellipsis:
                return TypeExpr("tuple", (self.build(items[0]),), variadic=True)
            if isinstance(node.slice, ast.Tuple) and not items:
                return TypeExpr("tuple", ())
            return TypeExpr("tuple", tuple(self.build(i) for i in items))
        args = [self.build(i) for i in items]
        if base in ("list", "List", "set", "Set", "Optional"):
            if len(args) != 1:
                raise self.fail(node, f"{base} takes one type argument, got {len(args)}")
            return optional(args[0]) if base == "Optional" else list_of(args[0])
        if base in ("dict", "Dict"):
            if len(args) != 2:
                raise self.fail(node, f"{base} takes two type arguments (keys, values), got {len(args)}")
            return TypeExpr("dict", (args[0], args[1]))
        return union(args)  # Union

    def number_bounds(self, base: str, node: ast.Subscript) -> TypeExpr:
        """``float[0, 1]``, ``int[1, None]``: a number with inclusive bounds (None leaves a side open);
        ``str[1, 280]``: a text of 1 to 280 characters."""
        lo, hi = self.bounds_of(node, base)
        try:
            return TypeExpr(base, bounds=(lo, hi))
        except ValueError as exc:
            raise self.fail(node, f"{base}[...]: {exc}") from None

    def bounds_of(self, node: ast.Subscript, base: str) -> tuple[Bound, Bound]:
        """The two bounds written in ``node``'s brackets: numbers (negative too) or None."""
        items = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if len(items) != 2:
            example = {
                "str": "the least and the most characters: str[1, 280]",
                "list[...]": "the least and the most items: list[str][1, None]",
            }.get(base, f"the lowest and the highest value: {base}[0, 1]")
            raise self.fail(node, f"{base}[...] takes two bounds, {example}")
        bounds: list[Bound] = []
        for item in items:
            value: Any = None
            if (
                isinstance(item, ast.UnaryOp)
                and isinstance(item.op, ast.USub)
                and isinstance(item.operand, ast.Constant)
            ):
                value = item.operand.value
                value = -value if isinstance(value, (int, float)) and not isinstance(value, bool) else "?"
            elif isinstance(item, ast.Constant):
                value = item.value
            else:
                value = "?"
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise self.fail(item, f"a bound of {base}[...] must be a number or None")
            bounds.append(value)
        return bounds[0], bounds[1]

    def literal_value(self, node: ast.expr) -> LiteralValue:
        if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, bool))):
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) is int
        ):
            return -node.operand.value
        raise self.fail(node, "Literal values must be strings, integers, booleans or None")


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


# --------------------------------------------------------------------------- from JSON


_MAX_DEPTH = 64  # far beyond any real port type; deeper input is malformed, not a type
_CONTAINER_KEYS = {"kind", "args"}
_JSON_KEYS: dict[str, set[str]] = {
    "list": {*_CONTAINER_KEYS, "bounds"},
    "dict": _CONTAINER_KEYS,
    "union": _CONTAINER_KEYS,
    "tuple": {*_CONTAINER_KEYS, "variadic"},
    "literal": {"kind", "values"},
    "model": {"kind", "name", "fields", "schema", "bases"},
    "named": {"kind", "name", "bases"},
    "int": {"kind", "bounds"},
    "float": {"kind", "bounds"},
    "str": {"kind", "bounds"},
}


def from_json(data: JSONValue, where: str = "type", _depth: int = 0) -> TypeExpr:
    """Rebuild a :class:`TypeExpr` from :meth:`TypeExpr.to_json` output, importing nothing.

    Malformed data raises ``ValueError`` naming the path (``where``) of the bad part.
    """
    if _depth > _MAX_DEPTH:
        raise ValueError(f"{where}: type nested more than {_MAX_DEPTH} levels deep")
    if isinstance(data, str):
        prim = _BY_KIND.get(data)
        if prim is None:
            raise ValueError(f"{where}: unknown type {data!r}")
        return prim
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a type name or object, got {type(data).__name__}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"{where}: unknown type kind {kind!r}")
    unknown = set(data) - _JSON_KEYS.get(kind, {"kind"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)} for a {kind} type")
    args = data.get("args", [])
    if not isinstance(args, list):
        raise ValueError(f"{where}.args: expected a list")
    parsed_args = tuple(from_json(a, f"{where}.args[{i}]", _depth + 1) for i, a in enumerate(args))
    variadic = data.get("variadic", False)
    if not isinstance(variadic, bool):
        raise ValueError(f"{where}.variadic: expected true or false")
    expected_arity = {"list": 1, "dict": 2}.get(kind, 1 if kind == "tuple" and variadic else None)
    if expected_arity is not None and len(parsed_args) != expected_arity:
        raise ValueError(f"{where}: {kind} takes {expected_arity} type argument(s), got {len(parsed_args)}")
    if kind == "union":
        return union(parsed_args)
    if kind in ("int", "float", "str", "list") and "bounds" in data:
        raw = data.get("bounds", [None, None])
        if not isinstance(raw, list) or len(raw) != 2:
            raise ValueError(f"{where}.bounds: expected [lowest, highest], numbers or null")
        try:
            return TypeExpr(kind, parsed_args, bounds=(raw[0], raw[1]))
        except ValueError as exc:
            raise ValueError(f"{where}.bounds: {exc}") from None
    if kind == "literal":
        values = data.get("values")
        if not isinstance(values, list) or not all(v is None or isinstance(v, (str, int, bool)) for v in values):
            raise ValueError(f"{where}.values: expected a list of strings, integers, booleans or null")
        return TypeExpr("literal", values=tuple(values))
    name = data.get("name", "")
    if not isinstance(name, str):
        raise ValueError(f"{where}.name: expected a string")
    if kind in ("model", "named") and not name:
        raise ValueError(f"{where}: a {kind} type needs a 'name'")
    fields: tuple[ModelField, ...] = ()
    schema = ""
    if kind == "model":
        raw_fields = data.get("fields", [])
        if not isinstance(raw_fields, list):
            raise ValueError(f"{where}.fields: expected a list")
        fields = tuple(_model_field_from_json(f, f"{where}.fields[{i}]", _depth) for i, f in enumerate(raw_fields))
        if "schema" in data:
            schema = json.dumps(data["schema"], sort_keys=True, separators=(",", ":"))
    bases = data.get("bases", [])
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ValueError(f"{where}.bases: expected a list of strings")
    return TypeExpr(
        kind,
        parsed_args,
        name=name,
        fields=fields,
        bases=tuple(bases),
        schema=schema,
        variadic=variadic,
    )


def _model_field_from_json(data: JSONValue, where: str, depth: int) -> ModelField:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or "type" not in data:
        raise ValueError(f"{where}: expected an object with a 'name' string and a 'type'")
    required = data.get("required", True)
    if not isinstance(required, bool):
        raise ValueError(f"{where}.required: expected true or false")
    return ModelField(data["name"], from_json(data["type"], f"{where}.type", depth + 1), required)
