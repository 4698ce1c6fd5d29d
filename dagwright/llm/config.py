"""An agent's settings: which model, where, how (retries, timeouts, structured output, prompt).

:class:`AgentConfig` is what every agent holds; a dict, a dataclass or a pydantic model
with the same names is accepted wherever a config is. A misspelt setting is an error
naming the closest one; other keys are kept as role context.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from dagwright.compiler.signature import SignatureSpec
from dagwright.compiler.suggest import suggest
from dagwright.compiler.tools import DEFAULT_MAX_TOOL_STEPS
from dagwright.llm.client import LLMSettings, resolve_provider
from dagwright.llm.structured import StructuredSetting, output_budget

__all__ = ["AgentConfig"]


_SETTING_FIELDS = {"model": "model=...", "temperature": "temperature=...", "max_tokens": "max_tokens=..."}
"""Request fields an agent has a setting for: ``extra_body`` may not send them behind the setting's back."""

_REQUEST_FIELDS = {
    "messages": "the signature, the prompt and the inputs make it",
    "response_format": "structured_output chooses it",
    "grammar": "structured_output chooses it",
    "stream": "the stream setting",
    "stream_options": "the stream setting",
    "tools": "the agent's tools",
    "tool_choice": "the agent's tools",
}
"""Request fields dagwright sets itself, and what decides them."""

_ALIASES = {"llm_provider": "provider"}
"""Kaizen's names for settings (its configs say ``llm_provider``), read as ours."""


class AgentConfig(BaseModel):
    """An agent's settings. Also accepted as a dict or a dataclass with these names.

    Keys that are not settings are kept as ``extra`` role context (``{"source": "web"}``);
    a key that looks like a misspelt setting (``temprature``) is an error. ``llm_provider``
    is read as ``provider``.

    It reads like a mapping too, as Kaizen code expects (``config.get("model")``,
    ``config["temperature"]``, ``**config``): its keys are the settings that have a value
    (a setting left at None is absent) and the extra keys. ``api_key`` stays a ``SecretStr``.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    provider: Literal["openai", "offline"] | None = None
    model: str = "gpt-4o-mini"
    temperature: float | None = None
    max_tokens: int | None = None
    system_prompt: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout: float = 60.0
    max_retries: int = 3
    retry_initial_delay: float = 0.5
    max_turns: int = 10
    structured_output: StructuredSetting = "auto"
    prompt_template: str | None = None
    # Rounds of tool calls before the model must answer (None: no bound, which compile() warns about), and
    # the time one tool call may take (a tool's own timeout wins).
    max_tool_steps: int | None = DEFAULT_MAX_TOOL_STEPS
    tool_timeout: float = 30.0
    system_prompt_role: Literal["system", "user"] = "system"
    stream: bool = True
    # Fields the server takes beyond OpenAI's, sent in every request as given: {"repeat_penalty": 1.1}.
    extra_body: dict[str, Any] | None = None

    @field_validator("timeout", "tool_timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive (seconds)")
        return value

    @field_validator("max_retries", "max_turns", "max_tool_steps", "max_tokens")
    @classmethod
    def _not_negative(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("extra_body")
    @classmethod
    def _own_fields_only(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        for key in value:
            if key in _SETTING_FIELDS:
                raise ValueError(f"{key!r} is a setting of its own: give {_SETTING_FIELDS[key]} instead")
            if key in _REQUEST_FIELDS:
                raise ValueError(f"{key!r} is part of the request dagwright makes ({_REQUEST_FIELDS[key]})")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be JSON, as it is sent in the request body: {exc}") from None
        return value

    # ---- the mapping view

    def keys(self) -> list[str]:
        """The settings that have a value, then the extra keys."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None] + list(self.extra)

    def __getitem__(self, key: str) -> Any:
        if key in _ALIASES:
            key = _ALIASES[key]
        if key in type(self).model_fields:
            value = getattr(self, key)
            if value is not None:
                return value
        elif key in (self.__pydantic_extra__ or {}):
            return (self.__pydantic_extra__ or {})[key]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (a setting or an extra key), or ``default`` when it has none."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self[key]) for key in self.keys()]

    @property
    def extra(self) -> dict[str, Any]:
        """Role context: config keys that are not settings."""
        return dict(self.__pydantic_extra__ or {})

    @classmethod
    def coerce(cls, config: object, *, owner: str = "agent") -> AgentConfig:
        """An AgentConfig from a config, a dict, a dataclass or None; errors name the bad key."""
        if config is None:
            return cls()
        if isinstance(config, AgentConfig):
            return config
        if isinstance(config, BaseModel):
            data = config.model_dump()
        elif dataclasses.is_dataclass(config) and not isinstance(config, type):
            data = dataclasses.asdict(config)
        elif isinstance(config, Mapping):
            data = dict(config)
        else:
            raise TypeError(
                f"{owner}: config must be a dict, a dataclass or an AgentConfig, got {type(config).__name__}"
            )
        for alias, name in _ALIASES.items():
            if alias in data:
                value = data.pop(alias)
                if data.get(name) is not None and data[name] != value:
                    raise ValueError(f"{owner}: config gives {alias}={value!r} and {name}={data[name]!r}; give one")
                data[name] = value
        known = list(cls.model_fields)
        for key in data:
            if key not in known:
                close = suggest(key, known, cutoff=0.8)
                if close:
                    raise ValueError(f"{owner}: unknown config key {key!r}; did you mean {close[0]!r}?")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
            )
            raise ValueError(f"{owner}: invalid config: {problems}") from None

    def settings(self, spec: SignatureSpec | None = None) -> LLMSettings:
        """The settings of one call; for a call with structured output for ``spec``, ``max_tokens`` left
        unset is the signature's output budget (:func:`~dagwright.llm.structured.output_budget`), and 0
        sends no limit."""
        api_key = self.api_key.get_secret_value() if self.api_key is not None else None
        max_tokens = self.max_tokens
        if max_tokens is None and spec is not None:
            max_tokens = output_budget(spec)
        return LLMSettings(
            provider=resolve_provider(self.provider, self.base_url, api_key),
            model=self.model,
            base_url=self.base_url,
            api_key=api_key,
            temperature=self.temperature,
            max_tokens=max_tokens or None,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_initial_delay=self.retry_initial_delay,
            stream=self.stream,
            extra_body=self.extra_body,
        )
