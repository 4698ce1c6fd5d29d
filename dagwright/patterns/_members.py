"""The members of a pattern: agents, role specs and sub-flows, normalized.

A member is given as an agent object, as ``(agent, config)`` (that agent with some
settings changed for this pattern), as ``("role_name", {config})`` (a new agent
for that role, with the pattern's default signature for the role), as a bare
role name, or as a :class:`Flow` (a pattern nested in a pattern). Pattern options
in a config (``mapping``) are kept apart from agent settings.

Patterns make and adapt agents through an :class:`AgentFactory` that the face passes
in (``Kaizen`` does; without one, :func:`agent_factory` takes the default from
:mod:`dagwright.agent` when a pattern first needs it), so importing the patterns
never imports the agent runtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.ir import Port
from dagwright.compiler.redact import config_to_dict
from dagwright.compiler.signature import MISSING, SignatureSpec
from dagwright.compiler.types import json_key
from dagwright.flow import Flow, PortRef

__all__ = ["PATTERN_OPTIONS", "AgentFactory", "AgentLike", "Member", "add_members", "agent_factory", "member_of"]

PATTERN_OPTIONS = frozenset({"mapping"})


class AgentLike(Protocol):
    """What a pattern reads of an agent: its name, signature and config (``system_prompt``)."""

    name: str

    @property
    def signature(self) -> SignatureSpec: ...

    @property
    def config(self) -> Any: ...


class AgentFactory(Protocol):
    """How a pattern makes and adapts agents (``dagwright.agent.AgentFactory`` is the face's)."""

    def is_agent(self, obj: object) -> bool: ...

    def create(self, name: str, signature: object, config: Mapping[str, Any]) -> AgentLike:
        """A new agent for a role."""
        ...

    def configure(self, agent: AgentLike, config: Mapping[str, Any]) -> AgentLike:
        """A copy of ``agent`` with some settings changed for one pattern."""
        ...


def agent_factory(given: AgentFactory | None = None) -> AgentFactory:
    """``given``, or the face's default factory (imported on first use, not with the patterns)."""
    if given is not None:
        return given
    from dagwright.agent import AGENTS

    return AGENTS


@dataclass(slots=True)
class Member:
    """One agent (or sub-flow) of a pattern, by the name its node ids derive from."""

    name: str
    agent: AgentLike | None = None
    flow: Flow | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> SignatureSpec | None:
        return self.agent.signature if self.agent is not None else None


def _role_instructions(role: str) -> str:
    # The role's other settings ({"focus": "technical"}) reach the model as the config's context.
    return f"You are the {role.replace('_', ' ')}."


def member_of(
    spec: object,
    default_signature: object,
    defaults: Mapping[str, Any] | None = None,
    agents: AgentFactory | None = None,
) -> Member:
    """Normalize one member spec; raises TypeError/ValueError for specs that are not members."""
    config: dict[str, Any] = {}
    target = spec
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise TypeError(f"a member is (agent_or_role, config), got a tuple of {len(spec)}")
        target, raw = spec
        config = config_to_dict(raw) if raw is not None else {}
    options = {k: config.pop(k) for k in list(config) if k in PATTERN_OPTIONS}
    if isinstance(target, Flow):
        if config:
            raise ValueError(f"sub-flow {target.name!r} takes only pattern options, not {sorted(config)}")
        return Member(target.name, flow=target, options=options)
    if isinstance(target, str):
        factory = agent_factory(agents)
        settings = {**dict(defaults or {}), **config}
        if "system_prompt" not in settings:
            settings["system_prompt"] = _role_instructions(target)
        return Member(target, agent=factory.create(target, default_signature, settings), options=options)
    factory = agent_factory(agents)
    if factory.is_agent(target):
        agent: AgentLike = target  # type: ignore[assignment]
        if config:
            agent = factory.configure(agent, config)
        return Member(agent.name, agent=agent, options=options)
    raise TypeError(
        f"a pattern member is an agent, a Flow, a role name, or a (agent_or_role, config) tuple; "
        f"got {type(target).__name__}"
    )


def add_members(
    flow: Flow,
    specs: list[object],
    default_signature: object,
    defaults: Mapping[str, Any] | None,
    pattern: str,
    agents: AgentFactory | None = None,
) -> list[Member]:
    """Normalize and add members to ``flow``; a duplicate name is reported (DW205) and skipped."""
    members: list[Member] = []
    seen: set[str] = set()
    for position, spec in enumerate(specs):
        try:
            m = member_of(spec, default_signature, defaults, agents)
        except (TypeError, ValueError) as exc:
            flow.report(dg.make("DW200", f"{pattern} member {position}: {exc}", node=None))
            continue
        if m.name in seen:
            flow.report(
                dg.make(
                    "DW205",
                    f"{pattern}: two agents are named {m.name!r}; node ids derive from agent names",
                    node=m.name,
                    hint="give each agent its own name",
                )
            )
            continue
        seen.add(m.name)
        members.append(m)
    return members


def ports_of(flow: Flow, name: str) -> tuple[list[Port], list[Port]]:
    """A member's input and output ports as seen from the pattern's flow."""
    found = flow._virtual_ports(name)
    if found is None:
        return [], []
    return found


def ref(name: str, port: str) -> PortRef:
    return PortRef(name, port)


class _InputLike(Protocol):
    """A member's input as a signature field or an IR port describes it."""

    @property
    def name(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def default(self) -> Any: ...


def declare_member_inputs(
    flow: Flow, fields: Iterable[_InputLike], to: Mapping[str, Sequence[PortRef]] | None = None
) -> None:
    """Flow inputs for the input fields members share by name (fed to ``to[name]`` when given), declared in
    the order the names first come.

    Required when some member requires the field; optional with the members'
    default when they all have the same one; not declared when they all have
    defaults that differ (or one that is not JSON data), so each member keeps its own.
    """
    by_name: dict[str, list[_InputLike]] = {}
    for f in fields:
        by_name.setdefault(f.name, []).append(f)
    for name, specs in by_name.items():  # in the order the fields came
        targets = to.get(name) if to is not None else None
        default = shared_default(specs)
        if default is not MISSING:
            flow.input(name, default=default, to=targets)
        elif any(f.required for f in specs):
            flow.input(name, to=targets)


def shared_default(fields: Sequence[_InputLike]) -> Any:
    """The default all of ``fields`` (one input, as several members take it) give, the same one; MISSING
    when one of them requires the input, or when their defaults differ (or one is not JSON data)."""
    if any(f.required or f.default is MISSING for f in fields) or len({json_key(f.default) for f in fields}) != 1:
        return MISSING
    return fields[0].default
