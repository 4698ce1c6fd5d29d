"""LLM calls: the official ``openai`` client, or the embedded offline model.

One ``AsyncOpenAI`` client is shared per (event loop, base URL, API key): the
client's connection pool belongs to the loop that made it. The client's own
retries are off; this module retries transient failures (429 honoring
Retry-After, 5xx, connection errors, timeouts) with exponential backoff and
jitter, so the number of requests is exactly what the settings say. Refusals
(400, 401, 403, 404, 422) are not retried and quote the server's message.

With no LLM configured (no provider, base URL or API key, and no
``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``), the offline model answers; that is
said once in the log and in every result's ``model``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import weakref
from dataclasses import dataclass
from typing import Any, Literal

from dagwright.execution.errors import LLMError, LLMRequestError

__all__ = ["PROVIDER_ENV", "LLMReply", "LLMSettings", "complete", "endpoint", "resolve_provider"]

log = logging.getLogger("dagwright")
_offline_announced = False


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """Everything one call needs; built from an agent's config."""

    provider: Literal["openai", "offline"]
    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 60.0
    max_retries: int = 3
    retry_initial_delay: float = 0.5
    retry_max_delay: float = 20.0


@dataclass(frozen=True, slots=True)
class LLMReply:
    """The text of one reply, who answered, and its token usage."""

    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    requests: int


PROVIDER_ENV = "DAGWRIGHT_PROVIDER"
"""An environment variable that, set to ``offline`` or ``openai``, decides the provider of every agent
(a test run or a notebook switches a whole program to the offline model without touching its configs)."""


def resolve_provider(provider: str | None, base_url: str | None, api_key: str | None) -> Literal["openai", "offline"]:
    """The provider to use: ``DAGWRIGHT_PROVIDER`` when set, else explicit, else ``openai`` when anything
    configures it, else ``offline``."""
    global _offline_announced
    forced = os.environ.get(PROVIDER_ENV)
    if forced:
        if forced not in ("openai", "offline"):
            raise ValueError(f"{PROVIDER_ENV}={forced!r}: choose 'openai' or 'offline'")
        return forced  # type: ignore[return-value]
    if provider in ("openai", "offline"):
        return provider  # type: ignore[return-value]
    if provider is not None:
        raise ValueError(f"unknown provider {provider!r}; choose 'openai' or 'offline'")
    if base_url or api_key or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return "openai"
    if not _offline_announced:
        _offline_announced = True
        log.info("no LLM configured: agents answer with the embedded offline model (provider='offline')")
    return "offline"


# --------------------------------------------------------------------------- clients

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str | None, str], Any]] = (
    weakref.WeakKeyDictionary()
)


def endpoint(settings: LLMSettings) -> tuple[str | None, str]:
    """The base URL and API key a call uses: the settings', else ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` as
    they are now (read at every call, so a process that points them elsewhere is followed)."""
    base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
    api_key = settings.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
    return base_url, api_key


def _client(base_url: str | None, api_key: str) -> Any:
    import openai

    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (base_url, api_key)
    client = per_loop.get(key)
    if client is None:
        # Both given explicitly: the client must not fall back on the environment it was made in.
        client = openai.AsyncOpenAI(max_retries=0, base_url=base_url or "https://api.openai.com/v1", api_key=api_key)
        per_loop[key] = client
    return client


# --------------------------------------------------------------------------- calls


async def complete(
    settings: LLMSettings, messages: list[dict[str, str]], response_format: dict[str, Any] | None
) -> LLMReply:
    """One completion, retried on transient failures; raises LLMError / LLMRequestError / TimeoutError."""
    if settings.provider == "offline":
        from dagwright.llm.offline import OfflineModel

        reply = OfflineModel().complete(messages, response_format=response_format, model=None)
        return LLMReply(reply.content, reply.model, reply.prompt_tokens, reply.completion_tokens, 0)
    return await _complete_openai(settings, messages, response_format)


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", "") or exc)


async def _complete_openai(
    settings: LLMSettings, messages: list[dict[str, str]], response_format: dict[str, Any] | None
) -> LLMReply:
    import openai

    base_url, api_key = endpoint(settings)
    client = _client(base_url, api_key)
    request: dict[str, Any] = {"model": settings.model, "messages": messages, "timeout": settings.timeout}
    if response_format is not None:
        request["response_format"] = response_format
    if settings.temperature is not None:
        request["temperature"] = settings.temperature
    if settings.max_tokens is not None:
        request["max_tokens"] = settings.max_tokens
    where = f"{settings.model} at {base_url or 'the OpenAI API (https://api.openai.com/v1)'}"
    attempts = 0
    while True:
        attempts += 1
        try:
            completion = await client.chat.completions.create(**request)
        except openai.APIStatusError as exc:
            status = exc.status_code
            message = _server_message(exc)
            transient = status == 429 or status >= 500 or status == 408
            if not transient:
                raise LLMRequestError(
                    f"{where} refused the request (HTTP {status}): {message}", status=status, model=settings.model
                ) from None
            if attempts > settings.max_retries:
                hint = ""
                if status >= 500 and (response_format or {}).get("type") == "json_schema":
                    hint = (
                        "; servers without OpenAI's json_schema response format (llama.cpp's answers 500) "
                        "work with structured_output='json_object' or 'prompt'"
                    )
                raise LLMError(
                    f"{where} failed after {attempts} attempt(s) (HTTP {status}): {message}{hint}",
                    status=status,
                    model=settings.model,
                ) from None
            await asyncio.sleep(_backoff(settings, attempts, _retry_after(exc)))
            continue
        except openai.APITimeoutError:
            if attempts > settings.max_retries:
                raise TimeoutError(
                    f"{where} did not answer within {settings.timeout:g} s ({attempts} attempt(s))"
                ) from None
            await asyncio.sleep(_backoff(settings, attempts, None))
            continue
        except openai.APIConnectionError as exc:
            if attempts > settings.max_retries:
                raise LLMError(
                    f"cannot reach {where} after {attempts} attempt(s): {exc.__cause__ or exc}", model=settings.model
                ) from None
            await asyncio.sleep(_backoff(settings, attempts, None))
            continue
        break
    choice = completion.choices[0] if completion.choices else None
    content = (choice.message.content if choice is not None else None) or ""
    usage = completion.usage
    return LLMReply(
        content,
        completion.model or settings.model,
        usage.prompt_tokens if usage else 0,
        usage.completion_tokens if usage else 0,
        attempts,
    )


def _backoff(settings: LLMSettings, attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, max(settings.retry_max_delay, 0.0))
    base: float = min(settings.retry_max_delay, settings.retry_initial_delay * 2.0 ** (attempt - 1))
    return base * random.uniform(0.8, 1.2)
