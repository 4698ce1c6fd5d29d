"""Validation passes: each takes a :class:`Graph` and returns its diagnostics.

Passes are independent and run in :data:`PASSES` order; :func:`validate` runs
them all, so one call reports every problem. Each is linear in nodes + edges and
reads the graph's shared index (built once; see :mod:`dagwright.compiler.index`).
Each first decides from whole-graph counts and set operations whether it has
anything to report, and walks node by node or edge by edge only when it has.
Each reports a problem once: an edge with a missing end is reported by
:func:`check_edges` and then ignored by the type, cycle and reachability passes
instead of cascading.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain, compress, islice
from operator import attrgetter

from dagwright.compiler import diagnostics as dg
from dagwright.compiler._gc import gc_paused
from dagwright.compiler.diagnostics import Diagnostic
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Edge, Graph, Node, Port
from dagwright.compiler.signature import MISSING
from dagwright.compiler.suggest import suggest
from dagwright.compiler.tools import check_tools
from dagwright.compiler.types import Compatibility, TypeExpr, is_assignable, value_misfit, without_bounds

__all__ = ["PASSES", "Pass", "validate"]

# DW002's rule, and the words its message says it in: the two must say the same. ASCII only: ids are checkpoint
# keys, Kailash ids and DOT/Mermaid names, and look-alike letters must not make two ids that read as one.
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_\-]*)*")
_ID_RULE = (
    "ASCII letters, digits, _ and -, in segments separated by single dots, each segment starting with a letter, "
    "digit or _"
)
# Every id of a graph at once (see _follow_the_id_rule): _ID's characters, and where the ids joined by newlines,
# one more before the first, would hold an empty id, an empty segment or a segment starting with "-". Bytes
# operations scan a megabyte of ids in a fraction of the time the pattern takes to match it.
_ID_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-."
_ID_BREAKS = (b"\n\n", b"\n.", b".\n", b"..", b"\n-", b".-")
# A flow input's or output's name (the NAME of 'input:NAME'): the same, but its first segment starts like a
# Python identifier.
_IO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_\-]*)*")
_IO_NAME_RULE = f"{_ID_RULE}, the first segment with a letter or _"
_TYPE = attrgetter("type")
_COLLECT = attrgetter("collect")
_ID_OF = attrgetter("id")
_IO_KINDS = frozenset((INPUT_KIND, OUTPUT_KIND))


@dataclass(frozen=True, slots=True)
class Pass:
    """A named validation pass."""

    name: str
    run: Callable[[Graph], list[Diagnostic]]


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    options = list(candidates)
    close = suggest(name, options, cutoff=0.5)
    if close:
        return f"did you mean {close[0]!r}?"
    if options:
        shown = ", ".join(repr(o) for o in options[:8])
        return f"available: {shown}{', ...' if len(options) > 8 else ''}"
    return ""


def _io_name(node: Node) -> str:
    return node.id.split(":", 1)[1] if ":" in node.id else node.id


# --------------------------------------------------------------------------- passes


def check_ids(graph: Graph) -> list[Diagnostic]:
    """DW001 duplicate ids, DW002 malformed ids."""
    out: list[Diagnostic] = []
    for node in graph._index.duplicates:
        first = graph._index.by_id[node.id]
        out.append(
            dg.make(
                "DW001",
                f"node id {node.id!r} is used twice ({first.kind} and {node.kind})",
                node=node.id,
                hint="give each node its own id",
                location=node.location,
            )
        )
    nodes = graph.nodes
    io = list(map(_IO_KINDS.__contains__, graph._index.kinds))
    # The rule, over the ids of the other nodes all at once, else through map() id by id; a closer look only at
    # the ids that break it and at input and output nodes (whose ids follow another rule).
    plain = list(compress(map(_ID_OF, nodes), map(operator.not_, io)))
    if _follow_the_id_rule(plain):
        closer: set[int] = set()
    else:
        closer = set(compress(range(len(nodes)), map(operator.not_, map(_ID.fullmatch, map(_ID_OF, nodes)))))
    closer.update(compress(range(len(nodes)), io))
    for node in map(nodes.__getitem__, sorted(closer)):
        if node.kind in (INPUT_KIND, OUTPUT_KIND):
            prefix = node.kind + ":"
            ok = node.id.startswith(prefix) and _IO_NAME.fullmatch(node.id[len(prefix) :]) is not None
            expected = f"'{prefix}NAME', NAME being {_IO_NAME_RULE}"
        else:
            ok = _ID.fullmatch(node.id) is not None
            expected = _ID_RULE
        if not ok:
            out.append(
                dg.make(
                    "DW002",
                    f"invalid {node.kind} node id {node.id!r}: expected {expected}",
                    node=node.id,
                    location=node.location,
                )
            )
    return out


def _follow_the_id_rule(ids: list[str]) -> bool:
    """Whether every one of ``ids`` matches :data:`_ID`, decided over all of them at once."""
    if not ids:
        return True
    joined = "\n" + "\n".join(ids) + "\n"
    if joined.count("\n") != len(ids) + 1:  # a newline inside an id
        return False
    try:
        data = joined.encode("ascii")
    except UnicodeEncodeError:
        return False
    if len(data.translate(None, _ID_CHARS)) != len(ids) + 1:  # anything but _ID's characters and the newlines
        return False
    return not any(map(data.__contains__, _ID_BREAKS))


def check_ports(graph: Graph) -> list[Diagnostic]:
    """DW014 duplicate port names and collect ports not typed ``list[T]``."""
    index = graph._index
    ends = index.endpoints
    ins = ends.ins
    if not index.duplicates and not ins.duplicated and not ends.outs.duplicated:
        # No node repeats a port name: only collect ports to look at.
        if not ins.any(_COLLECT):
            return []
        wrong = [n for n in ends.collect_inputs if _is_collect_not_list(ins.port(n))]
        return [_collect_not_list(ins.owner(n).id, ins.port(n), ins.owner(n)) for n in wrong]
    out: list[Diagnostic] = []
    for node in graph.nodes:
        for side, ports in (("input", node.inputs), ("output", node.outputs)):
            if len(ports) < 2:
                continue
            seen: set[str] = set()
            for port in ports:
                if port.name in seen:
                    out.append(
                        dg.make(
                            "DW014",
                            f"node {node.id!r} declares the {side} port {port.name!r} twice",
                            node=node.id,
                            port=port.name,
                            location=node.location,
                        )
                    )
                seen.add(port.name)
        out.extend(_collect_not_list(node.id, port, node) for port in node.inputs if _is_collect_not_list(port))
    return out


def check_defaults(graph: Graph) -> list[Diagnostic]:
    """DW014: a default that does not fit its port's type (an input's, or a flow input's declared one)."""
    index = graph._index
    out: list[Diagnostic] = []
    ins = index.endpoints.ins
    if ins.any(_has_default):
        for number in ins.where(_has_default):
            if ins.duplicated and not ins.findable(number):
                continue  # a later port of a repeated name (DW014 already)
            port, node = ins.port(number), ins.owner(number)
            why = value_misfit(port.default, port.type)
            if why is not None:
                out.append(
                    dg.make(
                        "DW014",
                        f"the default of input {node.id}.{port.name} does not fit its type {port.type}: {why}",
                        node=node.id,
                        port=port.name,
                        location=node.location,
                    )
                )
    inputs = compress(graph.nodes, map(INPUT_KIND.__eq__, index.kinds)) if INPUT_KIND in index.kind_set else ()
    for node in inputs:
        if index.duplicates and index.by_id[node.id] is not node:
            continue  # a later node of a repeated id (DW001 already)
        if node.outputs and "default" in node.config:
            port = node.outputs[0]
            why = value_misfit(node.config["default"], port.type)
            if why is not None:
                out.append(
                    dg.make(
                        "DW014",
                        f"the default of flow input {_io_name(node)!r} does not fit its type {port.type}: {why}",
                        node=node.id,
                        port=port.name,
                        hint="fix the default, or declare the input's type: flow.input(name, type, default=...)",
                        location=node.location,
                    )
                )
    return out


def _has_default(port: Port) -> bool:
    return port.default is not MISSING


def _is_collect_not_list(port: Port) -> bool:
    return port.collect and port.type.kind not in ("list", "any")


def _collect_not_list(node_id: str, port: Port, node: Node) -> Diagnostic:
    return dg.make(
        "DW014",
        f"collect input {node_id}.{port.name} is typed {port.type}; a collect port receives a list",
        node=node_id,
        port=port.name,
        hint=f"type it list[{port.type}]",
        location=node.location,
    )


def check_edges(graph: Graph) -> list[Diagnostic]:
    """DW003 unknown nodes, DW004 unknown output ports, DW005 unknown input ports."""
    out: list[Diagnostic] = []
    if len(graph._index.valid) == len(graph.edges):
        return out  # the index found both ends of every edge: nothing to report
    by_id = graph._index.by_id
    for edge in graph.edges:
        src = by_id.get(edge.source)
        dst = by_id.get(edge.target)
        for end, node_id, node in (("source", edge.source, src), ("target", edge.target, dst)):
            if node is None:
                out.append(
                    dg.make(
                        "DW003",
                        f"connection {edge} names the unknown {end} node {node_id!r}",
                        node=node_id,
                        hint=_did_you_mean(node_id, by_id),
                        edge=edge,
                        related=(edge.target if end == "source" else edge.source,),
                        location=edge.location,
                    )
                )
        if src is not None and src.output(edge.source_port) is None:
            out.append(
                dg.make(
                    "DW004",
                    f"node {src.id!r} has no output {edge.source_port!r} (connection {edge})",
                    node=src.id,
                    port=edge.source_port,
                    hint=_did_you_mean(edge.source_port, (p.name for p in src.outputs))
                    if src.outputs
                    else f"{src.id!r} has no outputs",
                    edge=edge,
                    related=(edge.target,),
                    location=edge.location,
                )
            )
        if dst is not None and dst.input(edge.target_port) is None:
            out.append(
                dg.make(
                    "DW005",
                    f"node {dst.id!r} has no input {edge.target_port!r} (connection {edge})",
                    node=dst.id,
                    port=edge.target_port,
                    hint=_did_you_mean(edge.target_port, (p.name for p in dst.inputs))
                    if dst.inputs
                    else f"{dst.id!r} has no inputs",
                    edge=edge,
                    related=(edge.source,),
                    location=edge.location,
                )
            )
    return out


_COUNTED = 8  # the most collect ports whose edges check_fan_in counts port by port


def check_fan_in(graph: Graph) -> list[Diagnostic]:
    """DW010: several edges into one input that is not a collect port."""
    out: list[Diagnostic] = []
    index = graph._index
    ends = index.endpoints
    numbers, distinct = ends.valid_target_numbers, ends.distinct_targets
    if len(distinct) == len(numbers):
        return out  # no port has two edges
    # Collect ports take any number: are there more edges into the other ports than other ports?
    collect = ends.collect_inputs
    if len(collect) <= _COUNTED:  # a few collect ports: count the edges into each
        into_collect = sum(map(numbers.count, collect))
    else:
        into_collect = sum(map(_COLLECT, ends.valid_targets))
    if len(numbers) - into_collect == len(distinct) - len(distinct.intersection(collect)):
        return out
    shared = [number for number, n in Counter(numbers).items() if n > 1 and not ends.ins.port(number).collect]
    in_edges = index.in_edges if shared else {}
    for target, port_name in map(ends.ins.key, shared):
        edges = in_edges[target, port_name]
        sources = ", ".join(f"{e.source}.{e.source_port}" for e in edges)
        out.append(
            dg.make(
                "DW010",
                f"input {target}.{port_name} is written by {len(edges)} connections ({sources}); it takes exactly one",
                node=target,
                port=port_name,
                hint="keep one connection, or merge the values in a node with a collect input",
                related=tuple(e.source for e in edges),
                edge=edges[1],
                location=edges[1].location,
            )
        )
    return out


def _bound_hint(expected: TypeExpr) -> str:
    bounded = expected.without_none()
    if bounded.kind in ("str", "list"):
        return "OutputField(min_length=..., max_length=...)"
    return "OutputField(ge=..., le=...)"


_PAIRS_TRIED = 64  # the most (source port, target port) pairs check_types tries before it pairs edge by edge


def _every_pair_fits(sources: list[Port], targets: list[Port], *, exact: bool = True) -> bool:
    """Whether every source port among ``sources`` fits every target port among ``targets``, when they are few:
    large graphs share a few port objects among many nodes, and then each edge fits (False: look closer). Not
    ``exact``: the lists may have been cut short after ``_PAIRS_TRIED`` ports, and then are not tried."""
    if not exact and (len(sources) > _PAIRS_TRIED or len(targets) > _PAIRS_TRIED):
        return False
    source_ports = dict(zip(map(id, sources), sources, strict=True))
    target_ports = dict(zip(map(id, targets), targets, strict=True))
    return len(source_ports) * len(target_ports) <= _PAIRS_TRIED and all(
        is_assignable(src.type, dst.item_type()).level == "ok"
        for src in source_ports.values()
        for dst in target_ports.values()
    )


def check_types(graph: Graph) -> list[Diagnostic]:
    """DW007 type mismatches, DW008 optional values into required inputs and DW020 unbounded values (numbers,
    texts, lists) into bounded inputs, per edge."""
    out: list[Diagnostic] = []
    index = graph._index
    ends = index.endpoints
    # First every output of the graph against every input, when their distinct tuples hold few ports.
    outs, ins = chain.from_iterable(ends.outs.tuples), chain.from_iterable(ends.ins.tuples)
    if _every_pair_fits(list(islice(outs, _PAIRS_TRIED + 1)), list(islice(ins, _PAIRS_TRIED + 1)), exact=False):
        return out
    sources, targets = ends.valid_sources, ends.valid_targets
    if _every_pair_fits(sources, targets):
        return out
    # Large graphs repeat a few type pairs many times, mostly the very same type
    # objects: one port pair per distinct (source type, target type, collect).
    samples = dict(
        zip(
            zip(map(id, map(_TYPE, sources)), map(id, map(_TYPE, targets)), map(_COLLECT, targets), strict=True),
            zip(sources, targets, strict=True),
            strict=True,
        )
    )
    if all(is_assignable(src.type, dst.item_type()).level == "ok" for src, dst in samples.values()):
        return out
    checked: dict[tuple[TypeExpr, TypeExpr], Compatibility] = {}
    by_id = index.by_id
    for edge, src_port, dst_port in zip(index.valid, sources, targets, strict=True):
        expected = dst_port.item_type()
        pair = (src_port.type, expected)
        result = checked.get(pair)
        if result is None:
            result = checked[pair] = is_assignable(src_port.type, expected)
        if result.level == "ok":
            continue
        dst_desc = f"{expected} (one item of collect {dst_port.type})" if dst_port.collect else f"{expected}"
        if result.level == "error":
            out.append(
                dg.make(
                    "DW007",
                    f"{edge.source}.{edge.source_port} ({src_port.type}) cannot flow into "
                    f"{edge.target}.{edge.target_port} ({dst_desc}): {result.reason}",
                    node=edge.target,
                    port=edge.target_port,
                    related=(edge.source,),
                    edge=edge,
                    location=edge.location or by_id[edge.target].location,
                )
            )
        elif is_assignable(without_bounds(src_port.type), without_bounds(expected)).level == "ok":
            # Not about None: a number without bounds (or with wider ones) into a bounded input.
            out.append(
                dg.make(
                    "DW020",
                    f"{edge.source}.{edge.source_port} ({src_port.type}) flows into "
                    f"{edge.target}.{edge.target_port} ({dst_desc}): {result.reason}",
                    node=edge.target,
                    port=edge.target_port,
                    hint=f"bound {edge.source}.{edge.source_port} the same way ({_bound_hint(expected)})",
                    related=(edge.source,),
                    edge=edge,
                    location=edge.location or by_id[edge.target].location,
                )
            )
        else:
            out.append(
                dg.make(
                    "DW008",
                    f"{edge.source}.{edge.source_port} ({src_port.type}) flows into "
                    f"{edge.target}.{edge.target_port} ({dst_desc}): {result.reason}",
                    node=edge.target,
                    port=edge.target_port,
                    hint=f"accept None in {edge.target}.{edge.target_port}, or make the producer's output required",
                    related=(edge.source,),
                    edge=edge,
                    location=edge.location or by_id[edge.target].location,
                )
            )
    return out


def check_missing_inputs(graph: Graph) -> list[Diagnostic]:
    """DW009: a required input with no connection."""
    index = graph._index
    ends = index.endpoints
    out: list[Diagnostic] = []
    for number in ends.missing_inputs:
        node, port = ends.ins.owner(number), ends.ins.port(number)
        out.append(
            dg.make(
                "DW009",
                f"required input {node.id}.{port.name} ({port.type}) is not connected",
                node=node.id,
                port=port.name,
                hint=f"connect an output to it, or declare flow.input({port.name!r})",
                location=node.location,
            )
        )
    return out


def check_cycles(graph: Graph) -> list[Diagnostic]:
    """DW006: one diagnostic per cycle (strongly connected component), with its full path."""
    index = graph._index
    out: list[Diagnostic] = []
    if index.forward:
        return out  # node order is a topological order
    # Every cycle lies in what peeling off source nodes leaves; that is nothing for
    # a DAG, so the cheap peel decides the common case and Tarjan sees only the rest.
    residue = _cyclic_residue(index.succ, index.pred)
    if not residue:
        return out
    order = index.position
    succ = {nid: list(dict.fromkeys(c for c in s if c in residue)) for nid, s in index.succ.items() if nid in residue}
    for component in _strongly_connected(succ):
        members = set(component)
        if len(component) == 1 and component[0] not in succ[component[0]]:
            continue
        start = min(component, key=order.__getitem__)
        path = _cycle_through(start, members, succ)
        edges = _path_edges(graph, path)
        via = ", ".join(f"{e.source}.{e.source_port} -> {e.target}.{e.target_port}" for e in edges)
        node = index.by_id[start]
        out.append(
            dg.make(
                "DW006",
                f"cycle: {' -> '.join(path)} (via {via})",
                node=start,
                related=tuple(path[1:-1]),
                hint="a flow must be acyclic; unroll bounded loops (debate rounds, revisions) into steps",
                edge=edges[-1] if edges else None,
                location=(edges[-1].location if edges else None) or node.location,
            )
        )
    out.sort(key=lambda d: order[d.node or ""])
    return out


def _cyclic_residue(succ: dict[str, list[str]], pred: dict[str, list[str]]) -> set[str]:
    """The nodes left after repeatedly removing nodes with no incoming edge (Kahn).

    They are the nodes on a cycle or downstream of one; empty exactly when the
    graph is acyclic.
    """
    indegree = {nid: len(p) for nid, p in pred.items()}
    ready = [nid for nid, d in indegree.items() if not d]
    removed = 0
    while ready:
        nid = ready.pop()
        removed += 1
        for child in succ[nid]:
            d = indegree[child] - 1
            indegree[child] = d
            if not d:
                ready.append(child)
    if removed == len(indegree):
        return set()
    return {nid for nid, d in indegree.items() if d}


def _strongly_connected(succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a 100 000-node chain must not hit the recursion limit)."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in succ:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = succ[node]
            recursed = False
            while i < len(children):
                child = children[i]
                i += 1
                if child not in index_of:
                    work.append((node, i))
                    work.append((child, 0))
                    recursed = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index_of[child])
            if recursed:
                continue
            if low[node] == index_of[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def _cycle_through(start: str, members: set[str], succ: dict[str, list[str]]) -> list[str]:
    """A shortest cycle through ``start`` inside its component (BFS), as a closed path."""
    if start in succ[start]:
        return [start, start]
    parent: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for child in succ[node]:
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    path.reverse()
                    return [*path, start]
                if child in members and child not in seen:
                    seen.add(child)
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError("a strongly connected component always has a cycle through each member")


def _path_edges(graph: Graph, path: list[str]) -> list[Edge]:
    edges: list[Edge] = []
    wanted = set(itertools.pairwise(path))
    first: dict[tuple[str, str], Edge] = {}
    for edge in graph._index.valid:
        key = (edge.source, edge.target)
        if key in wanted and key not in first:
            first[key] = edge
    for pair in itertools.pairwise(path):
        edges.append(first[pair])
    return edges


def check_reachability(graph: Graph) -> list[Diagnostic]:
    """DW011: nodes that no flow input or source node (one without inputs) leads to.

    A node with an unconnected required input is reported by DW009 already and is
    left out here.
    """
    index = graph._index
    ends = index.endpoints
    missing = {ends.ins.owner(number).id for number in ends.missing_inputs}
    # A broken source end of a connection (DW003/DW004) is the same kind of root cause.
    if len(index.valid) != len(graph.edges):
        missing.update(ends.ins.owner(number).id for number in ends.attempted_in - ends.distinct_targets)

    def is_root(node: Node) -> bool:
        return node.kind == INPUT_KIND or not node.inputs or node.id in missing

    if index.forward and len(ends.distinct_targets) == ends.ins.named:
        return []  # as below: an edge enters every input port, so a node that none enters has no inputs
    untargeted = set(range(len(ends.nodes))).difference(ends.valid_target_positions)
    if index.forward and all(map(is_root, map(ends.nodes.__getitem__, untargeted))):
        # Acyclic, and every node without an incoming edge is a root: walking back
        # from any node along incoming edges ends at a root, so all are reached.
        return []
    reached: set[str] = set()
    # Nodes already reported as missing an input count as reached, so their
    # descendants are not flagged again for the same root cause.
    frontier = [node.id for node in index.nodes if is_root(node)]
    reached.update(frontier)
    while frontier:
        nid = frontier.pop()
        for child in index.succ[nid]:
            if child not in reached:
                reached.add(child)
                frontier.append(child)
    out: list[Diagnostic] = []
    if len(reached) == len(index.position):
        return out  # everything reached (reached holds only ids of the graph)
    for nid, node in index.by_id.items():
        if nid in reached or nid in missing:
            continue
        feeders = sorted(set(index.pred[nid]))
        if feeders:
            why = f"it is fed only by nodes that are unreachable themselves ({', '.join(feeders)})"
        else:
            why = "none of its inputs is connected, so it would run on defaults alone"
        out.append(
            dg.make(
                "DW011",
                f"node {nid!r} is not reachable from any flow input or source node: {why}",
                node=nid,
                related=tuple(feeders),
                hint="connect its inputs, or remove it",
                location=node.location,
            )
        )
    return out


def check_unused(graph: Graph) -> list[Diagnostic]:
    """DW012 dead-end nodes, DW013 unused output ports, DW016 unused flow inputs."""
    index = graph._index
    ends = index.endpoints
    if len(ends.attempted_out) == ends.outs.named:  # attempted_out holds only ports found by name
        return []  # every output feeds something
    outs, attempted_out, position = ends.outs, ends.attempted_out, ends.position
    # A node read through a misspelled output port (reported as DW004) is not a dead end as well.
    # (When every edge is valid, every source port is in attempted_out: skip the sweep.)
    misread = (
        set()
        if len(index.valid) == len(graph.edges)
        else {e.source for e in graph.edges if outs.number(position.get(e.source), e.source_port) not in attempted_out}
    )
    out: list[Diagnostic] = []
    for at, node in enumerate(index.nodes):
        nid = node.id
        if node.kind == OUTPUT_KIND or not node.outputs:
            continue
        used = [p.name for p in node.outputs if outs.number(at, p.name) in attempted_out]
        if node.kind == INPUT_KIND:
            if not used:
                out.append(
                    dg.make(
                        "DW016",
                        f"flow input {_io_name(node)!r} feeds no node",
                        node=nid,
                        hint="connect it with to=..., or remove it",
                        location=node.location,
                    )
                )
            continue
        if not used and nid not in misread:
            names = ", ".join(p.name for p in node.outputs)
            out.append(
                dg.make(
                    "DW012",
                    f"nothing uses the outputs of {nid!r} ({names}), and they are not flow outputs",
                    node=nid,
                    hint="connect them, declare one with flow.output(...), or remove the node",
                    location=node.location,
                )
            )
            continue
        for port in node.outputs:
            if port.name not in used:
                out.append(
                    dg.make(
                        "DW013",
                        f"output {nid}.{port.name} ({port.type}) is not used",
                        node=nid,
                        port=port.name,
                        location=node.location,
                    )
                )
    return out


def check_not_empty(graph: Graph) -> list[Diagnostic]:
    """DW017: a flow with no nodes besides its inputs and outputs."""
    if any(n.kind not in (INPUT_KIND, OUTPUT_KIND) for n in graph.nodes):
        return []
    return [dg.make("DW017", f"flow {graph.name!r} has no nodes", hint="add agents or functions to it")]


PASSES: tuple[Pass, ...] = (
    Pass("ids", check_ids),
    Pass("ports", check_ports),
    Pass("defaults", check_defaults),
    Pass("edges", check_edges),
    Pass("fan-in", check_fan_in),
    Pass("types", check_types),
    Pass("missing-inputs", check_missing_inputs),
    Pass("cycles", check_cycles),
    Pass("reachability", check_reachability),
    Pass("unused", check_unused),
    Pass("not-empty", check_not_empty),
    Pass("tools", check_tools),
)


def validate(graph: Graph, passes: Iterable[Pass] = PASSES) -> list[Diagnostic]:
    """Run every pass; return all diagnostics, errors first, in a stable order."""
    found: list[Diagnostic] = []
    with gc_paused():
        for p in passes:
            found.extend(p.run(graph))
        graph._index.drop_endpoints()  # before collection resumes: it need not walk them
    found.sort(key=dg.sort_key)
    return found
