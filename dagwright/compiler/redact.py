"""Keeping secrets out of the IR.

Agent config reaches the IR (for hashing, export and drawings), so API keys,
tokens and credentials in URLs are removed on the way in; nothing downstream of
the IR can leak what never entered it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "config_to_dict", "is_secret_key", "redact_config"]

REDACTED = "<redacted>"
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


def is_secret_key(name: str) -> bool:
    """Does a config key name hold a secret (``api_key``, ``openai_token``, ...)?"""
    lowered = name.lower().replace("-", "_")
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


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


def _strip_credentials(value: str) -> str:
    if "@" not in value or "://" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if not parts.username and not parts.password:
        return value
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def redact_config(value: Any) -> Any:
    """JSON data with secret keys dropped and URL credentials stripped.

    Values that are not JSON data become ``{"$object": "module.Type"}``: the IR
    says plainly that something was there without pretending to hold it.
    """
    if isinstance(value, Mapping):
        return {str(k): redact_config(v) for k, v in value.items() if not is_secret_key(str(k))}
    if isinstance(value, (list, tuple)):
        return [redact_config(v) for v in value]
    if isinstance(value, str):
        return _strip_credentials(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return value
    kind = type(value)
    return {"$object": f"{kind.__module__}.{kind.__qualname__}"}
