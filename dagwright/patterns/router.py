"""Router (handoff): one agent picks which specialist handles the request.

The router agent outputs ``route`` (one of the destinations' names); the ``handoff``
node passes the request's fields to that destination only, and the others are
skipped, not run. Each output the destinations share is returned from whichever
ran (``result.<output>``), along with the ``route`` taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.ir import Port, freeze_json
from dagwright.compiler.kinds import SelectSettings, route_node, route_port, select_node
from dagwright.compiler.signature import MISSING, FieldSpec
from dagwright.compiler.types import ANY, TypeExpr, union
from dagwright.flow import Flow, PortRef
from dagwright.patterns._members import AgentFactory, AgentLike, Member, add_members, member_of, shared_default

__all__ = ["router"]


def router(
    router_agent: object,
    routes: Sequence[object],
    *,
    name: str = "router",
    defaults: Mapping[str, Any] | None = None,
    factory: AgentFactory | None = None,
) -> Flow:
    """A flow where ``router_agent`` hands the request to one of ``routes``."""
    flow = Flow(name)
    with flow.group(name):
        destinations = add_members(flow, list(routes), "request: str -> response: str", defaults, "router", factory)
        if len(destinations) < 2:
            flow.report(dg.make("DW203", f"a router needs at least two destinations; got {len(destinations)}"))
        agents = [d for d in destinations if d.agent is not None]
        for d in destinations:
            if d.agent is None:
                flow.report(dg.make("DW204", f"router destination {d.name!r} must be an agent", node=d.name))
        fields, optional = _request_fields(agents)
        names = [d.name for d in agents]
        literal = ", ".join(repr(n) for n in names)
        field_text = ", ".join(
            [f"{k}: {v}" for k, v in fields.items() if k not in optional]
            + [f"{k}: {v} = {optional[k]!r}" for k, v in fields.items() if k in optional]  # defaults last
        )
        field_text = field_text or "request: str"
        default_sig = f"{field_text} -> route: Literal[{literal}]" if names else "request: str -> route: str"
        try:
            chooser = member_of(router_agent, default_sig, defaults, factory)
        except (TypeError, ValueError) as exc:
            flow.report(dg.make("DW200", f"router agent: {exc}"))
            return flow
        if chooser.agent is None or "route" not in chooser.agent.signature.output_fields:
            flow.report(
                dg.make(
                    "DW204",
                    f"router agent {chooser.name!r} needs an output 'route' naming a destination ({literal})",
                    node=chooser.name,
                )
            )
            return flow
        _add_handoff(flow, chooser.name, chooser.agent, agents, fields, optional)
        _add_results(flow, agents, literal)
    for field in list(fields):
        flow.input(field, default=optional.get(field, MISSING))
    flow.output("route", PortRef(chooser.name, "route"))
    return flow


def _request_fields(agents: list[Member]) -> tuple[dict[str, TypeExpr], dict[str, Any]]:
    """Every field the destinations take, with its type, and the defaults of those that stay optional."""
    fields: dict[str, TypeExpr] = {}
    specs: dict[str, list[FieldSpec]] = {}
    for d in agents:
        assert d.agent is not None
        for f in d.agent.signature.inputs:
            fields.setdefault(f.name, f.type)
            specs.setdefault(f.name, []).append(f)
    # A field every destination gives the same default stays optional, with that default; the request
    # carries every other field (the chooser reads them all to decide).
    optional = {k: default for k, fs in specs.items() if (default := shared_default(fs)) is not MISSING}
    return fields, optional


def _add_handoff(
    flow: Flow,
    chooser: str,
    chooser_agent: AgentLike,
    agents: list[Member],
    fields: dict[str, TypeExpr],
    optional: dict[str, Any],
) -> None:
    """The chooser, the destinations, and the ``handoff`` node between them."""
    flow.add_agent(chooser, chooser_agent)
    route_type = chooser_agent.signature.output_fields["route"].type
    outputs: list[Port] = []
    for d in agents:
        assert d.agent is not None
        flow.add_agent(d.name, d.agent)
        for f in d.agent.signature.inputs:
            outputs.append(Port(route_port(d.name, f.name), f.type))
            flow.connect(PortRef("handoff", route_port(d.name, f.name)), PortRef(d.name, f.name))
    requested = (
        Port(k, t) if k not in optional else Port(k, t, False, freeze_json(optional[k])) for k, t in fields.items()
    )
    flow.add_node(route_node("handoff", route_type, requested, outputs, [d.name for d in agents]))
    flow.connect(PortRef(chooser, "route"), PortRef("handoff", "route"))


def _add_results(flow: Flow, agents: list[Member], literal: str) -> None:
    """A ``result.<output>`` node per output the destinations share: the value of whichever one ran."""
    shared: list[str] | None = None
    for d in agents:
        assert d.agent is not None
        outs = [f.name for f in d.agent.signature.outputs]
        shared = outs if shared is None else [o for o in shared if o in outs]
    if agents and not shared:
        flow.report(dg.make("DW207", f"the destinations {literal} share no output; give them a common output field"))
    for out in shared or []:
        types = []
        for d in agents:
            assert d.agent is not None
            types.append(d.agent.signature.output_fields[out].type)
        node_id = f"result.{out}"
        flow.add_node(select_node(node_id, union(types) if types else ANY, SelectSettings("first")))
        for d in agents:
            flow.connect(PortRef(d.name, out), PortRef(node_id, "values"))
        flow.output(out, PortRef(node_id, "value"))
