"""What a drawing shows, independent of its syntax: the view model both writers read.

:func:`build_view` turns a :class:`~dagwright.compiler.ir.Graph` (checked or not)
into a :class:`View`: nodes with their ports and a few safe facts, edges, the
group tree, and the overlays: diagnostics (``marks``) and a run (per-node status,
duration, tokens, cost). Collapsing a group replaces its nodes with one box whose
ports are the group's external connections.

Only short, safe facts of a node's config are ever shown (a model name, a
function's name, a vote strategy); config blobs, defaults and instructions stay
out, so a drawing cannot leak what a config holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from dagwright.compiler.diagnostics import Diagnostic
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph, Node, Port
from dagwright.compiler.passes import validate
from dagwright.compiler.redact import is_secret_key
from dagwright.visualize._text import scrub, shorten

__all__ = [
    "STATUSES",
    "STATUS_COLORS",
    "UNKNOWN_STATUS",
    "ClusterView",
    "DiagnosticsArg",
    "EdgeView",
    "Mark",
    "NodeRecordLike",
    "NodeView",
    "PortView",
    "RunLike",
    "RunView",
    "View",
    "build_view",
]

STATUSES = ("done", "cached", "failed", "skipped", "cancelled", "running", "pending")

# Run overlay: (fill, border) per status; the DOT writer and the notebook's run tables share them.
STATUS_COLORS: dict[str, tuple[str, str]] = {
    "done": ("#c8e6c9", "#2e7d32"),
    "cached": ("#cfe3f7", "#1565c0"),
    "failed": ("#ffcdd2", "#c62828"),
    "skipped": ("#eeeeee", "#9e9e9e"),
    "cancelled": ("#eeeeee", "#9e9e9e"),
    "pending": ("#ffffff", "#9e9e9e"),
    "running": ("#fff3c4", "#f9a825"),
}
UNKNOWN_STATUS = ("#f5f5f5", "#616161")

GROUP_KIND = "group"
MISSING_KIND = "missing"
TYPE_LIMIT = 48
FACT_LIMIT = 40


class NodeRecordLike(Protocol):
    """What the run overlay reads from one node's record (``RunResult.nodes[id]``)."""

    @property
    def status(self) -> str: ...

    @property
    def duration_ms(self) -> float | None: ...

    @property
    def tokens(self) -> Mapping[str, int] | None: ...

    @property
    def cost(self) -> float | None: ...

    @property
    def error(self) -> str | None: ...


class RunLike(Protocol):
    """A run result: per-node records by node id."""

    @property
    def nodes(self) -> Mapping[str, NodeRecordLike]: ...


DiagnosticsArg = bool | Sequence[Diagnostic] | None
Severity = Literal["error", "warning"]
EdgeState = Literal["", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Mark:
    """One diagnostic drawn on a node, a port or an edge."""

    severity: Severity
    code: str
    name: str
    message: str

    @property
    def tag(self) -> str:
        """``DW007 type-mismatch``."""
        return f"{self.code} {self.name}"


def worst(marks: Iterable[Mark]) -> Severity | None:
    """``error`` if any mark is an error, else ``warning`` if any, else None."""
    found: Severity | None = None
    for mark in marks:
        if mark.severity == "error":
            return "error"
        found = "warning"
    return found


def codes(marks: Iterable[Mark]) -> list[str]:
    """The distinct codes of ``marks``, in order."""
    return list(dict.fromkeys(m.code for m in marks))


@dataclass(slots=True)
class PortView:
    """A port as drawn. ``missing``: an edge names it but the node does not declare it."""

    name: str
    type: str = ""
    full_type: str = ""
    item: str = ""
    collect: bool = False
    optional: bool = False
    missing: bool = False
    marks: list[Mark] = field(default_factory=list)


@dataclass(slots=True)
class RunView:
    """A node's run record, reduced to what is drawn.

    For a collapsed group ``count`` is the number of its nodes with a record,
    ``counts`` how many of them ended in each status, and ``status`` the worst
    of those (what the box is colored by).
    """

    status: str
    duration_ms: float | None = None
    tokens: int | None = None
    cost: float | None = None
    error: str | None = None
    count: int = 1
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class NodeView:
    """A node as drawn. ``key`` is unique in the view (the DOT name); ``id`` is what is shown."""

    key: str
    id: str
    kind: str
    group: tuple[str, ...] = ()
    inputs: list[PortView] = field(default_factory=list)
    outputs: list[PortView] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    run: RunView | None = None
    members: int = 0

    @property
    def all_marks(self) -> list[Mark]:
        """Marks of the node and of its ports."""
        out = list(self.marks)
        for port in (*self.inputs, *self.outputs):
            out.extend(port.marks)
        return out

    @property
    def severity(self) -> Severity | None:
        return worst(self.all_marks)

    @property
    def is_io(self) -> bool:
        return self.kind in (INPUT_KIND, OUTPUT_KIND)


@dataclass(slots=True)
class EdgeView:
    """An edge as drawn, from an output port to an input port (by name)."""

    source: str
    source_port: str
    target: str
    target_port: str
    source_type: str = ""
    target_type: str = ""
    marks: list[Mark] = field(default_factory=list)
    state: EdgeState = ""

    @property
    def label(self) -> str:
        """The type, when it helps: where the two ends do not show the same type."""
        if self.source_type and self.target_type and self.source_type != self.target_type:
            return self.source_type
        return ""


@dataclass(slots=True)
class ClusterView:
    """A group: its path, and its nodes and sub-groups in order of first appearance."""

    path: tuple[str, ...]
    items: list[NodeView | ClusterView] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.path[-1] if self.path else ""


@dataclass(slots=True)
class View:
    """Everything a writer draws."""

    name: str
    description: str
    nodes: list[NodeView]
    edges: list[EdgeView]
    notes: list[Mark]
    run_summary: str = ""
    check_summary: str = ""
    check_severity: Severity | None = None

    def root(self) -> ClusterView:
        """The group tree; the root's path is empty."""
        root = ClusterView(())
        clusters: dict[tuple[str, ...], ClusterView] = {(): root}
        for node in self.nodes:
            parent = root
            for depth in range(1, len(node.group) + 1):
                path = node.group[:depth]
                cluster = clusters.get(path)
                if cluster is None:
                    cluster = ClusterView(path)
                    clusters[path] = cluster
                    parent.items.append(cluster)
                parent = cluster
            parent.items.append(node)
        return root

    def node(self, key: str) -> NodeView:
        for node in self.nodes:
            if node.key == key:
                return node
        raise KeyError(key)


# --------------------------------------------------------------------------- building


def _type_text(port: Port) -> tuple[str, str]:
    full = str(port.type)
    return shorten(full, TYPE_LIMIT), full


def _port_view(port: Port) -> PortView:
    short, full = _type_text(port)
    return PortView(
        port.name,
        short,
        full,
        shorten(str(port.item_type()), TYPE_LIMIT),
        collect=port.collect,
        optional=not port.required,
    )


def safe_fact(value: Any) -> str | None:
    """A config value short and harmless enough to print (a model name, a count), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str) or not value or len(value) > FACT_LIMIT:
        return None
    if "://" in value or "@" in value or "\n" in value:
        return None
    return value


# Config keys whose short scalar values are worth a line under the node's id.
_FACT_KEYS = ("strategy", "method", "mode", "rounds", "round", "role", "threshold", "quorum")


def _facts(node: Node) -> list[str]:
    config = node.config
    facts: list[str] = []
    if node.kind == "agent":
        agent = config.get("agent")
        if isinstance(agent, Mapping):
            model = safe_fact(agent.get("model"))
            if model is not None:
                facts.append(model)
        tools = _tool_fact(config)
        if tools is not None:
            facts.append(tools)
    elif node.kind == "function":
        ref = config.get("function")
        if isinstance(ref, str):
            name = safe_fact(ref.rpartition(":")[2].rpartition(".")[2] if ":" in ref else ref.rpartition(".")[2])
            if name is not None:
                facts.append(f"{name}()")
    for key in _FACT_KEYS:
        if key in config and not is_secret_key(key):
            value = safe_fact(config[key])
            if value is not None:
                facts.append(f"{key}: {value}")
    return facts


_TOOLS_SHOWN = 4


def _tool_fact(config: Mapping[str, Any]) -> str | None:
    """An agent's tools in a few words: ``tools: forecast, population, mcp:inventory`` (the first few, then +N)."""
    names = [str(t.get("name")) for t in config.get("tools") or () if isinstance(t, Mapping)]
    listed = {str(t.get("origin", {}).get("server")) for t in config.get("tools") or () if isinstance(t, Mapping)}
    names += [f"mcp:{s.get('name')}" for s in config.get("mcp_servers") or () if str(s.get("name")) not in listed]
    shown = [n for n in (safe_fact(name) for name in names) if n is not None]
    if not shown:
        return None
    more = len(shown) - _TOOLS_SHOWN
    return "tools: " + ", ".join(shown[:_TOOLS_SHOWN]) + (f" +{more}" if more > 0 else "")


def _unique(base: str, taken: set[str]) -> str:
    key, n = base, 2
    while key in taken:
        key = f"{base}~{n}"
        n += 1
    taken.add(key)
    return key


def _diagnostics(graph: Graph, diagnostics: DiagnosticsArg) -> list[Diagnostic]:
    if diagnostics is None or diagnostics is False:
        return []
    if diagnostics is True:
        return validate(graph)
    if isinstance(diagnostics, (str, bytes)) or not isinstance(diagnostics, Sequence):
        raise TypeError(f"diagnostics must be True, False or a list of Diagnostic, got {type(diagnostics).__name__}")
    for i, item in enumerate(diagnostics):
        if not isinstance(item, Diagnostic):
            raise TypeError(f"diagnostics[{i}] is a {type(item).__name__}, not a Diagnostic")
    return list(diagnostics)


def _mark(d: Diagnostic) -> Mark | None:
    if d.severity not in ("error", "warning"):
        return None  # infos (an unused output) would only clutter a picture
    severity: Severity = "error" if d.severity == "error" else "warning"
    return Mark(severity, d.code, d.name, scrub(d.message))


def _node_views(graph: Graph) -> tuple[list[NodeView], dict[str, NodeView]]:
    """The views of the graph's declared nodes, in order, and the same views by key."""
    nodes: list[NodeView] = []
    by_key: dict[str, NodeView] = {}
    for node in graph.nodes:
        if node.id in by_key:
            continue  # a duplicate id (DW001) is drawn once; the diagnostic marks it
        view = NodeView(
            node.id,
            node.id,
            node.kind,
            node.group,
            [_port_view(p) for p in node.inputs],
            [_port_view(p) for p in node.outputs],
            _facts(node),
        )
        nodes.append(view)
        by_key[node.id] = view
    return nodes, by_key


def _ensure_node(nodes: list[NodeView], by_key: dict[str, NodeView], node_id: str) -> NodeView:
    """The view of ``node_id``, added as a missing node when an edge names a node the graph lacks."""
    view = by_key.get(node_id)
    if view is None:
        view = NodeView(node_id, node_id, MISSING_KIND)
        nodes.append(view)
        by_key[node_id] = view
    return view


def _ensure_port(view: NodeView, name: str, side: Literal["in", "out"]) -> PortView:
    """The port ``name`` of ``view``, added as missing when an edge names a port the node lacks."""
    ports = view.inputs if side == "in" else view.outputs
    for port in ports:
        if port.name == name:
            return port
    port = PortView(name, "?", "not declared", "", missing=True)
    ports.append(port)
    return port


def _edge_views(
    graph: Graph, nodes: list[NodeView], by_key: dict[str, NodeView]
) -> tuple[list[EdgeView], dict[tuple[str, str, str, str], EdgeView]]:
    """The views of the graph's edges, and the first of them by endpoints (where diagnostics land)."""
    edges: list[EdgeView] = []
    edge_index: dict[tuple[str, str, str, str], EdgeView] = {}
    for edge in graph.edges:
        src = _ensure_node(nodes, by_key, edge.source)
        dst = _ensure_node(nodes, by_key, edge.target)
        src_type = dst_type = ""
        if src.is_io:
            src_type = src.outputs[0].type if src.outputs else ""
        else:
            src_type = _ensure_port(src, edge.source_port, "out").item
        if dst.is_io:
            dst_type = dst.inputs[0].item if dst.inputs else ""
        else:
            dst_type = _ensure_port(dst, edge.target_port, "in").item
        view_edge = EdgeView(src.key, edge.source_port, dst.key, edge.target_port, src_type, dst_type)
        edges.append(view_edge)
        edge_index.setdefault((edge.source, edge.source_port, edge.target, edge.target_port), view_edge)
    return edges, edge_index


def _check_summary(found: list[Diagnostic]) -> tuple[str, Severity | None]:
    """The ``check: 1 error, 2 warnings`` line for ``found``, and its worst severity."""
    errors = sum(1 for d in found if d.severity == "error")
    warnings = sum(1 for d in found if d.severity == "warning")
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((errors, "error"), (warnings, "warning")) if n]
    check_summary = "check: " + (", ".join(parts) if parts else "no errors or warnings")
    check_severity: Severity | None = "error" if errors else ("warning" if warnings else None)
    return check_summary, check_severity


def build_view(
    graph: Graph,
    *,
    collapse: Sequence[str] = (),
    diagnostics: DiagnosticsArg = None,
    run: RunLike | None = None,
) -> View:
    """The view of ``graph`` with the requested overlays and collapsed groups."""
    if not isinstance(graph, Graph):
        raise TypeError(f"expected a Graph, got {type(graph).__name__}")
    if isinstance(collapse, str):
        collapse = [collapse]
    nodes, by_key = _node_views(graph)
    edges, edge_index = _edge_views(graph, nodes, by_key)

    found = _diagnostics(graph, diagnostics)
    notes = _apply_diagnostics(found, by_key, edge_index)
    check_summary = ""
    check_severity: Severity | None = None
    if diagnostics is not None and diagnostics is not False:
        check_summary, check_severity = _check_summary(found)
    run_summary = ""
    if run is not None:
        run_summary = _apply_run(run, nodes, edges, by_key)
    if collapse:
        nodes, edges = _collapse(graph, nodes, edges, collapse)
    description = graph.metadata.get("description", "") if graph.metadata else ""
    return View(
        graph.name,
        scrub(description) if isinstance(description, str) else "",
        nodes,
        edges,
        notes,
        run_summary,
        check_summary,
        check_severity,
    )


def _apply_diagnostics(
    found: list[Diagnostic],
    by_key: dict[str, NodeView],
    edge_index: dict[tuple[str, str, str, str], EdgeView],
) -> list[Mark]:
    notes: list[Mark] = []
    for d in found:
        mark = _mark(d)
        if mark is None:
            continue
        placed = False
        if d.edge is not None:
            target = edge_index.get((d.edge.source, d.edge.source_port, d.edge.target, d.edge.target_port))
            if target is not None:
                target.marks.append(mark)
                placed = True
        view = by_key.get(d.node) if d.node is not None else None
        if view is not None:
            port_view = None
            if d.port is not None:
                for port in (*view.inputs, *view.outputs):
                    if port.name == d.port:
                        port_view = port
                        break
            if port_view is not None:
                port_view.marks.append(mark)
            else:
                view.marks.append(mark)
            placed = True
            if d.code == "DW006":  # every node on a cycle takes part in it
                for other in d.related:
                    related = by_key.get(other)
                    if related is not None and related is not view:
                        related.marks.append(mark)
        if not placed:
            notes.append(mark)
    return notes


# --------------------------------------------------------------------------- run overlay


def _tokens_total(tokens: object) -> int | None:
    if not isinstance(tokens, Mapping):
        return None
    total = tokens.get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    parts = [tokens.get("prompt"), tokens.get("completion")]
    ints = [p for p in parts if isinstance(p, int) and not isinstance(p, bool)]
    return sum(ints) if ints else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _run_view(record: object) -> RunView:
    status = getattr(record, "status", None)
    error = getattr(record, "error", None)
    return RunView(
        status if isinstance(status, str) else "unknown",
        _number(getattr(record, "duration_ms", None)),
        _tokens_total(getattr(record, "tokens", None)),
        _number(getattr(record, "cost", None)),
        scrub(error) if isinstance(error, str) and error else None,
    )


def format_duration(ms: float) -> str:
    """``340 ms``, ``1.24 s``, ``2 min 05 s``."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds:02d} s"


def format_cost(cost: float) -> str:
    """``$0.0012``, ``$1.25``."""
    return f"${cost:.4f}" if cost < 1 else f"${cost:.2f}"


def status_order(statuses: Iterable[str]) -> list[str]:
    """``statuses`` in the order runs are summed up (done first, pending last), unknown ones after, sorted."""
    found = set(statuses)
    return [s for s in STATUSES if s in found] + sorted(found - set(STATUSES))


def status_text(run: RunView) -> str:
    """``done``; for a group ``done (21 nodes)`` or, when they ended differently, ``18 done, 3 skipped (21 nodes)``."""
    if run.count == 1:
        return run.status
    counts = run.counts or {run.status: run.count}
    if len(counts) == 1:
        return f"{run.status} ({run.count} nodes)"
    # One word for a mixed group would misreport it: "skipped (21 nodes)" when 18 of them ran.
    return ", ".join(f"{counts[s]} {s}" for s in status_order(counts)) + f" ({run.count} nodes)"


def run_line(run: RunView) -> str:
    """``done · 1.24 s · 1,234 tok · $0.0012`` (what is known)."""
    parts = [status_text(run)]
    if run.duration_ms is not None:
        parts.append(format_duration(run.duration_ms))
    if run.tokens is not None:
        parts.append(f"{run.tokens:,} tok")
    if run.cost is not None:
        parts.append(format_cost(run.cost))
    return " · ".join(parts)


def _apply_run(run: RunLike, nodes: list[NodeView], edges: list[EdgeView], by_key: dict[str, NodeView]) -> str:
    records = getattr(run, "nodes", None)
    if not isinstance(records, Mapping):
        raise TypeError(f"run must be a RunResult (an object with a .nodes mapping), got {type(run).__name__}")
    counts: dict[str, int] = {}
    tokens = 0
    cost = 0.0
    has_tokens = has_cost = False
    for node in nodes:
        record = records.get(node.id)
        if record is None:
            continue
        node.run = _run_view(record)
        counts[node.run.status] = counts.get(node.run.status, 0) + 1
        if node.run.tokens is not None:
            tokens += node.run.tokens
            has_tokens = True
        if node.run.cost is not None:
            cost += node.run.cost
            has_cost = True
    for edge in edges:
        src, dst = by_key[edge.source], by_key[edge.target]
        if src.run is not None and src.run.status == "failed":
            edge.state = "failed"
        elif dst.run is not None and dst.run.status in ("skipped", "cancelled"):
            edge.state = "skipped"
    order = status_order(counts)
    parts = [", ".join(f"{counts[s]} {s}" for s in order)] if order else ["no node records"]
    run_id = getattr(run, "run_id", None)
    duration = _number(getattr(run, "duration_ms", None))
    if duration is not None and duration > 0:
        parts.append(format_duration(duration))
    if has_tokens:
        parts.append(f"{tokens:,} tok")
    if has_cost:
        parts.append(format_cost(cost))
    prefix = f"run {shorten(run_id, 40)}: " if isinstance(run_id, str) and run_id else "run: "
    return prefix + " · ".join(parts)


# --------------------------------------------------------------------------- collapsing


def _group_paths(graph: Graph) -> list[tuple[str, ...]]:
    paths: dict[tuple[str, ...], None] = {}
    for node in graph.nodes:
        for depth in range(1, len(node.group) + 1):
            paths.setdefault(node.group[:depth], None)
    return list(paths)


def _wanted_groups(graph: Graph, specs: Sequence[str]) -> set[tuple[str, ...]]:
    """The paths of the groups ``specs`` name; raises ValueError for a name that is unknown or ambiguous."""
    known = _group_paths(graph)
    known_set = set(known)
    wanted: set[tuple[str, ...]] = set()
    for spec in specs:
        if not isinstance(spec, str) or not spec:
            raise ValueError(f"collapse takes group names such as 'debate', got {spec!r}")
        path = tuple(spec.split("/"))
        if path not in known_set:
            # A group's own name, without the groups around it ('debate' for 'research/debate'), when unique.
            ending = [p for p in known if p[-len(path) :] == path]
            if len(ending) > 1:
                names = ", ".join(repr("/".join(p)) for p in ending)
                raise ValueError(f"collapse: {spec!r} names several groups of flow {graph.name!r}: {names}; give one")
            if not ending:
                names = ", ".join(repr("/".join(p)) for p in known) or "none"
                raise ValueError(f"collapse: flow {graph.name!r} has no group {spec!r} (groups: {names})")
            path = ending[0]
        wanted.add(path)
    return wanted


def _box_path(group: tuple[str, ...], wanted: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The collapsed group that hides a node of ``group``, or None if it stays drawn."""
    # The outermost collapsed group wins: collapsing 'debate' hides 'debate/round1' too.
    for depth in range(1, len(group) + 1):
        if group[:depth] in wanted:
            return group[:depth]
    return None


def _box_nodes(
    nodes: list[NodeView], wanted: set[tuple[str, ...]]
) -> tuple[list[NodeView], dict[tuple[str, ...], NodeView], dict[str, NodeView]]:
    """The nodes with each collapsed group drawn as one box, the boxes by group path, and each hidden node's box."""
    taken = {n.key for n in nodes}
    boxes: dict[tuple[str, ...], NodeView] = {}
    owner: dict[str, NodeView] = {}
    out_nodes: list[NodeView] = []
    for node in nodes:
        boxed = _box_path(node.group, wanted)
        if boxed is None:
            out_nodes.append(node)
            continue
        box = boxes.get(boxed)
        if box is None:
            label = "/".join(boxed)
            box = NodeView(_unique(f"group:{label}", taken), label, GROUP_KIND, boxed[:-1])
            boxes[boxed] = box
            out_nodes.append(box)
        box.members += 1
        inner = _relative(node.id, boxed)
        for mark in node.all_marks:
            box.marks.append(Mark(mark.severity, mark.code, mark.name, f"{inner}: {mark.message}"))
        if node.run is not None:
            box.run = _merge_run(box.run, node.run)
        owner[node.key] = box
    for box in boxes.values():
        box.facts.append(f"{box.members} node{'s' if box.members != 1 else ''}")
    return out_nodes, boxes, owner


# Port names that say nothing of what flows through them (a gather node's ``values``, a function's
# ``output``): a collapsed box names such a port after the far end of its edges, or after the node.
GENERIC_PORTS = frozenset({"value", "values", "output", "outputs", "result", "results", "out", "in", "input", "inputs"})


@dataclass(slots=True)
class _BoxPort:
    """A collapsed box's port while it is being named: its type and the (node key, port) its edges reach."""

    type: str
    peers: list[tuple[str, str]] = field(default_factory=list)


_BoxPorts = dict[str, dict[tuple[str, str], _BoxPort]]


def _crossing_edges(
    edges: list[EdgeView], owner: dict[str, NodeView]
) -> tuple[list[tuple[EdgeView, NodeView | None, NodeView | None]], _BoxPorts, _BoxPorts]:
    """The edges still drawn (with their ends' boxes), and each box's input and output ports by source port."""
    # Box ports: one input per outside source feeding the group, one output per inner port read from outside.
    # Either way the far end of an edge is its target: inside the box for an input, outside for an output.
    in_ports: _BoxPorts = {}
    out_ports: _BoxPorts = {}
    crossing: list[tuple[EdgeView, NodeView | None, NodeView | None]] = []
    for edge in edges:
        src_box, dst_box = owner.get(edge.source), owner.get(edge.target)
        if src_box is not None and src_box is dst_box:
            for mark in edge.marks:
                src_box.marks.append(Mark(mark.severity, mark.code, mark.name, mark.message))
            continue
        crossing.append((edge, src_box, dst_box))
        key = (edge.source, edge.source_port)
        for box, ports in ((dst_box, in_ports), (src_box, out_ports)):
            if box is not None:
                port = ports.setdefault(box.key, {}).setdefault(key, _BoxPort(edge.source_type))
                port.peers.append((edge.target, edge.target_port))
    return crossing, in_ports, out_ports


def _port_base(
    key: tuple[str, str], port: _BoxPort, by_key: dict[str, NodeView], path: tuple[str, ...], inner: bool
) -> tuple[str, str]:
    """A box port's name before clashes are settled, and the node label that leads it when two clash.

    ``key`` is the source port: inside the box for an output (``inner``), outside it for an input.
    """
    node_id = by_key[key[0]].id
    label = _relative(node_id, path) if inner else node_id
    if key[1] not in GENERIC_PORTS:
        return key[1], label
    far = {name for _, name in port.peers}
    if len(far) == 1:
        (name,) = far
        if name not in GENERIC_PORTS:
            return name, label  # debate's transcript.values -> output 'transcript' is "transcript"
    return label, label


def _port_names(
    path: tuple[str, ...], ports: dict[tuple[str, str], _BoxPort], by_key: dict[str, NodeView], inner: bool
) -> dict[tuple[str, str], str]:
    """A unique name for each of a box's ports, by (node key, port name)."""
    bases = {key: _port_base(key, port, by_key, path, inner) for key, port in ports.items()}
    counts: dict[str, int] = {}
    for name, _ in bases.values():
        counts[name] = counts.get(name, 0) + 1
    names: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for key, (name, label) in bases.items():
        # A port keeps its name unless two share it; then its node's id (relative inside the box) leads.
        if counts[name] > 1 and name != label:
            name = f"{label}.{name}"
        names[key] = _unique(name, used)
    return names


def _rewire(
    crossing: list[tuple[EdgeView, NodeView | None, NodeView | None]],
    in_names: dict[str, dict[tuple[str, str], str]],
    out_names: dict[str, dict[tuple[str, str], str]],
) -> list[EdgeView]:
    """The crossing edges redrawn to end at box ports, those that then coincide merged into one."""
    out_edges: list[EdgeView] = []
    merged: dict[tuple[str, str, str, str], EdgeView] = {}
    for edge, src_box, dst_box in crossing:
        source, source_port = edge.source, edge.source_port
        target, target_port = edge.target, edge.target_port
        target_type = edge.target_type
        if src_box is not None:
            source, source_port = src_box.key, out_names[src_box.key][(edge.source, edge.source_port)]
        if dst_box is not None:
            target, target_port = dst_box.key, in_names[dst_box.key][(edge.source, edge.source_port)]
            target_type = edge.source_type
        key = (source, source_port, target, target_port)
        existing = merged.get(key)
        if existing is not None:
            existing.marks.extend(edge.marks)
            existing.state = _merged_state(existing.state, edge.state)
            continue
        new = EdgeView(source, source_port, target, target_port, edge.source_type, target_type, list(edge.marks))
        new.state = edge.state
        merged[key] = new
        out_edges.append(new)
    return out_edges


def _merged_state(a: EdgeState, b: EdgeState) -> EdgeState:
    """The state of one drawn edge standing for two: failed if either is, skipped only if both are."""
    # An input feeding a group reaches some nodes that ran and some that were skipped: it did flow.
    if "failed" in (a, b):
        return "failed"
    return "skipped" if a == b == "skipped" else ""


def _collapse(
    graph: Graph, nodes: list[NodeView], edges: list[EdgeView], specs: Sequence[str]
) -> tuple[list[NodeView], list[EdgeView]]:
    """The nodes and edges with each group named in ``specs`` drawn as one box."""
    wanted = _wanted_groups(graph, specs)
    out_nodes, boxes, owner = _box_nodes(nodes, wanted)
    crossing, in_ports, out_ports = _crossing_edges(edges, owner)

    by_key = {n.key: n for n in nodes}
    in_names: dict[str, dict[tuple[str, str], str]] = {}
    out_names: dict[str, dict[tuple[str, str], str]] = {}
    for path, box in boxes.items():
        ins = in_ports.get(box.key, {})
        outs = out_ports.get(box.key, {})
        in_names[box.key] = _port_names(path, ins, by_key, inner=False)
        out_names[box.key] = _port_names(path, outs, by_key, inner=True)
        box.inputs = [PortView(in_names[box.key][k], p.type, p.type, p.type) for k, p in ins.items()]
        box.outputs = [PortView(out_names[box.key][k], p.type, p.type, p.type) for k, p in outs.items()]
    return out_nodes, _rewire(crossing, in_names, out_names)


def _relative(node_id: str, path: tuple[str, ...]) -> str:
    """``debate.round1.optimist`` inside ``debate/round1`` is ``optimist``."""
    prefix = ".".join(path) + "."
    return node_id[len(prefix) :] if node_id.startswith(prefix) and len(node_id) > len(prefix) else node_id


# Worst first: the status a collapsed box takes (and is colored by) when its nodes ended differently.
# A status this version does not know ranks worst, so it is never hidden behind a "done".
_STATUS_RANK = {"failed": 0, "running": 1, "cancelled": 2, "pending": 3, "skipped": 4, "done": 5, "cached": 6}


def worst_status(counts: Mapping[str, int]) -> str:
    """The worst status of ``counts``; ``done`` for a mix of done and cached (both ran fine)."""
    if set(counts) <= {"done", "cached"} and "done" in counts:
        return "done"
    return min(counts, key=lambda s: (_STATUS_RANK.get(s, -1), s))


def _merge_run(total: RunView | None, part: RunView) -> RunView:
    """``total`` (a box's run so far, or None) with one more member's run added."""
    if total is None:
        return RunView(part.status, part.duration_ms, part.tokens, part.cost, part.error, 1, {part.status: 1})

    def add(a: float | None, b: float | None) -> float | None:
        return b if a is None else (a if b is None else a + b)

    counts = dict(total.counts)
    counts[part.status] = counts.get(part.status, 0) + 1
    tokens = add(total.tokens, part.tokens)
    return RunView(
        worst_status(counts),
        add(total.duration_ms, part.duration_ms),
        int(tokens) if tokens is not None else None,
        add(total.cost, part.cost),
        total.error or part.error,
        total.count + 1,
        counts,
    )
