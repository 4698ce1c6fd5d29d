"""Parallel map: one step (an agent or a whole flow) over every item of a list input.

The step is compiled and checked once, statically, as a sub-graph of the ``map``
node; at run time the node runs it once per item, at most ``concurrency`` at a time,
and returns each output as a list in item order. The list input is ``over``; the
step's other inputs are given once and shared by every item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.ir import Port, freeze_json
from dagwright.compiler.kinds import MapSettings, map_node
from dagwright.compiler.signature import MISSING
from dagwright.compiler.types import list_of
from dagwright.execution.inputs import input_default
from dagwright.flow import Flow, PortRef
from dagwright.patterns._members import AgentFactory, member_of

__all__ = ["parallel_map"]


def parallel_map(
    step: object,
    over: str,
    *,
    concurrency: int = 4,
    name: str = "map",
    defaults: Mapping[str, Any] | None = None,
    factory: AgentFactory | None = None,
) -> Flow:
    """Run ``step`` for each item of the list input ``over``."""
    flow = Flow(name)
    try:
        m = member_of(step, "item: str -> result: str", defaults, factory)
    except (TypeError, ValueError) as exc:
        flow.report(dg.make("DW200", f"parallel_map step: {exc}"))
        return flow
    inner = m.flow if m.flow is not None else Flow.from_agent(m.agent, m.name)
    if not isinstance(concurrency, int) or concurrency < 1:
        flow.report(dg.make("DW206", f"concurrency must be a whole number >= 1, got {concurrency!r}"))
        concurrency = 1
    graph, problems = inner._build()
    for d in problems:
        if d.severity != "info":
            flow.report(
                dg.Diagnostic(
                    d.code,
                    d.severity,
                    f"in the mapped step: {d.message}",
                    f"{name}.{d.node}" if d.node else name,
                    d.port,
                    d.hint,
                    d.related,
                    d.edge,
                    d.location,
                )
            )
    step_inputs = {n.outputs[0].name: n.outputs[0] for n in graph.input_nodes}
    # The step's optional inputs stay optional around it, with their defaults.
    step_defaults = {n.outputs[0].name: input_default(n) for n in graph.input_nodes}
    if over not in step_inputs:
        flow.report(
            dg.make(
                "DW206",
                f"parallel_map over {over!r}: the step has no input of that name "
                f"(inputs: {', '.join(step_inputs) or 'none'})",
                node=name,
            )
        )
        return flow
    inputs = tuple(
        Port(n, list_of(p.type) if n == over else p.type, description=p.description)
        if n == over or step_defaults[n] is MISSING
        else Port(n, p.type, False, freeze_json(step_defaults[n]), description=p.description)
        for n, p in step_inputs.items()
    )
    outputs = tuple(Port(n.inputs[0].name, list_of(n.inputs[0].type)) for n in graph.output_nodes)
    settings = MapSettings(over, concurrency)
    with flow.group(name):
        flow.add_node(map_node(name, inputs, outputs, graph, settings), inner)
    for port in inputs:
        default = MISSING if port.required else port.default
        flow.input(port.name, default=default, to=PortRef(name, port.name))
    for port in outputs:
        flow.output(port.name, PortRef(name, port.name))
    return flow
