"""Keeping secrets out of the IR: an allow-list of what an agent's config may show.

An agent's config reaches the IR, and the IR is hashed, exported (JSON, Kailash YAML,
a Kailash script), drawn and printed: treat it as public. So the IR takes from a
config only what is known to be safe, and the full config stays in the process, in
the node's binding (:class:`AgentBinding`), which is what runs. Nothing downstream of
the IR can leak what never entered it.

What enters the IR (:func:`safe_settings`):

* the settings that hold no credential, when their value is a plain scalar:
  ``model``, ``provider`` (``llm_provider``), ``temperature``, ``max_tokens``,
  ``system_prompt``, ``prompt_template``, ``timeout``, ``max_retries``,
  ``retry_initial_delay``, ``max_turns``, ``structured_output``, ``max_tool_steps``, ``tool_timeout``;
* ``base_url``, stripped of userinfo, query string and fragment (:func:`strip_url`);
* role context (any other key) when all three hold: its name is not secret-like
  (:func:`is_secret_like`: it contains ``key``, ``secret``, ``pass``, ``token``,
  ``auth``, ``cookie``, ``session``, ``header``, ``credential``, ...); its value is
  plain (text, a number, a boolean, None, or a flat list of those: a mapping such
  as a headers dict is never shown); and no text in it looks like a credential
  (:func:`looks_like_credential`: a long run mixing letters and digits, a
  ``Bearer``/``Basic`` value, a JWT, a PEM block, a long digit run);
* keys the caller vouches for with ``add_agent(..., safe_keys=[...])``: any JSON
  value (other objects show as ``{"$object": "module.Type"}``). ``api_key`` can
  never be vouched for.

Every URL that is stored, also inside free text (a system prompt, role context, a
vouched value), loses its userinfo, query string and fragment.

The rule errs on the side of leaving out: a key left out (``author`` contains
``auth``) is still given to the agent at run time; only exports and drawings do not
show it (vouch for it with ``safe_keys``). A graph loaded from JSON has no binding:
its agents run with what the IR holds, and take API keys from the environment.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dagwright.compiler.signature import SignatureSpec

__all__ = [
    "NEVER_SAFE",
    "REDACTED",
    "SAFE_SETTINGS",
    "AgentBinding",
    "check_safe_keys",
    "config_to_dict",
    "has_secret_word",
    "is_secret_key",
    "is_secret_like",
    "looks_like_credential",
    "prompt_context",
    "safe_settings",
    "scrub_urls",
    "strip_url",
]

REDACTED = "<redacted>"

SAFE_SETTINGS = frozenset(
    {
        "model",
        "provider",
        "llm_provider",
        "temperature",
        "max_tokens",
        "system_prompt",
        "prompt_template",
        "timeout",
        "max_retries",
        "retry_initial_delay",
        "max_turns",
        "structured_output",
        "max_tool_steps",
        "tool_timeout",
    }
)
"""Agent settings that hold no credential: kept in the IR when their value is a plain scalar."""

NEVER_SAFE = frozenset({"api_key"})
"""Keys that ``safe_keys`` cannot vouch for: their whole purpose is to be secret."""

# The deny-list that the audit log and the drawings still use to blank secret-named fields.
_SECRET_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "secret",
        "password",
        "passwd",
        "token",
        "access_token",
        "refresh_token",
        "auth",
        "authorization",
        "client_secret",
        "private_key",
        "credentials",
        "bearer",
        "cookie",
        "headers",
        "default_headers",
    }
)
_SECRET_SUFFIXES = ("_key", "_secret", "_password", "_token", "_credentials")

# Fragments of a secret-like name, matched anywhere in a word: false positives only hide a key.
_SECRET_FRAGMENTS = (
    "key",
    "secret",
    "pass",
    "pwd",
    "token",
    "auth",
    "cookie",
    "session",
    "credential",
    "bearer",
    "header",
    "cert",
    "private",
    "signature",
    "jwt",
    "otp",
    "salt",
    "nonce",
)
# Short words matched whole: as fragments they would hit too many ordinary names ("mapping", "design").
_SECRET_WORDS = frozenset({"pin", "sig", "ssn", "cvv", "cvc", "pat", "sas"})
_PROMPT_SECRET_WORDS = frozenset(
    {"key", "apikey", "secret", "secrets", "pass", "passphrase", "password", "passwd", "pwd", "token", "tokens"}
    | {"auth", "authorization", "bearer", "cookie", "cookies", "session", "credential", "credentials"}
    | {"header", "headers", "cert", "pem", "otp", "totp"}
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

_HIDDEN = object()  # what _plain_context returns for a value that must not be shown

_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s\"'<>()\[\]{}`]*")
_URL_PARTS = re.compile(r"(?s)([a-zA-Z][a-zA-Z0-9+.-]*://)([^/?#]*)([^?#]*)")
_CREDENTIAL_SHAPES = (
    re.compile(r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{16,}"),  # API keys, hex and base64 tokens
    re.compile(r"[0-9]{13,}"),  # card and account numbers
    re.compile(r"(?i)^\s*(bearer|basic|digest|token)\s+\S{8,}\s*$"),  # an Authorization header's value
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # a JWT
    re.compile(r"-----BEGIN [A-Z ]+-----"),  # a PEM block
)


def is_secret_key(name: str) -> bool:
    """Does a key name, by the narrow deny-list, hold a secret (``api_key``, ``openai_token``, ...)?

    Used to blank secret-named fields of otherwise shown data (the audit log, the drawings);
    what enters the IR is decided by :func:`safe_settings` instead.
    """
    lowered = name.lower().replace("-", "_")
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def is_secret_like(name: str) -> bool:
    """Could a key of that name hold a secret (``passphrase``, ``auth_header``, ``X-Api-Key``, ``sessionId``)?"""
    words = [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", name).lower()) if w]
    return not words or any(w in _SECRET_WORDS or any(f in w for f in _SECRET_FRAGMENTS) for w in words)


def has_secret_word(name: str) -> bool:
    """Is a key secret-named (:func:`is_secret_key`) or one of its words secret (``passphrase``, ``auth``,
    ``cookie``, ``session``, ``header``...)? Narrower than :func:`is_secret_like`: ``keywords`` is not."""
    words = [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", name).lower()) if w]
    return is_secret_key(name) or any(w in _SECRET_WORDS or w in _PROMPT_SECRET_WORDS for w in words)


def looks_like_credential(text: str) -> bool:
    """Does ``text`` (URLs already stripped) hold something shaped like a credential?"""
    return any(shape.search(text) for shape in _CREDENTIAL_SHAPES)


def strip_url(url: str) -> str:
    """``url`` without userinfo, query string and fragment: ``https://u:p@h/v1?key=k`` -> ``https://h/v1``.

    Parsed by hand rather than with ``urlsplit``, which refuses some malformed URLs (a bad
    port) that must be stripped all the same.
    """
    match = _URL_PARTS.match(url)
    if match is None:
        return url
    scheme, authority, path = match.groups()
    return scheme + authority.rpartition("@")[2] + path


def scrub_urls(text: str) -> str:
    """Free text with every URL in it stripped by :func:`strip_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: strip_url(m.group()), text)


def config_to_dict(config: object) -> dict[str, Any]:
    """A config given as a dict, a pydantic model or a dataclass, as a plain dict."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    dump = getattr(config, "model_dump", None)
    if callable(dump):
        result = dump()
        if isinstance(result, dict):
            return result
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    raise TypeError(f"config must be a dict, a pydantic model or a dataclass, got {type(config).__name__}")


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, bool, int))


def _plain_context(value: object) -> object:
    """A role-context value as it may be shown (URLs stripped), or :data:`_HIDDEN` when it must not be."""
    items = value if isinstance(value, (list, tuple)) else None
    if items is None and not _is_scalar(value):
        return _HIDDEN
    shown = [scrub_urls(v) if isinstance(v, str) else v for v in (items if items is not None else [value])]
    if not all(_is_scalar(v) for v in shown):
        return _HIDDEN  # nested lists and mappings (a headers dict) are never shown
    if any(isinstance(v, str) and looks_like_credential(v) for v in shown):
        return _HIDDEN
    return shown if items is not None else shown[0]


def prompt_context(context: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The role context that may go into a prompt, and the keys left out.

    A prompt leaves the process (to the model's provider, often a log there). Its rule matches
    whole words of the key rather than the IR's fragments, so ``keywords``, ``passage`` and
    ``author`` stay: a key with a secret word (``passphrase``, ``auth_header``,
    ``session_cookie_value``, ``default_headers``; :func:`has_secret_word`), a mapping with a
    secret-like key, or a value holding credential-shaped text is left out; URLs lose their
    credentials.
    """
    shown: dict[str, Any] = {}
    left_out: list[str] = []
    for raw_key, value in context.items():
        key = str(raw_key)
        cleaned = _scrubbed(value)
        if has_secret_word(key) or key in NEVER_SAFE or cleaned is _HIDDEN:
            left_out.append(key)
        else:
            shown[key] = cleaned
    return shown, left_out


def _scrubbed(value: Any, depth: int = 0) -> Any:
    """``value`` with URLs stripped, or :data:`_HIDDEN` when it holds a secret-like key or credential text."""
    if depth > 20:
        return _HIDDEN
    if isinstance(value, str):
        text = scrub_urls(value)
        return _HIDDEN if looks_like_credential(text) else text
    if isinstance(value, Mapping):
        if any(is_secret_like(str(k)) for k in value):
            return _HIDDEN
        items = {str(k): _scrubbed(v, depth + 1) for k, v in value.items()}
        return _HIDDEN if any(v is _HIDDEN for v in items.values()) else items
    if isinstance(value, (list, tuple)):
        listed = [_scrubbed(v, depth + 1) for v in value]
        return _HIDDEN if any(v is _HIDDEN for v in listed) else listed
    return value


def _vouched(value: Any) -> Any:
    """A value the caller vouched for, as JSON data with URL credentials stripped."""
    if isinstance(value, Mapping):
        return {str(k): _vouched(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_vouched(v) for v in value]
    if isinstance(value, str):
        return scrub_urls(value)
    if _is_scalar(value):
        return value
    kind = type(value)
    return {"$object": f"{kind.__module__}.{kind.__qualname__}"}


def check_safe_keys(safe_keys: Iterable[str]) -> frozenset[str]:
    """``safe_keys`` as a set; raises ValueError for a key that can never be shown."""
    if isinstance(safe_keys, str):
        raise TypeError(f"safe_keys takes a list of key names, not the string {safe_keys!r}")
    keys = frozenset(safe_keys)
    wrong = sorted(k for k in keys if not isinstance(k, str) or k in NEVER_SAFE)
    if wrong:
        raise ValueError(f"safe_keys cannot vouch for {', '.join(map(repr, wrong))}: it never enters the IR")
    return keys


def safe_settings(config: Mapping[str, Any], safe_keys: Iterable[str] = ()) -> dict[str, Any]:
    """What of an agent's ``config`` may enter the IR (see the module docstring for the rule)."""
    vouched = check_safe_keys(safe_keys)
    shown: dict[str, Any] = {}
    for raw_key, value in config.items():
        key = str(raw_key)
        if key in vouched:
            shown[key] = _vouched(value)
        elif key == "base_url":
            if _is_scalar(value):
                shown[key] = strip_url(value) if isinstance(value, str) else value
        elif key in SAFE_SETTINGS:
            if _is_scalar(value):
                shown[key] = scrub_urls(value) if isinstance(value, str) else value
        elif key not in NEVER_SAFE and not is_secret_like(key):
            context = _plain_context(value)
            if context is not _HIDDEN:
                shown[key] = context
    return shown


@dataclass(frozen=True, eq=False)
class AgentBinding:
    """What a signature-only agent node runs: its signature and the caller's full config.

    The config (API keys included) stays in the process, here; the IR holds only
    :func:`safe_settings` of it. The repr shows those safe settings and the names of
    the other keys, never their values.
    """

    signature: SignatureSpec
    config: Mapping[str, Any] = field(default_factory=dict)
    safe_keys: frozenset[str] = frozenset()
    # The agent's tool sources (functions, MCP servers): run in the process, described in the IR by their specs.
    tools: tuple[object, ...] = ()

    def __repr__(self) -> str:
        shown = safe_settings(self.config, self.safe_keys)
        parts = [f"{k!r}: {shown[k]!r}" if k in shown else f"{k!r}: {REDACTED!r}" for k in map(str, self.config)]
        name = self.signature.name or str(self.signature)
        return f"{type(self).__name__}({name!r}, config={{{', '.join(parts)}}})"
