"""Mermaid ``flowchart LR`` for a graph, as GitHub renders it in Markdown.

Mermaid has no ports, so a node shows its id and kind, and each edge is
labelled with its ports and the type it carries. Groups are ``subgraph`` blocks
(nested groups nest). Ids are rewritten to ``[A-Za-z0-9_]`` (``n_`` for nodes,
``g_`` for groups) injectively, so no id can clash with a keyword (``end``) or
another node; the real id is the label. Overlays become classes (``classDef``)
and ``linkStyle`` lines. Same input, same text.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph
from dagwright.visualize._text import mermaid_id, mermaid_label, shorten
from dagwright.visualize.model import (
    GROUP_KIND,
    MISSING_KIND,
    ClusterView,
    DiagnosticsArg,
    EdgeView,
    NodeView,
    RunLike,
    View,
    build_view,
    codes,
    run_line,
    worst,
)

__all__ = ["to_mermaid", "view_to_mermaid"]

# classDef name -> style; a node takes the first that applies: diagnostics, run status, kind.
CLASS_STYLES: dict[str, str] = {
    "error": "fill:#fde0dc,stroke:#c62828,stroke-width:3px,color:#1f2937",
    "warning": "fill:#ffe9cc,stroke:#e65100,stroke-width:3px,color:#1f2937",
    "done": "fill:#c8e6c9,stroke:#2e7d32,color:#1f2937",
    "cached": "fill:#cfe3f7,stroke:#1565c0,color:#1f2937",
    "failed": "fill:#ffcdd2,stroke:#c62828,stroke-width:2px,color:#1f2937",
    "skipped": "fill:#eeeeee,stroke:#9e9e9e,stroke-dasharray:4 3,color:#616161",
    "cancelled": "fill:#eeeeee,stroke:#9e9e9e,stroke-dasharray:4 3,color:#616161",
    "pending": "fill:#ffffff,stroke:#9e9e9e,color:#1f2937",
    "running": "fill:#fff3c4,stroke:#f9a825,color:#1f2937",
    "unknown": "fill:#f5f5f5,stroke:#616161,color:#1f2937",
    "input": "fill:#e6f4ea,stroke:#64748b,color:#1f2937",
    "output": "fill:#fdf1dc,stroke:#64748b,color:#1f2937",
    "agent": "fill:#dbe7f6,stroke:#64748b,color:#1f2937",
    "function": "fill:#e4ecd9,stroke:#64748b,color:#1f2937",
    "coordination": "fill:#f3ead6,stroke:#64748b,color:#1f2937",
    "group": "fill:#ece4f4,stroke:#64748b,color:#1f2937",
    "missing": "fill:#f1f1f1,stroke:#9e9e9e,stroke-dasharray:4 3,color:#616161",
}
_KIND_CLASSES = {INPUT_KIND, OUTPUT_KIND, "agent", "function", GROUP_KIND, MISSING_KIND}
_STATUS_CLASSES = {"done", "cached", "failed", "skipped", "cancelled", "pending", "running"}

ERROR_LINK = "stroke:#c62828,stroke-width:3px,color:#c62828"
WARNING_LINK = "stroke:#e65100,stroke-width:3px,color:#e65100"
FAILED_LINK = "stroke:#c62828"


def to_mermaid(
    graph: Graph,
    *,
    collapse: Sequence[str] = (),
    diagnostics: DiagnosticsArg = None,
    run: RunLike | None = None,
) -> str:
    """A Mermaid ``flowchart LR`` of ``graph``; options as for :func:`dagwright.visualize.dot.to_dot`."""
    return view_to_mermaid(build_view(graph, collapse=collapse, diagnostics=diagnostics, run=run))


def _comment(text: str) -> str:
    # A comment is one line; '%%{' would start a directive, so braces are dropped.
    flat = " ".join(text.split()).replace("{", "(").replace("}", ")")
    return f"%% {flat}"


def view_to_mermaid(view: View) -> str:
    """Mermaid text for a prepared :class:`~dagwright.visualize.model.View`."""
    ids = {n.key: mermaid_id("n_", n.key) for n in view.nodes}
    lines = [_comment(f"dagwright flow: {view.name}" + (f" ({view.description})" if view.description else ""))]
    if view.run_summary:
        lines.append(_comment(view.run_summary))
    if view.check_summary:
        lines.append(_comment(view.check_summary))
    lines.extend(_comment(f"{n.code} {n.name}: {shorten(n.message, 200)}") for n in view.notes)
    lines.append("flowchart LR")
    group_ids: dict[tuple[str, ...], str] = {}
    taken: set[str] = set()
    _emit_items(view.root().items, ids, group_ids, taken, lines, 1)

    styles: dict[str, list[int]] = {}
    for index, edge in enumerate(view.edges):
        arrow = "-.->" if edge.state in ("skipped", "failed") else "-->"
        label = _edge_label(edge)
        lines.append(f'    {ids[edge.source]} {arrow}|"{mermaid_label(label)}"| {ids[edge.target]}')
        severity = worst(edge.marks)
        style = ""
        if severity is not None:
            style = ERROR_LINK if severity == "error" else WARNING_LINK
        elif edge.state == "failed":
            style = FAILED_LINK
        if style:
            styles.setdefault(style, []).append(index)

    classes: dict[str, list[str]] = {}
    for node in view.nodes:
        classes.setdefault(_node_class(node), []).append(ids[node.key])
    for name, style in CLASS_STYLES.items():
        if name in classes:
            lines.append(f"    classDef {name} {style}")
    for name in CLASS_STYLES:
        if name in classes:
            lines.append(f"    class {','.join(classes[name])} {name}")
    for style, indexes in styles.items():
        lines.append(f"    linkStyle {','.join(map(str, indexes))} {style}")
    return "\n".join(lines) + "\n"


def _group_id(path: tuple[str, ...], group_ids: dict[tuple[str, ...], str], taken: set[str]) -> str:
    base = mermaid_id("g_", "/".join(path))
    candidate, n = base, 2
    # Two paths can join to the same text ("a/b" as one name, or a then b): number the later one.
    while candidate in taken:
        candidate = f"g{n}{base[1:]}"
        n += 1
    taken.add(candidate)
    group_ids[path] = candidate
    return candidate


def _emit_items(
    items: list[NodeView | ClusterView],
    ids: dict[str, str],
    group_ids: dict[tuple[str, ...], str],
    taken: set[str],
    lines: list[str],
    depth: int,
) -> None:
    pad = "    " * depth
    for item in items:
        if isinstance(item, NodeView):
            lines.append(pad + _node_decl(item, ids[item.key]))
            continue
        gid = _group_id(item.path, group_ids, taken)
        lines.append(f'{pad}subgraph {gid}["{mermaid_label(item.label)}"]')
        _emit_items(item.items, ids, group_ids, taken, lines, depth + 1)
        lines.append(f"{pad}end")


def _node_text(node: NodeView) -> list[str]:
    if node.is_io:
        ports = node.outputs if node.kind == INPUT_KIND else node.inputs
        port = ports[0] if ports else None
        name = port.name if port is not None else node.id
        lines = [node.kind, name + (f": {port.type}" if port is not None and port.type else "")]
        if node.id != f"{node.kind}:{name}":
            lines.append(node.id)
    else:
        kind = {MISSING_KIND: "unknown node", GROUP_KIND: "collapsed group"}.get(node.kind, node.kind)
        lines = [node.id, " · ".join([kind, *node.facts])]
    if node.run is not None:
        lines.append(run_line(node.run))
        if node.run.error:
            lines.append(shorten(node.run.error.splitlines()[0], 60))
    marks = node.all_marks
    if marks:
        lines.append("⚠ " + ", ".join(codes(marks)))
    return lines


def _node_decl(node: NodeView, mid: str) -> str:
    text = "<br/>".join(mermaid_label(line) for line in _node_text(node))
    if node.is_io:
        return f'{mid}(["{text}"])'
    if node.kind == GROUP_KIND:
        return f'{mid}[["{text}"]]'
    if node.kind == "function":
        return f'{mid}("{text}")'
    return f'{mid}["{text}"]'


def _node_class(node: NodeView) -> str:
    severity = node.severity
    if severity is not None:
        return severity
    if node.run is not None:
        return node.run.status if node.run.status in _STATUS_CLASSES else "unknown"
    return node.kind if node.kind in _KIND_CLASSES else "coordination"


def _edge_label(edge: EdgeView) -> str:
    names = edge.source_port if edge.source_port == edge.target_port else f"{edge.source_port} → {edge.target_port}"
    label = f"{names}: {edge.source_type}" if edge.source_type else names
    if edge.marks:
        label = f"{' '.join(codes(edge.marks))} · {label}"
    return label
