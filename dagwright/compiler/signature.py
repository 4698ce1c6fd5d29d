"""Signatures: the typed inputs and outputs of an agent.

Two forms describe the same thing:

* text, ``"question: str -> answer: str, confidence: float"``, parsed with Python's
  own parser: each side is read as the parameter list of a function, so names,
  annotations and defaults follow Python's grammar exactly;
* a class, ``class QA(Signature)`` with :func:`InputField` / :func:`OutputField`
  attributes and the docstring as the instructions.

Both produce a :class:`SignatureSpec`, the plain immutable value the rest of the
compiler works with. :func:`as_signature` accepts every form wherever a signature
is taken.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from dagwright.compiler.suggest import suggest
from dagwright.compiler.types import STR as _STR
from dagwright.compiler.types import (
    TypeExpr,
    TypeSyntaxError,
    bounded,
    from_python,
    json_key,
    optional,
    registry_generation,
    sized,
    type_from_ast,
    value_misfit,
)

__all__ = [
    "MISSING",
    "FieldSpec",
    "InputField",
    "OutputField",
    "Signature",
    "SignatureError",
    "SignatureSpec",
    "as_signature",
    "make_signature",
    "parse_signature",
]


class _Missing:
    """The marker for "no default"; a singleton that survives copy and pickle."""

    _instance: ClassVar[_Missing | None] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class SignatureError(ValueError):
    """A signature that cannot be understood.

    ``text`` is the signature text (empty for the class form), ``position`` a
    0-based offset into it and ``length`` the width of the offending part;
    ``field`` names the field when one is at fault. ``str()`` quotes the text and
    points at the position.
    """

    def __init__(
        self,
        message: str,
        text: str = "",
        position: int | None = None,
        *,
        length: int = 1,
        field: str | None = None,
        hint: str = "",
    ) -> None:
        self.message = message
        self.text = text
        self.position = position
        self.length = max(1, length)
        self.field = field
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        head = self.message + (f" ({self.hint})" if self.hint else "")
        if not self.text or self.position is None:
            return head
        line_start = self.text.rfind("\n", 0, self.position) + 1
        line_end = self.text.find("\n", self.position)
        line = self.text[line_start : line_end if line_end != -1 else len(self.text)]
        column = self.position - line_start
        width = max(1, min(self.length, len(line) - column))
        return f"{head}\n    {line}\n    {' ' * column}{'^' * width}"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One input or output field: its name, type, description and default."""

    name: str
    type: TypeExpr
    role: Literal["input", "output"]
    description: str = ""
    default: Any = field(default=MISSING, compare=False)
    # What equality and hashing see of the default: specs are cache keys, and a list
    # or dict default (``transcript: list[str] = []``) is not hashable as it is.
    _default_key: Any = field(default=MISSING, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.default is not MISSING:
            object.__setattr__(self, "_default_key", json_key(self.default))

    @property
    def required(self) -> bool:
        """An input without a default is required; outputs are always produced."""
        return self.role == "output" or self.default is MISSING

    def __str__(self) -> str:
        text = f"{self.name}: {self.type}"
        if self.default is not MISSING:
            text += f" = {self.default!r}"
        return text


@dataclass(frozen=True, slots=True)
class SignatureSpec:
    """The normalized signature: ordered input and output fields plus instructions."""

    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...]
    instructions: str = ""
    name: str = ""

    @property
    def input_fields(self) -> Mapping[str, FieldSpec]:
        return MappingProxyType({f.name: f for f in self.inputs})

    @property
    def output_fields(self) -> Mapping[str, FieldSpec]:
        return MappingProxyType({f.name: f for f in self.outputs})

    def __str__(self) -> str:
        return f"{', '.join(map(str, self.inputs))} -> {', '.join(map(str, self.outputs))}"


# --------------------------------------------------------------------------- text form

_PREFIX = "def _("


def parse_signature(text: str, types: Mapping[str, object] | None = None) -> SignatureSpec:
    """Parse ``"inputs -> outputs"``; results are cached.

    Untyped names are ``str``. ``types`` adds names for custom types (pydantic
    models, classes) next to those registered with ``register_type``.
    """
    if not isinstance(text, str):
        raise TypeError(f"a signature string is expected, got {type(text).__name__}")
    if types:
        try:
            key = frozenset(types.items())
        except TypeError:
            return _parse(text, types)
        return _parse_with_types(text, key, registry_generation())
    return _parse_cached(text, registry_generation())


@functools.lru_cache(maxsize=1024)
def _parse_cached(text: str, generation: int) -> SignatureSpec:
    return _parse(text, None)


@functools.lru_cache(maxsize=256)
def _parse_with_types(text: str, types: frozenset[tuple[str, object]], generation: int) -> SignatureSpec:
    return _parse(text, dict(types))


_CLOSING = {"(": ")", "[": "]", "{": "}"}


def _find_arrows(text: str) -> list[int]:
    """Offsets of every ``->`` outside brackets and string literals.

    Unbalanced brackets are reported here, where the arrow split would otherwise
    hide them behind a misleading "missing '->'".
    """
    arrows: list[int] = []
    if not any(ch in text for ch in "'\"()[]{}"):  # the common case: nothing nested
        i = text.find("->")
        while i != -1:
            arrows.append(i)
            i = text.find("->", i + 2)
        return arrows
    opened: list[int] = []
    quote = ""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            opened.append(i)
        elif ch in ")]}":
            if not opened or _CLOSING[text[opened[-1]]] != ch:
                raise SignatureError(f"unmatched {ch!r}", text, i)
            opened.pop()
        elif ch == "-" and not opened and text.startswith("->", i):
            arrows.append(i)
            i += 2
            continue
        i += 1
    if opened:
        raise SignatureError(f"{text[opened[-1]]!r} is never closed", text, opened[-1])
    return arrows


def _parse(text: str, types: Mapping[str, object] | None) -> SignatureSpec:
    if not text.strip():
        raise SignatureError("empty signature: expected 'inputs -> outputs'", text, 0 if text else None)
    arrows = _find_arrows(text)
    if not arrows:
        raise SignatureError(
            "missing '->' between input and output fields",
            text,
            len(text.rstrip()),
            hint="write it as 'question: str -> answer: str'",
        )
    if len(arrows) > 1:
        raise SignatureError("more than one '->' in the signature", text, arrows[1], length=2)
    arrow = arrows[0]
    left, right = text[:arrow], text[arrow + 2 :]
    if not left.strip():
        raise SignatureError("no input fields before '->'", text, arrow, length=2)
    if not right.strip():
        raise SignatureError("no output fields after '->'", text, arrow, length=2)
    inputs = _parse_side(text, left, 0, "input", types)
    outputs = _parse_side(text, right, arrow + 2, "output", types)
    # A side may hold no name yet not be blank: a lone backslash or a comment.
    if not inputs:
        raise SignatureError("no input fields before '->'", text, arrow, length=2)
    if not outputs:
        raise SignatureError("no output fields after '->'", text, arrow, length=2)
    seen = {f.name for f in inputs}
    for f in outputs:
        if f.name in seen:
            pos = _name_position(text, f.name, arrow + 2)
            raise SignatureError(
                f"field {f.name!r} is both an input and an output",
                text,
                pos,
                length=len(f.name),
                field=f.name,
                hint="rename the output, e.g. 'improved_" + f.name + "'",
            )
    return SignatureSpec(inputs, outputs)


def _literal_default(text: str, name: str, node: ast.expr, pos: int) -> Any:
    """The value of a default written in a text signature: a literal that is JSON data."""
    try:
        default = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        # TypeError: a literal that cannot be built, e.g. {[1]: 2} (an unhashable key)
        raise SignatureError(
            f"the default of input field {name!r} must be a literal value", text, pos, field=name
        ) from None
    if not _is_json(default):
        raise SignatureError(
            f"the default of input field {name!r} must be JSON data, got {default!r}",
            text,
            pos,
            field=name,
            hint="use None, True/False, numbers, strings, lists or dicts with string keys",
        )
    return default


def _parse_side(
    text: str, side: str, start: int, role: Literal["input", "output"], types: Mapping[str, object] | None
) -> tuple[FieldSpec, ...]:
    where = "input fields" if role == "input" else "output fields"
    # The side is parsed as a function's parameter list: Python's own grammar for
    # "name: type = default, ...". Lines keep their numbers, so positions map back.
    source = f"{_PREFIX}{side}\n): pass"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        pos = _map_position(side, start, exc.lineno or 1, (exc.offset or 1) - 1, chars=True)
        raise SignatureError(f"invalid syntax in the {where}: {exc.msg}", text, pos) from None
    fn = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(fn, ast.FunctionDef) or fn.name != "_" or len(fn.body) != 1:
        raise SignatureError(f"invalid {where}", text, start, length=len(side))
    args = fn.args
    for odd, what in ((args.vararg, "*"), (args.kwarg, "**")):
        if odd is not None:
            pos = _map_position(side, start, odd.lineno, odd.col_offset)
            raise SignatureError(f"unexpected '{what}' in the {where}", text, max(start, pos - len(what)))
    if args.posonlyargs or args.kwonlyargs:
        raise SignatureError(f"unexpected '/' or '*' in the {where}", text, start, length=len(side))
    params = args.args
    defaults: list[ast.expr | None] = [None] * (len(params) - len(args.defaults)) + list(args.defaults)
    fields: list[FieldSpec] = []
    names: set[str] = set()
    for param, default_node in zip(params, defaults, strict=True):
        if param.arg in names:
            pos = _map_position(side, start, param.lineno, param.col_offset)
            raise SignatureError(
                f"duplicate {role} field {param.arg!r}", text, pos, length=len(param.arg), field=param.arg
            )
        names.add(param.arg)
        if param.annotation is None:
            ftype = _STR
        else:
            try:
                ftype = type_from_ast(param.annotation, types)
            except TypeSyntaxError as exc:
                raise SignatureError(
                    f"{role} field {param.arg!r}: {exc.message}",
                    text,
                    _map_position(side, start, exc.lineno, exc.offset),
                    length=exc.length,
                    field=param.arg,
                    hint=exc.hint,
                ) from None
        default: Any = MISSING
        if default_node is not None:
            dpos = _map_position(side, start, default_node.lineno, default_node.col_offset)
            if role == "output":
                raise SignatureError(f"output field {param.arg!r} cannot have a default", text, dpos, field=param.arg)
            default = _literal_default(text, param.arg, default_node, dpos)
            if default is None:
                ftype = _none_allowed(ftype)
            why = value_misfit(default, ftype)
            if why is not None:
                raise SignatureError(
                    f"the default of input field {param.arg!r} does not fit its type {ftype}: {why}",
                    text,
                    dpos,
                    field=param.arg,
                )
        fields.append(FieldSpec(param.arg, ftype, role, "", default))
    return tuple(fields)


def _col(side: str, lineno: int, byte_col: int) -> int:
    """The character column of a byte column on line ``lineno`` of the wrapped source."""
    lines = (_PREFIX + side).split("\n")
    line = lines[min(lineno, len(lines)) - 1]
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _map_position(side: str, start: int, lineno: int, col: int, chars: bool = False) -> int:
    """Map a (line, column) of the wrapped source back to an offset in the signature text."""
    lines = side.split("\n")
    if lineno > len(lines):  # the closing scaffold: point at the end of this side
        return start + len(side.rstrip())
    column = col if chars else _col(side, lineno, col)
    if lineno == 1:
        column -= len(_PREFIX)
    offset = start + sum(len(line) + 1 for line in lines[: lineno - 1]) + max(0, column)
    return min(offset, start + len(side))


def _name_position(text: str, name: str, start: int) -> int:
    pos = text.find(name, start)
    return pos if pos != -1 else start


# --------------------------------------------------------------------------- class form


class _FieldInfo:
    __slots__ = ("default", "description", "ge", "le", "max_length", "min_length", "role")

    def __init__(
        self,
        role: Literal["input", "output"],
        description: str,
        default: Any,
        ge: int | float | None = None,
        le: int | float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
    ) -> None:
        self.role = role
        self.description = description
        self.default = default
        self.ge = ge
        self.le = le
        self.min_length = min_length
        self.max_length = max_length

    def __repr__(self) -> str:
        fn = "InputField" if self.role == "input" else "OutputField"
        extra = "" if self.default is MISSING else f", default={self.default!r}"
        bounds = [(name, getattr(self, name)) for name in ("ge", "le", "min_length", "max_length")]
        extra += "".join(f", {name}={value!r}" for name, value in bounds if value is not None)
        return f"{fn}(description={self.description!r}{extra})"


def _none_allowed(ftype: TypeExpr) -> TypeExpr:
    """``ftype`` with None added: an input whose default is None is optional in its type too
    (``filters: dict = InputField(default=None)`` means ``dict | None``, as in pydantic)."""
    return ftype if value_misfit(None, ftype) is None else optional(ftype)


def InputField(
    description: str = "",
    *,
    default: Any = MISSING,
    desc: str | None = None,
    ge: int | float | None = None,
    le: int | float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    """Declare an input field of a :class:`Signature`; a default makes it optional. ``ge`` / ``le`` bound a
    number (inclusive): the field's type becomes ``float[ge, le]``; ``min_length`` / ``max_length`` bound the
    characters of a ``str`` (``str[1, 280]``) or the items of a list (``list[str][1, None]``)."""
    return _FieldInfo("input", desc if desc is not None else description, default, ge, le, min_length, max_length)


def OutputField(
    description: str = "",
    *,
    desc: str | None = None,
    ge: int | float | None = None,
    le: int | float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    """Declare an output field of a :class:`Signature`. ``ge`` / ``le`` bound a number, ``min_length`` /
    ``max_length`` the characters of a ``str`` or the items of a list (inclusive): sent in the reply's JSON
    schema, checked on the reply, and part of the compile-time type check."""
    return _FieldInfo("output", desc if desc is not None else description, MISSING, ge, le, min_length, max_length)


class Signature:
    """Base class of class-form signatures.

    ::

        class QA(Signature):
            \"\"\"Answer the question.\"\"\"
            question: str = InputField(description="User question")
            answer: str = OutputField(description="Answer")

    ``QA.input_fields`` / ``QA.output_fields`` are ordered mappings name -> field,
    on the class and on instances; ``QA.instructions`` is the docstring.
    Subclasses extend their bases' fields.
    """

    __signature_spec__: ClassVar[SignatureSpec] = SignatureSpec((), ())
    input_fields: ClassVar[Mapping[str, FieldSpec]] = MappingProxyType({})
    output_fields: ClassVar[Mapping[str, FieldSpec]] = MappingProxyType({})
    instructions: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("__signature_spec__")
        if spec is None:
            spec = _spec_from_class(cls)
        _install(cls, spec)

    @classmethod
    def spec(cls) -> SignatureSpec:
        """The normalized :class:`SignatureSpec` of this signature."""
        return cls.__signature_spec__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__signature_spec__})"


def _install(cls: type[Signature], spec: SignatureSpec) -> None:
    cls.__signature_spec__ = spec
    cls.input_fields = spec.input_fields
    cls.output_fields = spec.output_fields
    cls.instructions = spec.instructions


def _spec_from_class(cls: type[Signature]) -> SignatureSpec:
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # an annotation that does not evaluate
        raise SignatureError(f"cannot read the annotations of signature {cls.__qualname__}: {exc}") from None
    inputs: dict[str, FieldSpec] = {}
    outputs: dict[str, FieldSpec] = {}
    for base in reversed(cls.__mro__[1:]):
        base_spec = base.__dict__.get("__signature_spec__")
        if isinstance(base_spec, SignatureSpec):
            inputs.update((f.name, f) for f in base_spec.inputs)
            outputs.update((f.name, f) for f in base_spec.outputs)
    own_annotations = inspect.get_annotations(cls)
    for name in own_annotations:
        if name.startswith("_") or name in ("input_fields", "output_fields", "instructions"):
            continue
        info = cls.__dict__.get(name, MISSING)
        if not isinstance(info, _FieldInfo):
            raise SignatureError(
                f"field {name!r} of signature {cls.__qualname__} needs InputField() or OutputField()",
                field=name,
                hint=f"{name}: ... = InputField(description='...')",
            )
        try:
            ftype = sized(bounded(from_python(hints[name]), info.ge, info.le), info.min_length, info.max_length)
        except (TypeError, ValueError) as exc:
            raise SignatureError(
                f"unsupported type for field {name!r} of signature {cls.__qualname__}: {exc}", field=name
            ) from None
        if info.default is None and info.role == "input":
            ftype = _none_allowed(ftype)
        if info.default is not MISSING:
            _require_json(info.default, cls.__qualname__, name)
            why = value_misfit(info.default, ftype)
            if why is not None:
                raise SignatureError(
                    f"the default of field {name!r} of signature {cls.__qualname__} does not fit its type "
                    f"{ftype}: {why}",
                    field=name,
                )
        spec = FieldSpec(name, ftype, info.role, info.description, info.default)
        other = outputs if info.role == "input" else inputs
        if name in other:
            raise SignatureError(
                f"field {name!r} of signature {cls.__qualname__} is both an input and an output", field=name
            )
        (inputs if info.role == "input" else outputs)[name] = spec
    for name, value in cls.__dict__.items():
        if isinstance(value, _FieldInfo) and name not in own_annotations:
            raise SignatureError(
                f"field {name!r} of signature {cls.__qualname__} has no type annotation",
                field=name,
                hint=f"{name}: str = {value!r}",
            )
    doc = cls.__dict__.get("__doc__")
    return SignatureSpec(
        tuple(inputs.values()), tuple(outputs.values()), inspect.cleandoc(doc) if doc else "", cls.__qualname__
    )


def _require_json(value: Any, owner: str, name: str) -> None:
    if not _is_json(value):
        raise SignatureError(
            f"the default of field {name!r} of signature {owner} must be JSON data, got {value!r}", field=name
        )


def _is_json(value: Any, depth: int = 0) -> bool:
    """Is ``value`` data the IR can carry (finite numbers, string keys; what ``freeze_json`` accepts)?"""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if depth >= 100:  # as deep as the IR accepts; also stops on data that contains itself
        return False
    if isinstance(value, (list, tuple)):
        return all(_is_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False


# --------------------------------------------------------------------------- normalizing


def make_signature(
    text: str,
    instructions: str = "",
    *,
    name: str = "StringSignature",
    types: Mapping[str, object] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> type[Signature]:
    """A :class:`Signature` subclass from text, with optional instructions and field descriptions."""
    spec = parse_signature(text, types)
    if descriptions:
        unknown = set(descriptions) - {f.name for f in spec.inputs + spec.outputs}
        if unknown:
            names = [f.name for f in spec.inputs + spec.outputs]
            bad = sorted(unknown)[0]
            close = suggest(bad, names)
            raise SignatureError(
                f"description given for unknown field {bad!r}",
                text,
                field=bad,
                hint=f"did you mean {close[0]!r}?" if close else f"fields are {', '.join(names)}",
            )
        spec = SignatureSpec(
            tuple(_describe(f, descriptions) for f in spec.inputs),
            tuple(_describe(f, descriptions) for f in spec.outputs),
        )
    spec = SignatureSpec(spec.inputs, spec.outputs, instructions, name)
    cls = type(name, (Signature,), {"__signature_spec__": spec, "__doc__": instructions or None})
    return cls


def _describe(field: FieldSpec, descriptions: Mapping[str, str]) -> FieldSpec:
    text = descriptions.get(field.name)
    if text is None:
        return field
    return FieldSpec(field.name, field.type, field.role, text, field.default)


def as_signature(obj: object) -> SignatureSpec:
    """Normalize any accepted signature form to a :class:`SignatureSpec`.

    Accepts a :class:`SignatureSpec`, a :class:`Signature` subclass or instance,
    or signature text.
    """
    if isinstance(obj, SignatureSpec):
        return obj
    if isinstance(obj, str):
        return parse_signature(obj)
    if isinstance(obj, type) and issubclass(obj, Signature):
        return obj.__signature_spec__
    if isinstance(obj, Signature):
        return type(obj).__signature_spec__
    raise TypeError(
        "a signature must be a Signature subclass, an instance of one, or a string like "
        f"'question: str -> answer: str'; got {type(obj).__name__}"
    )
