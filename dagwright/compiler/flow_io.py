"""Flow inputs and outputs as IR nodes: ``input:<name>`` and ``output:<name>``.

A declared flow input becomes an ``input`` node feeding the ports it names (or,
without targets, every input port of its name that nothing else connects); inputs
of inlined sub-flows feed what nothing else feeds, merged by name. A declared flow
output becomes an ``output`` node reading its source; without declared outputs,
every output of every node whose outputs nobody reads is a flow output.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.connections import Declarations, Endpoint, FlowInput, PortRef, split_endpoint, unknown_io
from dagwright.compiler.diagnostics import Diagnostic
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Edge, FrozenDict, Node, Port, SourceLocation, freeze_json
from dagwright.compiler.signature import MISSING
from dagwright.compiler.types import ANY

__all__ = ["bind_inputs", "bind_outputs"]

_TARGET = attrgetter("target")
_TARGET_PORT = attrgetter("target_port")


def _input_targets(decl: Declarations, end: Endpoint, name: str) -> list[tuple[str, str]]:
    nid, port_name = split_endpoint(decl, end)
    port_name = port_name if port_name is not None else name
    subflow = decl.subflows.get(nid)
    if subflow is not None and port_name in subflow.inputs:
        return list(subflow.inputs[port_name])
    return [(nid, port_name)]


def _input_node(decl: Declarations, flow_input: FlowInput, targets: list[tuple[str, str]]) -> Node:
    """The node of a flow input; untyped, it takes the type of the first port it feeds."""
    ptype = flow_input.type
    if ptype is None:
        ptype = ANY
        for nid, port_name in targets:
            node = decl.by_id.get(nid)
            port = node.input(port_name) if node is not None else None
            if port is not None:
                ptype = port.item_type()
                break
    config: dict[str, Any] = {"name": flow_input.name}
    if flow_input.default is not MISSING:
        config["default"] = flow_input.default
    return Node(
        f"{INPUT_KIND}:{flow_input.name}",
        INPUT_KIND,
        (),
        (Port(flow_input.name, ptype, description=flow_input.description),),
        freeze_json(config),
        (),
        flow_input.location,
    )


def bind_inputs(decl: Declarations, edges: list[Edge]) -> tuple[list[Node], list[Edge]]:
    """The input nodes of the declared flow inputs and their edges to the ports they feed."""
    if not decl.inputs and not decl.inherited_inputs:
        return [], []
    # The (node, port) pairs edges go into, when an input needs them (one without targets, or a sub-flow's).
    connected: set[tuple[str, str]] = set()
    if decl.inherited_inputs or any(flow_input.targets is None for flow_input in decl.inputs.values()):
        connected = set(zip(map(_TARGET, edges), map(_TARGET_PORT, edges), strict=True))
    nodes: dict[str, Node] = {}
    new_edges: list[Edge] = []
    for flow_input in decl.inputs.values():
        if flow_input.targets is None:
            targets = [
                (node.id, port.name)
                for node in decl.nodes
                for port in node.inputs
                if port.name == flow_input.name and (node.id, port.name) not in connected
            ]
        else:
            targets = [t for end in flow_input.targets for t in _input_targets(decl, end, flow_input.name)]
        node = _input_node(decl, flow_input, targets)
        nodes[flow_input.name] = node
        new_edges.extend(Edge(node.id, flow_input.name, nid, port, flow_input.location) for nid, port in targets)
    connected.update((e.target, e.target_port) for e in new_edges)
    # Inputs of inlined sub-flows feed whatever nothing else feeds, merged by name
    # (two steps that both take `topic` share the flow's one `topic`).
    for inherited in decl.inherited_inputs:
        assert inherited.targets is not None
        remaining = [
            (ref.node, ref.port)
            for ref in inherited.targets
            if isinstance(ref, PortRef) and (ref.node, ref.port) not in connected
        ]
        if not remaining:
            continue
        existing = nodes.get(inherited.name)
        if existing is None:
            existing = nodes[inherited.name] = _input_node(decl, inherited, remaining)
        new_edges.extend(Edge(existing.id, inherited.name, nid, port, inherited.location) for nid, port in remaining)
        connected.update(remaining)
    return list(nodes.values()), new_edges


def bind_outputs(decl: Declarations, edges: list[Edge], found: list[Diagnostic]) -> tuple[list[Node], list[Edge]]:
    """The output nodes of the declared flow outputs (or of every unread output) and their edges."""
    declared = _declared_outputs(decl, found) if decl.outputs else _sink_outputs(decl, edges)
    nodes: list[Node] = []
    new_edges: list[Edge] = []
    for name, nid, port_name, loc in declared:
        source = decl.by_id.get(nid)
        port = source.output(port_name) if source is not None else None
        ptype = port.type if port is not None else ANY
        node_id = f"{OUTPUT_KIND}:{name}"
        nodes.append(Node(node_id, OUTPUT_KIND, (Port(name, ptype),), (), FrozenDict({"name": name}), (), loc))
        new_edges.append(Edge(nid, port_name, node_id, name, loc))
    return nodes, new_edges


_OutputSource = tuple[str, str, str, SourceLocation | None]  # flow output name, node, port, where declared


def _declared_outputs(decl: Declarations, found: list[Diagnostic]) -> list[_OutputSource]:
    declared: list[_OutputSource] = []
    for flow_output in decl.outputs.values():
        nid, port_name = split_endpoint(decl, flow_output.source)
        subflow = decl.subflows.get(nid)
        if subflow is not None:
            if port_name is None and len(subflow.outputs) == 1:
                port_name = next(iter(subflow.outputs))
            real = subflow.outputs.get(port_name or "")
            if real is None:
                target = f"{OUTPUT_KIND}:{flow_output.name}"
                edge = Edge(nid, port_name or "", target, flow_output.name, flow_output.location)
                found.append(unknown_io(subflow, port_name or "", "output", edge))
                continue
            nid, port_name = real
        if port_name is None:
            node = decl.by_id.get(nid)
            if node is not None and len(node.outputs) == 1:
                port_name = node.outputs[0].name
            elif node is not None:
                names = ", ".join(p.name for p in node.outputs) or "none"
                found.append(
                    dg.make(
                        "DW018",
                        f"flow output {flow_output.name!r} reads node {nid!r}, which has "
                        f"{len(node.outputs)} outputs ({names}); name one",
                        node=nid,
                        hint=f"flow.output({flow_output.name!r}, '{nid}.<output>')",
                        location=flow_output.location,
                    )
                )
                continue
            else:
                port_name = flow_output.name
        declared.append((flow_output.name, nid, port_name, flow_output.location))
    return declared


def _sink_outputs(decl: Declarations, edges: list[Edge]) -> list[_OutputSource]:
    """Without declared outputs: every output of the nodes nothing reads (``node.port`` when names clash)."""
    used = {e.source for e in edges}
    sinks = [n for n in decl.nodes if n.id not in used and n.outputs]
    ports = [(n, p) for n in sinks for p in n.outputs]
    counts: dict[str, int] = {}
    for _, p in ports:
        counts[p.name] = counts.get(p.name, 0) + 1
    return [(p.name if counts[p.name] == 1 else f"{n.id}.{p.name}", n.id, p.name, None) for n, p in ports]
