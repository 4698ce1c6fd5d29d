"""A GBNF grammar of a signature's outputs that keeps bounded numbers and texts within their bounds.

llama.cpp's servers turn a response format's JSON schema into a grammar, but theirs enforce no
``minimum`` / ``maximum`` of a ``number`` (llama-cpp-python's none at all): a small model asked for
``confidence: float[0, 1]`` answers 1.5 or 10, and only a repair can fix it. A text's ``minLength`` /
``maxLength`` they do enforce, but OpenAI's strict ``json_schema`` form refuses them, so there they are said
in the field's description, which no grammar reads: asked for ``str[5, 60]`` the same model writes a
paragraph. Both servers take a grammar of the request's own (the ``grammar`` field of the request body),
which this module writes for a signature whose outputs hold such a bound: the whole reply as JSON in the
signature's field order, strings of their lengths, lists of their sizes, and each bounded number written
only as a decimal numeral within its bounds (no exponent). A grammar restricts what the model may write; it
changes no value it wrote, and every reply is still validated.

:func:`output_grammar` is None for a signature without such bounds: such a request keeps its response
format, which the server enforces as well as a grammar would.

The first line of a grammar is a comment holding the JSON schema it was made from: a reader of the
server's log sees what it is for, and the loopback test server answers to it.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from dagwright.compiler.signature import SignatureSpec
from dagwright.llm.structured import output_schema

__all__ = [
    "GRAMMAR_SCHEMA_COMMENT",
    "Unsupported",
    "has_bounded_number",
    "has_loose_bounds",
    "number_pattern",
    "number_regex",
    "output_grammar",
    "schema_grammar",
]

GRAMMAR_SCHEMA_COMMENT = "# dagwright output schema: "
"""How the first line of a grammar begins; the rest of the line is the schema as JSON."""

# Bounds with more digits than this make no grammar (a bound of 1e300 would make one of hundreds of
# kilobytes); such a field is left to the response format and the check of the reply.
_MAX_DIGITS = 40


class Unsupported(ValueError):
    """A schema this module writes no grammar for (the request keeps its response format)."""


# --------------------------------------------------------------------------- a small pattern language

# A pattern is a tuple: ("lit", text), ("cls", "a-b"), ("seq", parts), ("alt", parts), ("star", part),
# ("opt", part). It is written as GBNF for the server and as a Python regex for the tests.
Pattern = tuple[Any, ...]
_DIGIT: Pattern = ("cls", "0-9")
_DIGITS: Pattern = ("star", _DIGIT)


def _lit(text: str) -> Pattern:
    return ("lit", text)


def _cls(low: int, high: int) -> Pattern:
    return _lit(str(low)) if low == high else ("cls", f"{low}-{high}")


def _seq(*parts: Pattern) -> Pattern:
    flat: list[Pattern] = []
    for part in parts:
        flat.extend(part[1] if part[0] == "seq" else [part])
    return flat[0] if len(flat) == 1 else ("seq", tuple(flat))


def _alt(*parts: Pattern) -> Pattern:
    unique = tuple(dict.fromkeys(parts))
    return unique[0] if len(unique) == 1 else ("alt", unique)


def _gbnf(p: Pattern) -> str:
    kind = p[0]
    if kind == "lit":
        return json.dumps(str(p[1]))
    if kind == "cls":
        return f"[{p[1]}]"
    if kind == "seq":
        return " ".join(_gbnf(q) for q in p[1])
    if kind == "alt":
        return "(" + " | ".join(_gbnf(q) for q in p[1]) + ")"
    return f"({_gbnf(p[1])}){'*' if kind == 'star' else '?'}"


def _regex(p: Pattern) -> str:
    kind = p[0]
    if kind == "lit":
        return re.escape(str(p[1]))
    if kind == "cls":
        return f"[{p[1]}]"
    if kind == "seq":
        return "".join(_regex(q) for q in p[1])
    if kind == "alt":
        return "(?:" + "|".join(_regex(q) for q in p[1]) + ")"
    return f"(?:{_regex(p[1])}){'*' if kind == 'star' else '?'}"


# --------------------------------------------------------------------------- numbers within bounds


def _same_length(a: str, b: str) -> Pattern:
    """Digit strings of ``len(a)`` digits from ``a`` to ``b`` (leading zeros as written)."""
    if a == b:
        return _lit(a)
    if len(a) == 1:
        return _cls(int(a), int(b))
    if a[0] == b[0]:
        return _seq(_lit(a[0]), _same_length(a[1:], b[1:]))
    rest = len(a) - 1
    if a[1:] == "0" * rest and b[1:] == "9" * rest:
        return _seq(_cls(int(a[0]), int(b[0])), *[_DIGIT] * rest)
    parts = [_seq(_lit(a[0]), _same_length(a[1:], "9" * rest))]
    if int(a[0]) + 1 <= int(b[0]) - 1:
        parts.append(_seq(_cls(int(a[0]) + 1, int(b[0]) - 1), *[_DIGIT] * rest))
    parts.append(_seq(_lit(b[0]), _same_length("0" * rest, b[1:])))
    return _alt(*parts)


def _whole_range(low: int, high: int | None) -> Pattern | None:
    """Whole numbers from ``low`` to ``high`` (None: no end), as JSON writes them (no leading zeros)."""
    if high is not None and low > high:
        return None
    parts: list[Pattern] = []
    if low == 0:
        parts.append(_lit("0"))
        low = 1
        if high is not None and high < 1:
            return parts[0]
    last = len(str(high)) if high is not None else len(str(low))
    for length in range(len(str(low)), last + 1):
        a = max(low, 10 ** (length - 1))
        b = min(high, 10**length - 1) if high is not None else 10**length - 1
        if a <= b:
            parts.append(_same_length(str(a), str(b)))
    if high is None:
        parts.append(_seq(_cls(1, 9), *[_DIGIT] * len(str(low)), _DIGITS))
    return _alt(*parts)


def _fraction_at_least(f: str) -> Pattern:
    """Digit strings F, at least one digit, with 0.F >= 0.f (``f`` without trailing zeros)."""
    if not f:
        return _seq(_DIGIT, _DIGITS)
    d, rest = int(f[0]), f[1:]
    parts = [_seq(_cls(d + 1, 9), _DIGITS)] if d < 9 else []
    parts.append(_seq(_lit(f[0]), _fraction_at_least(rest) if rest else _DIGITS))
    return _alt(*parts)


def _fraction_at_most(f: str) -> Pattern:
    """Digit strings F, at least one digit, with 0.F <= 0.f (``f`` without trailing zeros)."""
    if not f:
        return _seq(_lit("0"), ("star", _lit("0")))
    d, rest = int(f[0]), f[1:]
    parts = [_seq(_cls(0, d - 1), _DIGITS)] if d > 0 else []
    parts.append(_seq(_lit(f[0]), ("opt", _fraction_at_most(rest))))
    return _alt(*parts)


def _fraction_between(a: str, b: str) -> Pattern:
    """Digit strings F, at least one digit, with 0.a <= 0.F <= 0.b (both without trailing zeros, a <= b)."""
    if not a:
        return _fraction_at_most(b)
    da, db = int(a[0]), int(b[0])
    if da == db:
        tail = ("opt", _fraction_at_most(b[1:])) if not a[1:] else _fraction_between(a[1:], b[1:])
        return _seq(_lit(a[0]), tail)
    parts = [_seq(_lit(a[0]), _fraction_at_least(a[1:]) if a[1:] else _DIGITS)]
    if da + 1 <= db - 1:
        parts.append(_seq(_cls(da + 1, db - 1), _DIGITS))
    parts.append(_seq(_lit(b[0]), ("opt", _fraction_at_most(b[1:]))))
    return _alt(*parts)


def _split(value: Decimal) -> tuple[int, str]:
    """A non-negative decimal as its whole part and its fraction digits without trailing zeros."""
    whole = int(value)
    fraction = format(value - whole, "f").partition(".")[2].rstrip("0")
    return whole, fraction


def _magnitudes(low: Decimal, high: Decimal | None, fractions: bool) -> Pattern | None:
    """Numerals without a sign whose value is from ``low`` (>= 0) to ``high`` (None: no end)."""
    if not fractions:
        top = None if high is None else math.floor(high)
        return _whole_range(math.ceil(low), top)
    any_fraction: Pattern = ("opt", _seq(_lit("."), _DIGIT, _DIGITS))
    ia, fa = _split(low)
    if high is None:
        at_least = _seq(_lit("."), _fraction_at_least(fa)) if fa else any_fraction
        above = _whole_range(ia + 1, None)
        return _alt(_seq(_lit(str(ia)), at_least), *([_seq(above, any_fraction)] if above else []))
    ib, fb = _split(high)
    if ia == ib:
        parts = [_seq(_lit(str(ia)), _lit("."), _fraction_between(fa, fb))]
        return _alt(*parts, _lit(str(ia))) if not fa else parts[0]
    at_least = _seq(_lit("."), _fraction_at_least(fa)) if fa else any_fraction
    parts = [_seq(_lit(str(ia)), at_least)]
    between = _whole_range(ia + 1, ib - 1)
    if between is not None:
        parts.append(_seq(between, any_fraction))
    parts.append(_seq(_lit(str(ib)), ("opt", _seq(_lit("."), _fraction_at_most(fb)))))
    return _alt(*parts)


def _decimal(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unsupported(f"{where}: a bound must be a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Unsupported(f"{where}: {value!r} is not a finite number") from None
    if not number.is_finite():
        raise Unsupported(f"{where}: {value!r} is not a finite number")
    if len(format(abs(number), "f").replace(".", "")) > _MAX_DIGITS:
        raise Unsupported(f"{where}: {value!r} has more than {_MAX_DIGITS} digits")
    return number


def number_pattern(low: Any, high: Any, *, integer: bool) -> Pattern:
    """The JSON numerals (no exponent) whose value is from ``low`` to ``high`` (None: no bound); whole
    numbers only when ``integer``. Raises :class:`Unsupported` for empty ranges and unusable bounds."""
    lo, hi = _decimal(low, "minimum"), _decimal(high, "maximum")
    if lo is not None and hi is not None and lo > hi:
        raise Unsupported(f"no number is from {low} to {high}")
    parts: list[Pattern] = []
    if hi is None or hi >= 0:
        positive = _magnitudes(max(lo, Decimal(0)) if lo is not None else Decimal(0), hi, not integer)
        if positive is not None:
            parts.append(positive)
    if lo is None or lo <= 0:
        # -x for x from max(0, -high) to -low: "-0" is JSON's too, and is 0 (within a range from 0).
        start = max(Decimal(0), -hi) if hi is not None else Decimal(0)
        negative = _magnitudes(start, -lo if lo is not None else None, not integer)
        if negative is not None:
            parts.append(_seq(_lit("-"), negative))
    if not parts:
        raise Unsupported(f"no {'whole number' if integer else 'number'} is from {low} to {high}")
    return _alt(*parts)


def number_regex(low: Any, high: Any, *, integer: bool) -> str:
    """:func:`number_pattern` as a Python regex (to be matched whole): what the tests check it with."""
    return _regex(number_pattern(low, high, integer=integer))


# --------------------------------------------------------------------------- schemas


_BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def has_bounded_number(schema: Any) -> bool:
    """Whether a number or an integer anywhere in ``schema`` has a bound."""
    if isinstance(schema, dict):
        if schema.get("type") in ("number", "integer") and any(k in schema for k in _BOUND_KEYS):
            return True
        return any(has_bounded_number(v) for v in schema.values())
    if isinstance(schema, list):
        return any(has_bounded_number(v) for v in schema)
    return False


def has_loose_bounds(schema: Any) -> bool:
    """Whether ``schema`` holds a bound a server's schema grammar may let through: a number's (llama.cpp's
    enforce none) or a text's length (said only in words in OpenAI's strict form)."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and ("minLength" in schema or "maxLength" in schema):
            return True
        return has_bounded_number(schema) or any(has_loose_bounds(v) for v in schema.values())
    if isinstance(schema, list):
        return any(has_loose_bounds(v) for v in schema)
    return False


_COMMON = {
    "ws": '| " " | "\\n" [ \\t]{0,20}',
    "char": '[^"\\\\\\x7F\\x00-\\x1F] | [\\\\] (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": '"\\"" char* "\\""',
    "number": '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]+)? ([eE] [-+]? [0-9]+)?',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws (string ws ":" ws value (ws "," ws string ws ":" ws value)*)? ws "}"',
    "array": '"[" ws (value (ws "," ws value)*)? ws "]"',
}
_DEPENDS = {
    "string": ("char",),
    "value": ("object", "array", "string", "number", "boolean", "null"),
    "object": ("ws", "string", "value"),
    "array": ("ws", "value"),
}


@dataclass
class _Writer:
    """Rules of one grammar as they are written: a schema's parts become named rules, reused when equal."""

    root: dict[str, Any]

    def __post_init__(self) -> None:
        self.rules: dict[str, str] = {}
        self.refs: dict[str, str] = {}

    def common(self, name: str) -> str:
        if name not in self.rules:
            self.rules[name] = _COMMON[name]
            for needed in _DEPENDS.get(name, ()):
                self.common(needed)
        return name

    def rule(self, hint: str, body: str) -> str:
        for name, existing in self.rules.items():
            if existing == body:
                return name
        base = re.sub(r"[^A-Za-z0-9]+", "-", hint).strip("-").lower() or "part"
        name, n = base, 1
        while name in self.rules or name in _COMMON:
            n += 1
            name = f"{base}-{n}"
        self.rules[name] = body
        return name

    def visit(self, schema: Any, hint: str) -> str:
        if schema is True or schema == {}:
            return self.common("value")
        if not isinstance(schema, dict):
            raise Unsupported(f"{hint}: {schema!r} is not a schema")
        if "$ref" in schema:
            return self.ref(str(schema["$ref"]))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return "(" + " | ".join(self.visit(s, hint) for s in schema[key]) + ")"
        if "allOf" in schema:
            if len(schema["allOf"]) != 1:
                raise Unsupported(f"{hint}: allOf of {len(schema['allOf'])} schemas")
            return self.visit(schema["allOf"][0], hint)
        if "const" in schema:
            return _literal(schema["const"])
        if "enum" in schema:
            return "(" + " | ".join(_literal(v) for v in schema["enum"]) + ")"
        kind = schema.get("type")
        if isinstance(kind, list):
            return "(" + " | ".join(self.visit({**schema, "type": k}, hint) for k in kind) + ")"
        if kind in ("number", "integer"):
            return self.number(schema, hint)
        if kind == "string":
            return self.string(schema, hint)
        if kind in ("boolean", "null"):
            return self.common(kind)
        if kind == "array":
            return self.array(schema, hint)
        if kind == "object" or "properties" in schema:
            return self.object(schema, hint)
        if kind is None:
            return self.common("value")
        raise Unsupported(f"{hint}: type {kind!r}")

    def ref(self, ref: str) -> str:
        if ref in self.refs:
            return self.refs[ref]
        if not ref.startswith("#/"):
            raise Unsupported(f"$ref {ref!r} is not local")
        target: Any = self.root
        for part in ref[2:].split("/"):
            if not isinstance(target, dict) or part not in target:
                raise Unsupported(f"$ref {ref!r} points nowhere")
            target = target[part]
        name = self.rule(ref.rsplit("/", 1)[-1], f"<{ref}>")  # reserved now: a model may contain itself
        self.refs[ref] = name
        self.rules[name] = self.visit(target, name)
        return name

    def number(self, schema: dict[str, Any], hint: str) -> str:
        integer = schema.get("type") == "integer"
        # An exclusive bound is written as an inclusive one: the grammar then lets through the bound itself,
        # which the check of the reply refuses; it never keeps out a value the schema allows.
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if low is None and high is None:
            return self.rule("integer", '"-"? ("0" | [1-9] [0-9]{0,15})') if integer else self.common("number")
        return self.rule(f"{hint}-number", _gbnf(number_pattern(low, high, integer=integer)))

    def string(self, schema: dict[str, Any], hint: str) -> str:
        least, most = schema.get("minLength"), schema.get("maxLength")
        if least is None and most is None:
            return self.common("string")
        self.common("char")
        reps = f"{{{least or 0},{'' if most is None else most}}}"
        return self.rule(f"{hint}-string", f'"\\"" char{reps} "\\""')

    def array(self, schema: dict[str, Any], hint: str) -> str:
        self.common("ws")
        if "prefixItems" in schema:
            items = [self.visit(s, f"{hint}-item") for s in schema["prefixItems"]]
            inner = ' ws "," ws '.join(items)
            return self.rule(f"{hint}-tuple", f'"[" ws {inner} ws "]"' if items else '"[" ws "]"')
        item = self.visit(schema.get("items", {}), f"{hint}-item")
        least, most = int(schema.get("minItems") or 0), schema.get("maxItems")
        if most is not None and int(most) == 0:
            return self.rule(f"{hint}-list", '"[" ws "]"')
        tail_most = "" if most is None else int(most) - 1
        rest = f'(ws "," ws {item}){{{max(least - 1, 0)},{tail_most}}}'
        body = f'"[" ws {item} {rest} ws "]"'
        if least == 0:
            body = f'"[" ws ({item} {rest})? ws "]"'
        return self.rule(f"{hint}-list", body)

    def object(self, schema: dict[str, Any], hint: str) -> str:
        self.common("ws")
        properties = schema.get("properties")
        if not properties:
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                value = self.visit(extra, f"{hint}-value")
                key = self.common("string")
                pair = f'{key} ws ":" ws {value}'
                return self.rule(f"{hint}-map", f'"{{" ws ({pair} (ws "," ws {pair})*)? ws "}}"')
            if extra is False:
                return self.rule("empty-object", '"{" ws "}"')
            return self.common("object")
        if set(schema.get("required") or ()) != set(properties):
            raise Unsupported(f"{hint}: an object with optional properties")
        pairs = [f'{_literal(name)} ws ":" ws {self.visit(sub, f"{hint}-{name}")}' for name, sub in properties.items()]
        return self.rule(f"{hint}-object", '"{" ws ' + ' ws "," ws '.join(pairs) + ' ws "}"')


def _literal(value: Any) -> str:
    """A JSON value as a GBNF string literal of its JSON text."""
    return json.dumps(json.dumps(value, ensure_ascii=False), ensure_ascii=False)


def schema_grammar(schema: dict[str, Any]) -> str:
    """A GBNF grammar of the JSON values ``schema`` describes (every property in order and required), with
    bounded numbers kept within their bounds. Raises :class:`Unsupported` for what it cannot write."""
    writer = _Writer(schema)
    top = writer.visit(schema, "output")
    lines = [GRAMMAR_SCHEMA_COMMENT + json.dumps(schema, ensure_ascii=False), f"root ::= {top}"]
    lines += [f"{name} ::= {body}" for name, body in writer.rules.items()]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=512)
def output_grammar(spec: SignatureSpec) -> str | None:
    """The grammar of ``spec``'s outputs when they hold a bounded number or a text of bounded length (see the
    module docstring); None when they hold neither, or hold what no grammar is written for."""
    schema = output_schema(spec)
    if not has_loose_bounds(schema):
        return None
    try:
        return schema_grammar(schema)
    except (Unsupported, RecursionError):
        return None
