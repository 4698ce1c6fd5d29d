"""Shared test setup: hypothesis settings, a clean registry of custom types per test, a loopback LLM server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from dagwright.compiler import types as _types
from dagwright.testing import OpenAITestServer

# Timing varies a lot on shared CI machines; a slow example is not a failure.
settings.register_profile("dagwright", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("dagwright")


@pytest.fixture
def type_registry() -> Iterator[None]:
    """Undo every ``register_type`` made by the test (the registry is process-wide)."""
    saved = dict(_types._registry)
    try:
        yield
    finally:
        _types._registry.clear()
        _types._registry.update(saved)
        _types._registry_generation += 1


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    """An OpenAI-compatible server on 127.0.0.1 for one test (``dagwright.testing``)."""
    with OpenAITestServer() as srv:
        yield srv


@pytest.fixture
def quiet_kailash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Kailash runs that leave no trace outside ``tmp_path`` and print no failure tracebacks."""
    # A LocalRuntime with default settings writes ~/.kailash/tracking/tracking.db.
    monkeypatch.setenv("HOME", str(tmp_path))
    # Kailash logs every failed node at ERROR with a traceback; the tests check the failures themselves.
    logger = logging.getLogger("kailash")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
