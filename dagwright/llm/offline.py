"""The embedded offline model: deterministic replies that validate against the requested JSON schema.

With no LLM configured, agents are answered by :class:`OfflineModel`. It runs in-process, needs no
network and no weights, and its replies are:

- **structured**: when the request carries a JSON schema, the reply is JSON that validates against it
  (what pydantic v2's ``model_json_schema()`` emits: objects, arrays, tuples, dicts, unions, enums,
  literals, nested models through ``$ref``, numeric and length bounds, common string formats);
- **deterministic**: the same messages and schema give the same reply in every process (everything
  is derived from SHA-256 digests, never from :func:`hash`);
- **derived from the input**: every message is hashed, so different conversations give different
  replies, and strings quote the last user message so a reply reads as related to its question:
  the field ``answer`` for the user text ``What is ML?`` becomes ``"answer to 'What is ML?' (offline 1a2b)"``.

String rule: ``"<label> <to|for> '<excerpt>' (offline <tag>)"``, where ``label`` is the property
name in words (``reason_summary`` -> ``reason summary``; list items are numbered: ``sources`` ->
``source 1``, ``source 2``), the preposition is ``to`` for answer-like names (answer, reply,
response, rebuttal, solution, ...) and ``for`` otherwise, ``excerpt`` is at most 40 characters of the
last user message (the value of its first ``key: value`` line when there is one, since inputs are
usually rendered that way; otherwise its first line that is not a heading; ``<output_schema>``
blocks are ignored), and ``tag`` is four hex digits of the conversation's digest, so two
conversations that share their last user message still get different strings.

Other values: numbers in ``[0, 1]`` for properties named like confidence/score/probability when the
schema gives no bounds (otherwise inside the bounds), integers from 1 to 10 unless bounded, lists of
2 or 3 items (within minItems/maxItems), dicts of 2 or 3 entries keyed by words of the excerpt,
enum/Literal members picked by digest, the first non-null branch of a union.

Schema keywords that are only approximated: ``pattern`` (a string is built from the regular
expression's parse tree and checked with :func:`re.search`; lookarounds and backreferences may
defeat it, in which case the readable string is kept), ``uniqueItems`` over tiny domains (fewer items
than asked when there are not enough distinct values), ``patternProperties``, ``not``,
``if``/``then``/``else`` and ``dependentRequired`` (ignored). Dict keys are words, so ``dict[int, T]``
(whose schema does not say the keys are integers) does not validate.

Token counts are an estimate (see :func:`count_tokens` and :func:`count_prompt_tokens`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OFFLINE_MODEL_NAME",
    "SCHEMA_CLOSE",
    "SCHEMA_OPEN",
    "Completion",
    "OfflineModel",
    "count_prompt_tokens",
    "count_tokens",
    "described_lengths",
    "find_schema",
    "message_text",
    "offline_tool_calls",
    "resolve_schema",
]

OFFLINE_MODEL_NAME = "dagwright-offline"
SCHEMA_OPEN = "<output_schema>"
SCHEMA_CLOSE = "</output_schema>"

# Per-message overhead (role, separators) and reply priming, as in OpenAI's published counting recipe.
_TOKENS_PER_MESSAGE = 4
_TOKENS_REPLY_PRIMING = 3
_CHARS_PER_TOKEN = 4

_EXCERPT_CHARS = 40
# Nesting depth after which optional parts are left out, so recursive models terminate.
_SOFT_DEPTH = 5
# Nesting depth at which a schema is declared to have no finite instance.
_HARD_DEPTH = 40

_SCHEMA_BLOCK = re.compile(re.escape(SCHEMA_OPEN) + r"(.*?)" + re.escape(SCHEMA_CLOSE), re.DOTALL)
_KEY_VALUE_LINE = re.compile(r"^[A-Za-z_][\w\- ]{0,39}:\s+(\S.*)$")
_TAG_LINE = re.compile(r"^<([A-Za-z_][\w\-]*)>(.+)</\1>$")
_CONFIDENCE_NAMES = re.compile(r"confidence|score|probab|likelihood|certainty|ratio|fraction|prob$|^p$")
_TO_WORDS = frozenset(
    {"answer", "reply", "response", "rebuttal", "solution", "retort", "rejoinder", "feedback", "comment", "reaction"}
)
# fmt: off
_STOP_WORDS = frozenset({
    "the", "and", "for", "with", "what", "which", "who", "whom", "whose", "why", "how", "when", "where", "that",
    "this", "these", "those", "are", "was", "were", "can", "could", "should", "would", "will", "does", "did", "has",
    "have", "had", "not", "but", "from", "into", "about", "your", "you", "our", "its",
})
_TYPE_KEYWORDS = frozenset({
    "type", "properties", "items", "prefixItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "format",
    "additionalProperties",
})
# fmt: on


@dataclass(frozen=True)
class Completion:
    """One reply of the offline model."""

    content: str
    """The assistant message text (JSON text for structured requests)."""
    prompt_tokens: int
    completion_tokens: int
    model: str
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    """Function calls asked for, as (call id, function name, arguments as JSON text); then ``content`` is empty."""

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


def message_text(message: Mapping[str, Any], index: int = 0) -> str:
    """The text of one chat message: its string content, or its text parts joined by newlines.

    ``index`` only serves the error message.
    """
    if not isinstance(message, Mapping):
        raise TypeError(f"message {index} must be a dict with 'role' and 'content', got {type(message).__name__}")
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts: list[str] = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    raise TypeError(
        f"message {index}: 'content' must be a string, a list of content parts or None, got {type(content).__name__}"
    )


def count_tokens(text: str) -> int:
    """Estimated tokens of a text: ``ceil(len(text) / 4)``; zero only for the empty string."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def count_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Estimated prompt tokens: per message ``count_tokens(content) + 4``, plus 3 for the reply priming.

    The JSON schema passed in ``response_format`` is not counted.
    """
    total = _TOKENS_REPLY_PRIMING
    for index, message in enumerate(messages):
        total += count_tokens(message_text(message, index)) + _TOKENS_PER_MESSAGE
    return total


def _check_messages(messages: Any) -> list[Mapping[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of chat messages, got {type(messages).__name__}")
    checked: list[Mapping[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"message {index} must be a dict with 'role' and 'content', got {type(message).__name__}")
        role = message.get("role")
        if not isinstance(role, str):
            raise ValueError(f"message {index} has no 'role' string (got {role!r})")
        message_text(message, index)
        checked.append(message)
    return checked


def _schema_from_prompt(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    found: tuple[int, str] | None = None
    for index, message in enumerate(messages):
        blocks = _SCHEMA_BLOCK.findall(message_text(message, index))
        if blocks:
            found = (index, blocks[-1])
    if found is None:
        return None
    index, text = found
    text = text.strip()
    if text.startswith("```"):
        # A fenced block: drop the opening fence line (it may name a language) and the closing fence.
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the {SCHEMA_OPEN} block in message {index} is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise ValueError(f"the {SCHEMA_OPEN} block in message {index} must hold a JSON object (a JSON schema)")
    return schema


def _checked_schema(schema: Any, where: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise ValueError(f"{where} must be a JSON schema object, got {type(schema).__name__}")
    return schema


def _response_type(response_format: Mapping[str, Any] | None) -> str:
    if response_format is None:
        return "text"
    if not isinstance(response_format, Mapping):
        raise TypeError(f"response_format must be a dict or None, got {type(response_format).__name__}")
    kind = response_format.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise ValueError(f"response_format type must be 'text', 'json_object' or 'json_schema', got {kind!r}")
    return str(kind)


def find_schema(
    messages: Sequence[Mapping[str, Any]], response_format: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The JSON schema the reply must match, or None for a free-text reply.

    Looked for, in order: ``response_format={"type": "json_schema", "json_schema": {"schema": ...}}``
    (OpenAI's form); ``response_format={"type": "json_object", "schema": ...}`` (llama.cpp's form);
    then the last ``<output_schema>...</output_schema>`` block in the messages (prompt mode).
    """
    kind = _response_type(response_format)
    if response_format is not None and kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping):
            raise ValueError("response_format of type 'json_schema' needs a 'json_schema' object with a 'schema'")
        if spec.get("schema") is not None:
            return _checked_schema(spec["schema"], "response_format['json_schema']['schema']")
    if response_format is not None and kind == "json_object" and response_format.get("schema") is not None:
        return _checked_schema(response_format["schema"], "response_format['schema']")
    return _schema_from_prompt(_check_messages(messages))


def resolve_schema(schema: Any, root: dict[str, Any] | None = None) -> dict[str, Any]:
    """``schema`` with its ``$ref`` (local, into ``root``, by default the schema itself) and ``allOf`` resolved."""
    base = root if root is not None else schema if isinstance(schema, dict) else {}
    return _Generator(root=base, seed=b"", excerpt="", tag="").resolve(schema)


def _words(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return " ".join(re.sub(r"[_\-\s]+", " ", spaced).split()).lower()


def _singular(label: str) -> str:
    head, _, last = label.rpartition(" ")
    if last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith("s") and len(last) > 3 and not last.endswith(("ss", "is", "us")):
        last = last[:-1]
    return f"{head} {last}" if head else last


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + "..."


def _excerpt_of(text: str) -> str:
    text = _SCHEMA_BLOCK.sub("\n", text).strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            for value in data.values():
                if isinstance(value, str) and value.strip():
                    return _clip(value, _EXCERPT_CHARS)
    first_line = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "```")) or line.endswith(":"):
            continue
        tagged = _TAG_LINE.match(line)
        if tagged:
            return _clip(tagged.group(2), _EXCERPT_CHARS)
        key_value = _KEY_VALUE_LINE.match(line)
        if key_value:
            return _clip(key_value.group(1), _EXCERPT_CHARS)
        if not first_line:
            first_line = line
    return _clip(first_line, _EXCERPT_CHARS)


def _excerpt(messages: Sequence[Mapping[str, Any]]) -> str:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return _excerpt_of(message_text(messages[index], index))
    return _excerpt_of(message_text(messages[-1], len(messages) - 1)) if messages else ""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class OfflineModel:
    """An in-process model that answers chat requests deterministically (see the module docstring)."""

    name: str = OFFLINE_MODEL_NAME

    def __init__(self, name: str = OFFLINE_MODEL_NAME) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"OfflineModel(name={self.name!r})"

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        response_format: dict[str, Any] | None = None,
        model: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Completion:
        """Answer ``messages``; the reply is JSON valid against the requested schema when there is one.

        ``model`` only sets :attr:`Completion.model` (the default is this model's name). With ``tools``
        (OpenAI's function definitions) it first calls tools (see :func:`offline_tool_calls`).
        """
        checked = _check_messages(messages)
        if tools:
            calls = offline_tool_calls(checked, tools)
            if calls:
                text = json.dumps([list(c) for c in calls])
                return Completion("", count_prompt_tokens(checked), count_tokens(text), model or self.name, calls)
        kind = _response_type(response_format)
        schema = find_schema(checked, response_format)
        conversation = hashlib.sha256(
            _canonical([[m.get("role"), message_text(m, i)] for i, m in enumerate(checked)])
        ).digest()
        generator = _Generator(
            root=schema if schema is not None else {},
            seed=hashlib.sha256(conversation + _canonical(schema)).digest(),
            excerpt=_excerpt(checked),
            tag=conversation.hex()[:4],
        )
        if schema is not None:
            content = json.dumps(generator.generate(), ensure_ascii=False)
        elif kind != "text":
            content = json.dumps({"reply": generator.text("reply")}, ensure_ascii=False)
        else:
            content = generator.text("reply")
        return Completion(
            content=content,
            prompt_tokens=count_prompt_tokens(checked),
            completion_tokens=count_tokens(content),
            model=model or self.name,
        )


def offline_tool_calls(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> tuple[tuple[str, str, str], ...]:
    """The tool calls the offline model asks for next: each offered tool the prompt names (a whole word of
    a system or user message; every offered tool when none is named), once in the conversation, all in
    one round, with arguments generated from the tool's parameter schema. Nothing once each has been called.
    """
    functions = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise ValueError(f"tools[{index}] must be {{'type': 'function', 'function': {{'name': ...}}}}")
        functions.append(function)
    prompt = "\n".join(message_text(m, i) for i, m in enumerate(messages) if m.get("role") in ("system", "user"))
    named = [f for f in functions if re.search(rf"(?<![\w-]){re.escape(f['name'])}(?![\w-])", prompt)]
    called = {
        call.get("function", {}).get("name")
        for m in messages
        if m.get("role") == "assistant"
        for call in m.get("tool_calls") or ()
        if isinstance(call, Mapping)
    }
    calls = []
    for function in named or functions:
        name = function["name"]
        if name in called:
            continue
        params = function.get("parameters")
        schema: dict[str, Any] = dict(params) if isinstance(params, Mapping) else {}
        seed = hashlib.sha256(_canonical([name, [message_text(m, i) for i, m in enumerate(messages)]])).digest()
        generator = _Generator(root=schema, seed=seed, excerpt=_excerpt(messages), tag=seed.hex()[:4])
        arguments = generator.generate() if schema else {}
        call_id = f"call_{seed.hex()[:12]}"
        calls.append((call_id, name, json.dumps(arguments if isinstance(arguments, dict) else {}, ensure_ascii=False)))
    return tuple(calls)


def _merge_all_of(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    tighter_max = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
    tighter_min = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
    for part in parts:
        for key, value in part.items():
            if key not in merged:
                merged[key] = value
            elif key == "properties":
                merged[key] = {**merged[key], **value}
            elif key == "required":
                merged[key] = list(dict.fromkeys([*merged[key], *value]))
            elif key in tighter_max and isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] = max(merged[key], value)
            elif key in tighter_min and isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] = min(merged[key], value)
    return merged


class _Generator:
    """Builds one value for a schema; every choice is drawn from SHA-256 of the seed and a path."""

    def __init__(self, *, root: dict[str, Any], seed: bytes, excerpt: str, tag: str) -> None:
        self.root = root
        self.seed = seed
        self.excerpt = excerpt
        self.tag = tag
        self.words = list(
            dict.fromkeys(w for w in re.findall(r"[a-z][a-z0-9]{2,}", excerpt.lower()) if w not in _STOP_WORDS)
        )

    # -- deterministic draws ------------------------------------------------------------------------
    def draw(self, path: tuple[str, ...], salt: str, n: int) -> int:
        digest = hashlib.sha256(self.seed + "/".join((*path, salt)).encode()).digest()
        return int.from_bytes(digest[:8], "big") % n if n > 0 else 0

    # -- schema plumbing ----------------------------------------------------------------------------
    def resolve(self, schema: Any) -> dict[str, Any]:
        if schema is True:
            return {}
        if schema is False:
            raise ValueError("the schema allows no value at all (false)")
        if not isinstance(schema, dict):
            raise ValueError(f"a JSON schema must be an object, got {type(schema).__name__}: {schema!r}")
        seen = 0
        while "$ref" in schema:
            seen += 1
            if seen > 64:
                raise ValueError(f"$ref chain does not end: {schema['$ref']!r}")
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self.lookup(schema["$ref"]), **siblings}
        if "allOf" in schema:
            parts = [self.resolve(part) for part in schema["allOf"]]
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            schema = _merge_all_of([rest, *parts])
        return dict(schema)

    def lookup(self, ref: Any) -> dict[str, Any]:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ValueError(f"only local $ref ('#/...') is supported, got {ref!r}")
        node: Any = self.root
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            else:
                raise ValueError(f"$ref {ref!r} points to nothing in the schema")
        if node is True:
            return {}
        if not isinstance(node, dict):
            raise ValueError(f"$ref {ref!r} does not point to a schema object")
        return node

    # -- values -------------------------------------------------------------------------------------
    def generate(self) -> Any:
        return self.value(self.root, (), "reply", 0)

    def value(self, raw: Any, path: tuple[str, ...], label: str, depth: int) -> Any:
        if depth > _HARD_DEPTH:
            raise ValueError(f"the schema has no finite instance (recursion deeper than {_HARD_DEPTH} at {path!r})")
        schema = self.resolve(raw)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            choices = schema["enum"]
            if not isinstance(choices, list) or not choices:
                raise ValueError(f"'enum' must be a non-empty list at {'/'.join(path) or 'the root'}")
            return choices[self.draw(path, "enum", len(choices))]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.value(self.branch(schema[key], depth), path, label, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            concrete = [k for k in kind if k != "null"]
            kind = concrete[0] if concrete and not (depth > _SOFT_DEPTH and "null" in kind) else "null"
        if kind is None:
            if not any(key in schema for key in _TYPE_KEYWORDS) and "default" in schema:
                return schema["default"]
            if "properties" in schema or "additionalProperties" in schema:
                kind = "object"
            elif "items" in schema or "prefixItems" in schema:
                kind = "array"
            else:
                kind = "string"
        if kind == "object":
            return self.object(schema, path, label, depth)
        if kind == "array":
            return self.array(schema, path, label, depth)
        if kind == "string":
            return self.string(schema, path, label)
        if kind == "integer":
            return self.integer(schema, path, label)
        if kind == "number":
            return self.number(schema, path, label)
        if kind == "boolean":
            return self.draw(path, "bool", 2) == 1
        if kind == "null":
            return None
        raise ValueError(f"unknown JSON schema type {kind!r} at {'/'.join(path) or 'the root'}")

    def branch(self, branches: Any, depth: int) -> Any:
        if not isinstance(branches, list) or not branches:
            raise ValueError("'anyOf'/'oneOf' must be a non-empty list of schemas")
        nulls = [b for b in branches if isinstance(b, dict) and b.get("type") == "null"]
        others = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        # The first non-null branch: for pydantic's Decimal (number | string) only the number always validates.
        if others and not (depth > _SOFT_DEPTH and nulls):
            return others[0]
        return nulls[0] if nulls else branches[0]

    def object(self, schema: dict[str, Any], path: tuple[str, ...], label: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if depth > _SOFT_DEPTH and name not in required:
                continue
            out[name] = self.value(sub, (*path, name), _words(name) or "value", depth + 1)
        extra = schema.get("additionalProperties", True)
        if properties or extra is False:
            return out
        low = int(schema.get("minProperties", 0))
        high = schema.get("maxProperties")
        count = low if depth > _SOFT_DEPTH else max(low, 2 + self.draw(path, "size", 2))
        if high is not None:
            count = min(count, int(high))
        value_schema = extra if isinstance(extra, dict) else {}
        for key in self.keys(schema.get("propertyNames"), path, label, count):
            out[key] = self.value(value_schema, (*path, key), _words(key) or _singular(label), depth + 1)
        return out

    def keys(self, names: Any, path: tuple[str, ...], label: str, count: int) -> list[str]:
        keys: list[str] = []
        if isinstance(names, dict):
            names_schema = self.resolve(names)
            for attempt in range(count * 8):
                if len(keys) == count:
                    break
                key = self.value(names_schema, (*path, f"key{attempt}"), "key", _HARD_DEPTH)
                if isinstance(key, str) and key not in keys:
                    keys.append(key)
            return keys
        pool = self.words
        stem = "_".join(_singular(label).split()) or "key"
        while len(keys) < count:
            index = len(keys)
            keys.append(pool[index] if index < len(pool) else f"{stem}_{index + 1}")
        return keys

    def array(self, schema: dict[str, Any], path: tuple[str, ...], label: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        if isinstance(items, list):  # the draft-4 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        if prefix:
            count = max(len(prefix), low)
        elif depth > _SOFT_DEPTH:
            count = low
        else:
            count = max(low, 2 + self.draw(path, "size", 2))
        if high is not None:
            count = min(count, int(high))
        item_label = _singular(label)
        unique = bool(schema.get("uniqueItems"))
        out: list[Any] = []
        seen: set[bytes] = set()
        attempt = 0
        while len(out) < count and attempt < count * 8 + 8:
            index = len(out)
            sub = prefix[index] if index < len(prefix) else (items if items is not False else {})
            name = f"{item_label} {index + 1}"
            value = self.value(sub, (*path, str(attempt)), name, depth + 1)
            attempt += 1
            if unique:
                key = _canonical(value)
                if key in seen:
                    continue
                seen.add(key)
            out.append(value)
        return out

    def text(self, label: str) -> str:
        head = label.split(" ", 1)[0]
        preposition = "to" if head in _TO_WORDS else "for"
        if self.excerpt:
            return f"{label} {preposition} '{self.excerpt}' (offline {self.tag})"
        return f"{label} (offline {self.tag})"

    def string(self, schema: dict[str, Any], path: tuple[str, ...], label: str) -> str:
        fmt = schema.get("format")
        text = self.formatted(fmt, path, label) if isinstance(fmt, str) else None
        if text is None:
            text = self.text(label)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            text = self.matching(pattern, path, text)
        low, high = _string_lengths(schema)
        if high is not None and len(text) > int(high):
            short = f"{label} ({self.tag})"
            text = short if len(short) <= int(high) else short[: int(high)]
        if len(text) < low:
            text += "." * (low - len(text))
        return text

    def formatted(self, fmt: str, path: tuple[str, ...], label: str) -> str | None:
        day = _dt.date(2024, 1, 1) + _dt.timedelta(days=self.draw(path, "day", 366))
        seconds = self.draw(path, "time", 86400)
        clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        slug = "-".join(_words(label).split()) or "item"
        if fmt == "date":
            return day.isoformat()
        if fmt == "date-time":
            return f"{day.isoformat()}T{clock}Z"
        if fmt == "time":
            return clock
        if fmt == "duration":
            return f"PT{1 + self.draw(path, 'minutes', 90)}M"
        if fmt == "uuid":
            digest = hashlib.sha256(self.seed + "/".join((*path, "uuid")).encode()).digest()
            return str(uuid.UUID(bytes=digest[:16], version=4))
        if fmt == "email":
            return f"{slug}.{self.tag}@example.com"
        if fmt in ("uri", "url", "iri", "uri-reference", "iri-reference"):
            return f"https://example.com/{slug}/{self.tag}"
        if fmt in ("hostname", "idn-hostname"):
            return f"{slug}-{self.tag}.example.com"
        if fmt == "ipv4":
            return f"192.0.2.{1 + self.draw(path, 'ip', 254)}"
        if fmt == "ipv6":
            return f"2001:db8::{1 + self.draw(path, 'ip', 65534):x}"
        if fmt == "json-string":
            return json.dumps(self.text(label))
        return None

    def matching(self, pattern: str, path: tuple[str, ...], fallback: str) -> str:
        try:
            compiled = re.compile(pattern)
        except re.error:
            return fallback
        if compiled.search(fallback):
            return fallback
        for attempt in range(6):
            candidate = _RegexSampler(self, (*path, f"re{attempt}")).sample(pattern)
            if candidate is not None and compiled.search(candidate):
                return candidate
        return fallback

    def integer(self, schema: dict[str, Any], path: tuple[str, ...], label: str) -> int:
        low, high = _bounds(schema)
        lo = None if low is None else (math.floor(low[0]) + 1 if low[1] else math.ceil(low[0]))
        hi = None if high is None else (math.ceil(high[0]) - 1 if high[1] else math.floor(high[0]))
        window = _window(lo, hi, 1, 10, 9)
        a, b = int(window[0]), int(window[1])
        step = schema.get("multipleOf")
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            first, last = -(-a // step), b // step
            if first > last:  # no multiple in the default range: take the nearest one the bounds allow
                above, below = first * step, last * step
                return above if hi is None or above <= hi or (lo is not None and below < lo) else below
            return (first + self.draw(path, "int", last - first + 1)) * step
        return a + self.draw(path, "int", b - a + 1)

    def number(self, schema: dict[str, Any], path: tuple[str, ...], label: str) -> float:
        low, high = _bounds(schema)
        # The enclosing names count too: the values of a ``scores: dict[str, float]`` are scores.
        unit = any(_CONFIDENCE_NAMES.search(name.lower()) for name in (label.replace(" ", "_"), *path[-2:]))
        lo = None if low is None else float(low[0])
        hi = None if high is None else float(high[0])
        span = 1.0 if unit else 100.0
        window = _window(lo, hi, 0.0, span, span)
        a, b = float(window[0]), float(window[1])
        if a == b and not _inside(a, low, high):
            # The default range only touches an exclusive bound: use the whole range the bounds allow.
            a, b = (lo if lo is not None else b - span), (hi if hi is not None else a + span)
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
            first, last = math.ceil(a / step), math.floor(b / step)
            if low is not None and low[1] and first * step <= low[0]:
                first += 1
            if high is not None and high[1] and last * step >= high[0]:
                last -= 1
            pick = first + self.draw(path, "num", max(1, last - first + 1))
            return float(pick * step)
        if a == b:
            return a
        exact = a + (b - a) * (1 + self.draw(path, "num", 99)) / 100
        for candidate in (round(exact, 2), exact, (a + b) / 2):
            if _inside(candidate, low, high):
                return candidate
        return exact


def _inside(value: float, low: tuple[float, bool] | None, high: tuple[float, bool] | None) -> bool:
    inside_low = low is None or (value > low[0] if low[1] else value >= low[0])
    return inside_low and (high is None or (value < high[0] if high[1] else value <= high[0]))


def _bounds(schema: Mapping[str, Any]) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
    """``(value, exclusive)`` for the lower and upper bound; handles both draft-4 and 2020-12 forms."""

    def number(key: str) -> float | None:
        value = schema.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    low: tuple[float, bool] | None = None
    high: tuple[float, bool] | None = None
    if number("minimum") is not None:
        low = (number("minimum") or 0.0, schema.get("exclusiveMinimum") is True)
    if number("exclusiveMinimum") is not None:
        value = number("exclusiveMinimum") or 0.0
        if low is None or value >= low[0]:
            low = (value, True)
    if number("maximum") is not None:
        high = (number("maximum") or 0.0, schema.get("exclusiveMaximum") is True)
    if number("exclusiveMaximum") is not None:
        value = number("exclusiveMaximum") or 0.0
        if high is None or value <= high[0]:
            high = (value, True)
    return low, high


def _window(lo: Any, hi: Any, default_lo: Any, default_hi: Any, span: Any) -> tuple[Any, Any]:
    """The default range narrowed to the bounds, or a range of ``span`` next to a bound outside it."""
    a = default_lo if lo is None else max(lo, default_lo)
    b = default_hi if hi is None else min(hi, default_hi)
    if a <= b:
        return a, b
    if lo is not None and hi is not None:
        return lo, min(hi, lo + span)
    if lo is not None:
        return lo, lo + span
    return hi - span, hi


class _RegexSampler:
    """Builds a string from a regular expression's parse tree (best effort; verified by the caller)."""

    def __init__(self, generator: _Generator, path: tuple[str, ...]) -> None:
        self.generator = generator
        self.path = path
        self.counter = 0
        self.groups: dict[int, str] = {}

    def pick(self, n: int) -> int:
        self.counter += 1
        return self.generator.draw(self.path, f"r{self.counter}", n)

    def sample(self, pattern: str) -> str | None:
        # The stdlib's own regex parser: private (``sre_parse`` before Python 3.11), hence the guards.
        for module_name in ("re._parser", "sre_parse"):
            try:
                parser: Any = importlib.import_module(module_name)
                break
            except ImportError:
                continue
        else:  # pragma: no cover - one of them exists on every supported Python
            return None
        try:
            return self.emit(parser.parse(pattern))
        except Exception:
            return None

    def emit(self, nodes: Any) -> str:
        return "".join(self.node(op, arg) for op, arg in nodes)

    def node(self, op: Any, arg: Any) -> str:
        name = getattr(op, "name", str(op))
        if name == "LITERAL":
            return chr(arg)
        if name == "NOT_LITERAL":
            return "a" if chr(arg) != "a" else "b"
        if name == "ANY":
            return "x"
        if name == "IN":
            return self.char_class(arg)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            top = min(high, low + 3)
            count = low + (self.pick(top - low + 1) if top > low else 0)
            if low == 0 and high > 0:
                count = max(count, 1)
            return "".join(self.emit(sub) for _ in range(count))
        if name == "SUBPATTERN":
            group, _add, _del, sub = arg
            text = self.emit(sub)
            if group is not None:
                self.groups[group] = text
            return text
        if name == "ATOMIC_GROUP":
            return self.emit(arg)
        if name == "BRANCH":
            _, alternatives = arg
            return self.emit(alternatives[self.pick(len(alternatives))])
        if name == "GROUPREF":
            return self.groups.get(arg, "")
        if name == "CATEGORY":
            return self.category(getattr(arg, "name", str(arg)))
        return ""  # anchors, lookarounds: nothing to emit

    @staticmethod
    def category(name: str) -> str:
        return {
            "CATEGORY_DIGIT": "7",
            "CATEGORY_NOT_DIGIT": "a",
            "CATEGORY_SPACE": " ",
            "CATEGORY_NOT_SPACE": "a",
            "CATEGORY_WORD": "a",
            "CATEGORY_NOT_WORD": "-",
        }.get(name, "a")

    def char_class(self, items: Any) -> str:
        negate = bool(items) and getattr(items[0][0], "name", "") == "NEGATE"
        if negate:
            members = re.compile("[" + "".join(self.class_members(items[1:])) + "]")
            for candidate in "axz0Q_-. ":
                if not members.match(candidate):
                    return candidate
            return "~"
        options: list[str] = []
        for op, arg in items:
            name = getattr(op, "name", str(op))
            if name == "LITERAL":
                options.append(chr(arg))
            elif name == "RANGE":
                low, high = arg
                options.append(chr(low + self.pick(high - low + 1)))
            elif name == "CATEGORY":
                options.append(self.category(getattr(arg, "name", str(arg))))
        return options[self.pick(len(options))] if options else "a"

    def class_members(self, items: Any) -> list[str]:
        parts: list[str] = []
        for op, arg in items:
            name = getattr(op, "name", str(op))
            if name == "LITERAL":
                parts.append(re.escape(chr(arg)))
            elif name == "RANGE":
                parts.append(f"{re.escape(chr(arg[0]))}-{re.escape(chr(arg[1]))}")
            elif name == "CATEGORY":
                parts.append(
                    {
                        "CATEGORY_DIGIT": r"\d",
                        "CATEGORY_NOT_DIGIT": r"\D",
                        "CATEGORY_SPACE": r"\s",
                        "CATEGORY_NOT_SPACE": r"\S",
                        "CATEGORY_WORD": r"\w",
                        "CATEGORY_NOT_WORD": r"\W",
                    }.get(getattr(arg, "name", ""), "")
                )
        return parts


_LENGTH_WORDS = re.compile(r"a text of (?:(\d+) to (\d+) characters|at least (\d+) character|at most (\d+) character)")


def described_lengths(schema: Mapping[str, Any]) -> tuple[int, int | None] | None:
    """The least and most characters a string schema says in its description ("a text of 5 to 40
    characters"), as a strict schema has to; None when its description says none."""
    description = schema.get("description")
    found = _LENGTH_WORDS.search(description) if isinstance(description, str) else None
    if found is None:
        return None
    pair_low, pair_high, least, most = found.groups()
    low, high = pair_low or least, pair_high or most
    return int(low or 0), None if high is None else int(high)


def _string_lengths(schema: Mapping[str, Any]) -> tuple[int, int | None]:
    """The least and most characters of a string schema: its minLength / maxLength, or, where a strict schema
    had to say them in its description, those words."""
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is None and high is None:
        return described_lengths(schema) or (0, None)
    return int(low or 0), None if high is None else int(high)
