"""Structured output: a signature's fields as pydantic models and JSON schemas, and parsing replies.

The output model validates what a model replies; its JSON schema goes into the
request in one of three modes, because OpenAI-compatible servers differ (``auto``,
the default setting, starts with the first and falls back when a server refuses it;
see :mod:`dagwright.llm.client`):

* ``json_schema``: OpenAI's ``response_format={"type": "json_schema", ...}``, strict
  when the schema allows it;
* ``json_object``: ``{"type": "json_object", "schema": ...}`` (llama.cpp's server);
* ``prompt``: no response_format; the schema is written into the prompt between
  ``<output_schema>`` markers and the JSON is found in the reply.

Parsing never invents values: an empty reply, or one missing a field, is an error
that keeps the raw text. It is lenient only in how the JSON is written (raw newlines
in strings, a fenced block, prose around the object, a trailing comma).

:func:`output_budget` is the default ``max_tokens`` of a reply, from the output types.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import BaseModel, ConfigDict, Field, create_model

from dagwright.compiler.signature import MISSING, FieldSpec, SignatureSpec
from dagwright.compiler.suggest import suggest
from dagwright.compiler.types import TypeExpr, registered_types

__all__ = [
    "MAX_OUTPUT_BUDGET",
    "MODES",
    "StructuredMode",
    "StructuredSetting",
    "breaks_bounds",
    "described",
    "input_model",
    "loads_lenient",
    "output_budget",
    "output_model",
    "output_schema",
    "parse_reply",
    "python_type",
    "repair_messages",
    "response_format",
    "validate_inputs",
]

StructuredMode = Literal["json_schema", "json_object", "prompt"]
StructuredSetting = Literal["auto", "json_schema", "json_object", "prompt"]
MODES: tuple[StructuredMode, ...] = ("json_schema", "json_object", "prompt")
"""The structured-output modes, in the order ``auto`` tries them."""
SCHEMA_OPEN = "<output_schema>"
SCHEMA_CLOSE = "</output_schema>"


# --------------------------------------------------------------------------- types -> pydantic


@functools.lru_cache(maxsize=1024)
def python_type(t: TypeExpr) -> Any:
    """A Python annotation pydantic can validate, for a port type."""
    k = t.kind
    if k == "any":
        return Any
    if k == "none":
        return type(None)
    simple = {"str": str, "int": int, "float": float, "bool": bool, "bytes": bytes}.get(k)
    if k == "str" and t.bounds:
        least, most = (None if b is None else int(b) for b in t.bounds)
        return Annotated[str, Field(min_length=least, max_length=most)]
    if simple is not None and t.bounds:
        lo, hi = t.bounds
        return Annotated[simple, Field(ge=lo, le=hi)]
    if simple is not None:
        return simple
    if k == "list" and t.bounds:
        least, most = (None if b is None else int(b) for b in t.bounds)
        return Annotated[list[python_type(t.args[0])], Field(min_length=least, max_length=most)]  # type: ignore[misc]
    if k == "list":
        return list[python_type(t.args[0])]  # type: ignore[misc]
    if k == "dict":
        return dict[python_type(t.args[0]), python_type(t.args[1])]  # type: ignore[misc]
    if k == "tuple":
        if t.variadic:
            return tuple[python_type(t.args[0]), ...]  # type: ignore[misc]
        return tuple[tuple(python_type(a) for a in t.args)] if t.args else tuple[()]  # type: ignore[misc]
    if k == "union":
        return Union[tuple(python_type(a) for a in t.args)]  # noqa: UP007  (built from a runtime tuple)
    if k == "literal":
        return Literal[t.values]
    if k == "model":
        for cls in registered_types().values():
            if f"{cls.__module__}.{cls.__qualname__}" == t.name and issubclass(cls, BaseModel):
                return cls
        fields: dict[str, Any] = {f.name: (python_type(f.type), ... if f.required else None) for f in t.fields}
        return create_model(t.name.rsplit(".", 1)[-1], __config__=ConfigDict(extra="ignore"), **fields)
    return Any  # a named Python class: values pass through unchecked (no JSON form to check against)


def _field(spec: FieldSpec, *, for_input: bool) -> tuple[Any, Any]:
    annotation = python_type(spec.type)
    if for_input and spec.default is not MISSING:
        return annotation, Field(default=spec.default, description=spec.description or None)
    return annotation, Field(..., description=spec.description or None)


def _model_name(spec: SignatureSpec, suffix: str) -> str:
    base = re.sub(r"\W", "", spec.name or "Signature") or "Signature"
    return f"{base}{suffix}"


@functools.lru_cache(maxsize=512)
def output_model(spec: SignatureSpec) -> type[BaseModel]:
    """A pydantic model of the signature's outputs (unknown keys rejected)."""
    fields: dict[str, Any] = {f.name: _field(f, for_input=False) for f in spec.outputs}
    model: type[BaseModel] = create_model(_model_name(spec, "Output"), __config__=ConfigDict(extra="forbid"), **fields)
    return model


@functools.lru_cache(maxsize=512)
def input_model(spec: SignatureSpec) -> type[BaseModel]:
    """A pydantic model of the signature's inputs, strict (no silent coercion), defaults filled."""
    fields: dict[str, Any] = {f.name: _field(f, for_input=True) for f in spec.inputs}
    config = ConfigDict(extra="forbid", strict=True)
    model: type[BaseModel] = create_model(_model_name(spec, "Input"), __config__=config, **fields)
    return model


def validate_inputs(spec: SignatureSpec, inputs: dict[str, Any], *, where: str = "agent") -> dict[str, Any]:
    """Inputs checked against the signature, defaults filled in.

    Raises :class:`InputValidationError` (a ValueError) naming every bad field, what
    was expected and what was given.
    """
    from dagwright.execution.errors import InputValidationError

    fields = {f.name: f for f in spec.inputs}
    unknown = [k for k in inputs if k not in fields]
    missing = [f.name for f in spec.inputs if f.required and f.name not in inputs]
    problems: list[str] = []
    for name in unknown:
        close = suggest(name, fields)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"unknown input {name!r}{hint}; inputs are: {', '.join(fields) or 'none'}")
    problems.extend(f"missing required input {name!r} ({fields[name].type})" for name in missing)
    if not problems:
        try:
            validated = input_model(spec).model_validate(inputs)
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                top = str(err["loc"][0]) if err["loc"] else ""
                expected = fields[top].type if top in fields else "?"
                got = _describe_value(inputs.get(top))
                problems.append(f"input {loc!r} expects {expected}, got {got}: {err['msg']}")
        else:
            return {name: getattr(validated, name) for name in fields}
    first = next(iter(unknown or missing), None)
    raise InputValidationError(f"{where}: " + "; ".join(problems), field=first, errors=problems)


def _describe_value(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


# --------------------------------------------------------------------------- schemas


@functools.lru_cache(maxsize=512)
def _schema_text(spec: SignatureSpec) -> str:
    schema = output_model(spec).model_json_schema()
    return json.dumps(_strictify(schema))


def output_schema(spec: SignatureSpec) -> dict[str, Any]:
    """The JSON schema of the outputs: every object closed and every property required."""
    return json.loads(_schema_text(spec))  # type: ignore[no-any-return]


def _strictify(schema: Any) -> Any:
    """Close objects (additionalProperties false) and require every property, recursively."""
    if isinstance(schema, dict):
        # pydantic's "title" annotations go; a property named "title" (a field of that name) stays.
        out = {k: _strictify(v) for k, v in schema.items() if k != "title" or not isinstance(v, str)}
        if isinstance(schema.get("properties"), dict):
            out["properties"] = {name: _strictify(sub) for name, sub in schema["properties"].items()}
        if isinstance(schema.get("$defs"), dict):
            out["$defs"] = {name: _strictify(sub) for name, sub in schema["$defs"].items()}
        if out.get("type") == "object" and "properties" in out:
            out["required"] = list(out["properties"])
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strictify(v) for v in schema]
    return schema


def _without_string_lengths(schema: Any) -> Any:
    """``schema`` with each string's ``minLength`` / ``maxLength`` moved into its description, in words."""
    if isinstance(schema, list):
        return [_without_string_lengths(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: v if k in ("properties", "$defs") and not isinstance(v, dict) else _without_string_lengths(v)
        for k, v in schema.items()
    }
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: _without_string_lengths(sub) for name, sub in schema["properties"].items()}
    if schema.get("type") == "string" and ("minLength" in schema or "maxLength" in schema):
        least, most = out.pop("minLength", None), out.pop("maxLength", None)
        words = described(TypeExpr("str", bounds=(least, most)))
        out["description"] = f"{out['description']} ({words})" if out.get("description") else words
    return out


def _strict_compatible(schema: Any) -> bool:
    """OpenAI's strict mode does not take open maps (dict[str, T]) or tuple items."""
    if isinstance(schema, dict):
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) or "prefixItems" in schema:
            return False
        if schema.get("type") == "object" and "properties" not in schema and "$ref" not in schema:
            return False
        return all(_strict_compatible(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_strict_compatible(v) for v in schema)
    return True


@functools.lru_cache(maxsize=512)
def response_format(spec: SignatureSpec, mode: StructuredMode) -> dict[str, Any] | None:
    """The ``response_format`` request field for ``mode`` (None in prompt mode).

    Made once per signature and mode and shared by every request: read it, do not change it.
    """
    schema = output_schema(spec)
    if mode == "json_schema":
        name = re.sub(r"[^A-Za-z0-9_-]", "_", spec.name or "output")[:64] or "output"
        strict = _strict_compatible(schema)
        if strict:
            # OpenAI's strict mode refuses minLength / maxLength: there they are said in the field's description
            # and checked on the reply (json_object and the prompt keep them in the schema, where llama.cpp's
            # grammar enforces them).
            schema = _without_string_lengths(schema)
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def schema_block(spec: SignatureSpec) -> str:
    """The schema as written into the prompt in ``prompt`` mode."""
    return f"{SCHEMA_OPEN}{_schema_text(spec)}{SCHEMA_CLOSE}"


def described(t: TypeExpr) -> str:
    """A field's type as the prompt states it: bounds in words, which small models follow where they misread
    ``float[0, 1]``."""
    if not t.bounds:
        return str(t)
    lo, hi = t.bounds
    if t.kind == "str":
        if lo is not None and hi is not None:
            return f"a text of {lo} to {hi} characters"
        return f"a text of at least {lo} character(s)" if lo is not None else f"a text of at most {hi} character(s)"
    if t.kind == "list":
        items = f"a list[{t.args[0]}]"
        if lo is not None and hi is not None:
            return f"{items} of {lo} to {hi} items"
        return f"{items} of at least {lo} item(s)" if lo is not None else f"{items} of at most {hi} item(s)"
    what = "a whole number" if t.kind == "int" else "a number"
    if lo is not None and hi is not None:
        return f"{what} from {lo} to {hi}"
    return f"{what} of at least {lo}" if lo is not None else f"{what} of at most {hi}"


# --------------------------------------------------------------------------- output budget

# Tokens each part of a reply may take, roughly: enough for any sensible answer, few enough that a small model
# repeating itself stops in seconds instead of running to its context limit.
_TEXT_TOKENS = 600
_ITEM_TEXT_TOKENS = 150
_ITEMS = 10
_SCALAR_TOKENS = 16
_FIELD_OVERHEAD = 8
_REPLY_OVERHEAD = 32
MAX_OUTPUT_BUDGET = 4096
"""The most tokens :func:`output_budget` gives a reply, however many fields a signature has."""


def _type_budget(t: TypeExpr, nested: bool) -> int:
    k = t.kind
    if k in ("int", "float", "bool", "none"):
        return _SCALAR_TOKENS
    if k == "literal":
        return _SCALAR_TOKENS + max((len(repr(v)) // 3 for v in t.values), default=0)
    if k == "str" and t.bounds and t.bounds[1] is not None:
        # A token is a character or more, but rare characters take several tokens.
        return min(2 * int(t.bounds[1]) + 8, _ITEM_TEXT_TOKENS if nested else _TEXT_TOKENS)
    if k in ("list", "dict", "tuple"):
        count = _ITEMS
        if k == "list" and t.bounds:
            least, most = t.bounds
            count = int(most) if most is not None else max(_ITEMS, int(least or 0))
        items = [*t.args] if k == "tuple" and not t.variadic else [t.args[-1]] * count
        return sum(_type_budget(a, True) + 2 for a in items) + 4
    if k == "union":
        return max(_type_budget(a, nested) for a in t.args)
    if k == "model":
        return sum(_type_budget(f.type, True) + _FIELD_OVERHEAD for f in t.fields) + 4
    return _ITEM_TEXT_TOKENS if nested else _TEXT_TOKENS  # str, bytes, Any, named classes


@functools.lru_cache(maxsize=512)
def output_budget(spec: SignatureSpec) -> int:
    """The default ``max_tokens`` of a reply for ``spec``: a share per output field by its type (600 for a
    ``str``, less for a ``str`` with a most length, 16 for a number, ten items of a list or as many as its
    most length), at most :data:`MAX_OUTPUT_BUDGET`."""
    total = _REPLY_OVERHEAD + sum(_type_budget(f.type, False) + _FIELD_OVERHEAD for f in spec.outputs)
    return min(total, MAX_OUTPUT_BUDGET)


# --------------------------------------------------------------------------- parsing

# A comma right before a closing bracket, outside strings: matched by scanning, since a regex cannot tell strings.
_CLOSERS = "}]"


def _without_trailing_commas(text: str) -> str:
    out: list[str] = []
    in_string = False
    escaped = False
    pending = -1  # index in ``out`` of a comma that may turn out to be trailing
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch in _CLOSERS and pending >= 0:
            del out[pending]
        if not ch.isspace():
            pending = -1
        if ch == '"':
            in_string = True
        elif ch == ",":
            pending = len(out)
        out.append(ch)
    return "".join(out)


def _json_candidates(text: str) -> list[str]:
    """The parts of a reply that may be its JSON, most specific last: the whole text, a fenced block, the
    span from the first ``{`` to the last ``}`` (prose before or after it)."""
    stripped = text.strip()
    candidates = [stripped]
    fence = re.search(r"```(?:json|JSON)?\s*(.*?)```", stripped, re.DOTALL)
    if fence:
        candidates.append(fence.group(1).strip())
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end and stripped[start : end + 1] not in candidates:
        candidates.append(stripped[start : end + 1])
    return candidates


def _decode_error(exc: json.JSONDecodeError, candidate: str, text: str) -> str:
    # The decoder's own messages end in "at" for some errors ("Invalid control character at").
    message = exc.msg.removesuffix(" at").removesuffix(":")
    where = f"line {exc.lineno} column {exc.colno}"
    near = candidate[max(0, exc.pos - 20) : exc.pos + 20]
    part = "" if candidate == text.strip() else " (in the JSON object found in the reply)"
    return f"{message} at {where}{part}, near {near!r}"


def loads_lenient(text: str) -> tuple[Any, str]:
    """The JSON value in a model's reply, read leniently, and ``""``; or ``(None, error)``.

    Models' JSON often needs one of these, and none changes a value: raw control characters (newlines)
    inside strings, a fenced block, prose before or after the object, a trailing comma. The error quoted
    is the one of the most specific part tried (the object found in the reply, not the prose around it).
    ``NaN`` and ``Infinity``, which Python's reader takes but JSON has not, are refused: no field should
    receive them.
    """
    error = ""
    for candidate in reversed(_json_candidates(text)):
        for attempt in (candidate, _without_trailing_commas(candidate)):
            try:
                return json.loads(attempt, strict=False, parse_constant=_no_constant), ""
            except json.JSONDecodeError as exc:
                error = error or _decode_error(exc, attempt, text)
            except _NotJSONNumber as exc:
                error = error or f"{exc} is not a number JSON allows (write a finite number, or null)"
    return None, error


class _NotJSONNumber(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotJSONNumber(name)


_OUT_OF_BOUNDS = frozenset(
    ("greater_than_equal", "less_than_equal", "too_short", "too_long", "string_too_short", "string_too_long")
)


def _problems(spec: SignatureSpec, exc: pydantic.ValidationError) -> list[str]:
    """What is wrong with a reply, one line per error; a value outside its field's bounds says the bounds in
    words ("1.4 is not a number from 0 to 1"), as the prompt did."""
    fields = {f.name: f.type for f in spec.outputs}
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        field = fields.get(str(err["loc"][0])) if len(err["loc"]) == 1 else None
        if err["type"] in _OUT_OF_BOUNDS and field is not None and field.without_none().bounds:
            given = err["input"]
            if isinstance(given, str):
                start = given if len(given) <= 40 else given[:37] + "..."
                shown = f"{start!r} ({len(given)} characters)"
            else:
                shown = repr(given) if not isinstance(given, list) else f"{len(given)} item(s)"
            problems.append(f"{loc}: {err['msg']}: {shown} is not {described(field.without_none())}")
        else:
            problems.append(f"{loc}: {err['msg']}")
    return problems


# A number outside its bounds, a text outside its lengths: what a server's schema grammar lets through.
_LOOSE_BOUNDS = frozenset(
    ("greater_than_equal", "less_than_equal", "greater_than", "less_than", "string_too_short", "string_too_long")
)


def breaks_bounds(spec: SignatureSpec, text: str | None) -> bool:
    """Whether ``text`` is a JSON object whose only fault, or one of them, is a number outside its bounds or a
    text outside its lengths: what a server's schema grammar let through (llama.cpp's enforce no numeric
    bounds, and no lengths OpenAI's strict form says only in a description)."""
    data, error = loads_lenient(text or "")
    if error or not isinstance(data, dict):
        return False
    try:
        output_model(spec).model_validate(data)
    except pydantic.ValidationError as exc:
        return any(err["type"] in _LOOSE_BOUNDS for err in exc.errors())
    return False


def repair_messages(messages: list[dict[str, str]], problems: list[str]) -> list[dict[str, str]]:
    """The messages of the one repair request: the call's, its last message followed by what was wrong with the
    reply. The reply itself is not sent back: small models copy a reply they are shown, mistakes included (a
    135M-parameter model fixed an out-of-range value 4 times in 15 when shown its reply, 10 in 15 told only
    what was wrong), and a runaway reply sent back would overflow the context."""
    note = (
        "Your previous reply could not be used: "
        + "; ".join(problems)
        + ". Reply again with only the JSON object, with every field."
    )
    last = messages[-1] if messages else None
    if last is None or last.get("role") != "user":
        return [*messages, {"role": "user", "content": note}]
    return [*messages[:-1], {**last, "content": f"{last['content']}\n\n{note}"}]


def parse_reply(spec: SignatureSpec, text: str | None) -> tuple[dict[str, Any] | None, list[str]]:
    """``(outputs, [])`` for a valid reply, or ``(None, problems)`` saying what is wrong with it."""
    if text is None or not text.strip():
        return None, ["the reply is empty; a JSON object with the output fields was expected"]
    data, decode_error = loads_lenient(text)
    if decode_error:
        return None, [f"the reply is not valid JSON: {decode_error}"]
    if not isinstance(data, dict):
        return None, [f"the reply is JSON {type(data).__name__}, not an object with the output fields"]
    try:
        validated = output_model(spec).model_validate(data)
    except pydantic.ValidationError as exc:
        return None, _problems(spec, exc)
    return validated.model_dump(mode="python"), []
