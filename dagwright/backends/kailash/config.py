"""A lowered node's Kailash config: its one key, and the JSON form of its retry and timeout policy.

The lowering writes this config and the Kailash node classes read it back, so both
sides take the format from here.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Mapping
from typing import Any

from dagwright.execution.policy import NodePolicy, RetryPolicy

__all__ = [
    "CONFIG_KEY",
    "NODES_MODULE",
    "READABLE_KEYS",
    "SETTING_KEYS",
    "policy_from_json",
    "policy_to_json",
    "qualified_type",
    "readable_config",
]

CONFIG_KEY = "dagwright"
"""The one config key of a lowered node: its IR node, wiring and policy."""

NODES_MODULE = "dagwright.backends.kailash.nodes"
"""The module that registers the node types with Kailash when imported."""


def qualified_type(name: str) -> str:
    """A dagwright node type's other registered name, which names the module that registers it
    (``dagwright.backends.kailash.nodes.DagwrightAgentNode``): what a YAML export writes, so that
    Kailash's "not found in registry" error, in a process that has not imported it, says what to import."""
    return f"{NODES_MODULE}.{name}"


READABLE_KEYS = ("model", "signature", "role")
"""Config keys an agent node also gets, for people reading the workflow (Kailash's listings, YAML, drawings).

They describe the node; the node runs from :data:`CONFIG_KEY`. A key is left out when the node
has an input of that name (the input's constant value would be ambiguous)."""

SETTING_KEYS = frozenset(
    {"provider", "model", "temperature", "max_tokens", "system_prompt", "base_url", "api_key", "timeout"}
    | {"max_retries", "retry_initial_delay", "max_turns", "structured_output", "prompt_template"}
    | set(READABLE_KEYS)
)
"""An agent's settings (``AgentConfig``'s fields) and :data:`READABLE_KEYS`: a Kailash parameter under one of
these names that is not an input of the node is a per-run override, which the node refuses by name."""


def readable_config(node: Mapping[str, Any]) -> dict[str, str]:
    """The :data:`READABLE_KEYS` of an agent node (its IR as JSON): its model, signature text and role."""
    if node.get("kind") != "agent":
        return {}
    agent = node.get("config", {}).get("agent", {})
    about: dict[str, str] = {}
    if isinstance(agent, Mapping) and agent.get("model"):
        about["model"] = str(agent["model"])

    def ports(side: str) -> str:
        return ", ".join(f"{p['name']}: {_type_text(p.get('type', 'any'))}" for p in node.get(side, ()))

    about["signature"] = f"{ports('inputs')} -> {ports('outputs')}"
    if isinstance(agent, Mapping) and agent.get("system_prompt"):
        about["role"] = str(agent["system_prompt"])
    taken = {p["name"] for p in node.get("inputs", ())}
    return {k: v for k, v in about.items() if k not in taken}


def _type_text(data: Any) -> str:
    from dagwright.compiler.types import from_json

    try:
        return str(from_json(data))
    except (TypeError, ValueError, KeyError):
        return str(data)


def policy_to_json(policy: NodePolicy) -> dict[str, Any]:
    """A node policy as JSON config; ``retry_on`` classes by qualified name."""
    retry = policy.retry
    out: dict[str, Any] = {
        "max_attempts": retry.max_attempts,
        "initial_delay": retry.initial_delay,
        "backoff": retry.backoff,
        "max_delay": retry.max_delay,
        "jitter": retry.jitter,
        "retry_on": [f"{cls.__module__}.{cls.__qualname__}" for cls in retry.retry_on],
    }
    if policy.timeout is not None:
        out["timeout"] = policy.timeout
    return out


def policy_from_json(data: Mapping[str, Any] | None) -> NodePolicy:
    """The policy :func:`policy_to_json` wrote.

    ``retry_on`` names resolve to built-in exceptions or classes of modules already
    imported; nothing is imported to find them.
    """
    if not data:
        return NodePolicy()
    classes: list[type[BaseException]] = []
    for name in data.get("retry_on", ["builtins.Exception"]):
        module, _, qualname = str(name).rpartition(".")
        owner: Any = builtins if module in ("builtins", "") else sys.modules.get(module)
        found: Any = owner
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if not (isinstance(found, type) and issubclass(found, BaseException)):
            raise ValueError(
                f"retry_on names {name!r}, which is not an exception class of a loaded module; bind the "
                "node's policy with WorkflowBuilder.bind(node_id, ..., policy=...)"
            )
        classes.append(found)
    retry = RetryPolicy(
        max_attempts=int(data.get("max_attempts", 1)),
        initial_delay=float(data.get("initial_delay", 0.5)),
        backoff=float(data.get("backoff", 2.0)),
        max_delay=float(data.get("max_delay", 30.0)),
        jitter=float(data.get("jitter", 0.1)),
        retry_on=tuple(classes),
    )
    timeout = data.get("timeout")
    return NodePolicy(retry, float(timeout) if timeout is not None else None)
