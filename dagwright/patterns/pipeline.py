"""Pipeline: steps in order, each feeding the next.

Wiring rules, in order, for each input of step ``i > 1`` not set by the step's
``mapping`` (``{"previous_output": "this_input"}``):

1. the previous step's output of the same name;
2. else the latest earlier step's output of that name;
3. when no input matched the previous step by name or mapping, the previous step
   has exactly one output and this step exactly one required input left, those
   two are joined (a chain of ``task -> result`` roles);
4. else the flow input of that name (the first step's inputs are the flow's);
5. else a required input is reported (DW201) naming the step and field.

Every hop is type-checked by the compiler like any other connection. The last
step's outputs are the flow's outputs. A step may be a whole pattern (a Flow).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.ir import Port
from dagwright.flow import Flow, PortRef
from dagwright.patterns._members import AgentFactory, Member, add_members, declare_member_inputs, ports_of

__all__ = ["PIPELINE_ROLE_SIGNATURE", "pipeline"]

PIPELINE_ROLE_SIGNATURE = "task: str -> result: str"


def _add(flow: Flow, m: Member) -> None:
    if m.flow is not None:
        flow.add_flow(m.name, m.flow)
    else:
        flow.add_agent(m.name, m.agent)


def pipeline(
    steps: Sequence[object],
    *,
    name: str = "pipeline",
    defaults: Mapping[str, Any] | None = None,
    factory: AgentFactory | None = None,
) -> Flow:
    """A flow running ``steps`` in order (agents, ``(agent, config)``, role names, or Flows)."""
    flow = Flow(name)
    with flow.group(name):
        members = add_members(flow, list(steps), PIPELINE_ROLE_SIGNATURE, defaults, "pipeline", factory)
        for m in members:
            _add(flow, m)
    if not members:
        flow.report(dg.make("DW203", "a pipeline needs at least one step", hint="pass a list of agents"))
        return flow
    flow_inputs: dict[str, list[PortRef]] = {}
    input_ports: list[Port] = []  # the ports behind each flow input, for what it requires
    produced: dict[str, str] = {}  # output name -> the latest step that produces it
    first_inputs, previous_outputs = ports_of(flow, members[0].name)
    for port in first_inputs:
        flow_inputs.setdefault(port.name, []).append(PortRef(members[0].name, port.name))
        input_ports.append(port)
    for port in previous_outputs:
        produced[port.name] = members[0].name
    for prev, step in itertools.pairwise(members):
        inputs, outputs = ports_of(flow, step.name)
        _, prev_outputs = ports_of(flow, prev.name)
        prev_names = {p.name for p in prev_outputs}
        connected: set[str] = set()
        for out_name, in_name in dict(step.options.get("mapping") or {}).items():
            flow.connect(PortRef(prev.name, str(out_name)), PortRef(step.name, str(in_name)))
            connected.add(str(in_name))
        matched_prev = any(p.name in prev_names for p in inputs)
        unresolved = []
        for port in inputs:
            if port.name in connected:
                continue
            if port.name in prev_names:
                flow.connect(PortRef(prev.name, port.name), PortRef(step.name, port.name))
            elif port.name in produced:
                flow.connect(PortRef(produced[port.name], port.name), PortRef(step.name, port.name))
            else:
                unresolved.append(port)
        required = [p for p in unresolved if p.required]
        if len(required) == 1 and len(prev_outputs) == 1 and not connected and not matched_prev:
            # A chain of single-port steps (task -> result roles): join them, even when
            # the input's name is also a flow input.
            flow.connect(PortRef(prev.name, prev_outputs[0].name), PortRef(step.name, required[0].name))
            unresolved.remove(required[0])
        left = []
        for port in unresolved:
            if port.name in flow_inputs:
                flow_inputs[port.name].append(PortRef(step.name, port.name))
                input_ports.append(port)
            elif port.required:
                left.append(port)
        for port in left:
            earlier = ", ".join(sorted(produced)) or "none"
            flow.report(
                dg.make(
                    "DW201",
                    f"pipeline step {step.name!r} needs input {port.name!r} ({port.type}), which no earlier step "
                    f"produces (outputs so far: {earlier}) and which is not a flow input",
                    node=step.name,
                    port=port.name,
                    hint=f"map an output to it: ({step.name}, {{'mapping': {{'<output>': '{port.name}'}}}})",
                )
            )
        for port in outputs:
            produced[port.name] = step.name
    declare_member_inputs(flow, input_ports, to=flow_inputs)
    last = members[-1].name
    for port in ports_of(flow, last)[1]:
        flow.output(port.name, PortRef(last, port.name))
    return flow
