"""Graphviz DOT for a graph: typed port tables, clusters per group, diagnostics and run overlays.

Built with the ``graphviz`` package; no binary is needed to produce the text
(``render`` in :mod:`dagwright.visualize.render` calls ``dot`` for SVG/PNG/PDF).
The output is deterministic: nodes in graph order, groups where they first
appear, edges in graph order, attributes sorted; no generated ids.

Each node is an HTML-like table: the id and kind on top, inputs on the left and
outputs on the right (``name: type``), then the run line and diagnostic codes.
Flow inputs and outputs are rounded boxes without a port table. Edges leave an
output's cell on its right side and enter an input's cell on its left side.
"""

from __future__ import annotations

from collections.abc import Sequence

import graphviz  # type: ignore[import-untyped]

from dagwright.compiler.ir import INPUT_KIND, Graph
from dagwright.visualize._text import dot_name, dot_port, esc_string, html, shorten
from dagwright.visualize.model import (
    GROUP_KIND,
    MISSING_KIND,
    STATUS_COLORS,
    UNKNOWN_STATUS,
    ClusterView,
    DiagnosticsArg,
    EdgeView,
    Mark,
    NodeView,
    PortView,
    RunLike,
    View,
    build_view,
    codes,
    run_line,
    worst,
)

__all__ = ["STATUS_COLORS", "to_dot", "view_to_dot"]

FONT = "Helvetica,Arial,sans-serif"
MONO = "Courier,monospace"

INK = "#333333"
MUTED = "#6b7280"
BORDER = "#64748b"
TYPE_INK = "#1e3a5f"
ERROR = "#c62828"
ERROR_FILL = "#fde0dc"
WARNING = "#e65100"
WARNING_FILL = "#ffe9cc"

# Header fill per node kind; the body stays white so port text reads well.
KIND_FILLS = {
    "agent": "#dbe7f6",
    "function": "#e4ecd9",
    GROUP_KIND: "#ece4f4",
    MISSING_KIND: "#f1f1f1",
}
OTHER_FILL = "#f3ead6"  # coordination nodes (vote, router, ...)
INPUT_FILL = "#e6f4ea"
OUTPUT_FILL = "#fdf1dc"

CLUSTER_FILLS = ("#f6f8fb", "#edf1f7", "#e4eaf3")


def to_dot(
    graph: Graph,
    *,
    collapse: Sequence[str] = (),
    diagnostics: DiagnosticsArg = None,
    run: RunLike | None = None,
) -> str:
    """DOT source for ``graph``.

    ``diagnostics``: True to run the validation passes, or a list of
    diagnostics (``Flow.validate()``); offending nodes, ports and edges are drawn
    red (warnings orange) with their codes. ``run``: a ``RunResult`` (anything
    with ``.nodes``: id -> record with status, duration_ms, tokens, cost, error).
    ``collapse``: group paths (``"debate/round1"``), or a group's own name when unique (``"round1"``), drawn as one box.
    """
    return view_to_dot(build_view(graph, collapse=collapse, diagnostics=diagnostics, run=run))


def view_to_dot(view: View) -> str:
    """DOT source for a prepared :class:`~dagwright.visualize.model.View`."""
    dot = graphviz.Digraph(
        name=graphviz.nohtml(dot_name(view.name)),
        graph_attr={
            "rankdir": "LR",
            "newrank": "true",
            "fontname": FONT,
            "fontsize": "12",
            "fontcolor": INK,
            "nodesep": "0.3",
            "ranksep": "0.7",
            "pad": "0.3",
            "bgcolor": "white",
            "labelloc": "t",
            "labeljust": "l",
            "label": _graph_label(view),
        },
        node_attr={"shape": "plain", "fontname": FONT, "fontsize": "11", "fontcolor": INK},
        edge_attr={"fontname": FONT, "fontsize": "9", "color": "#5b6474", "arrowsize": "0.7", "penwidth": "1.2"},
    )
    by_key = {n.key: n for n in view.nodes}
    _emit_items(dot, view.root().items, 0)
    for edge in view.edges:
        _emit_edge(dot, edge, by_key)
    source: str = dot.source
    return source


# --------------------------------------------------------------------------- graph and clusters


def _graph_label(view: View) -> str:
    rows = [f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="15"><B>{html(view.name)}</B></FONT></TD></TR>']
    if view.description:
        rows.append(
            f'<TR><TD ALIGN="LEFT"><FONT COLOR="{MUTED}">{html(shorten(view.description, 160))}</FONT></TD></TR>'
        )
    if view.run_summary:
        rows.append(f'<TR><TD ALIGN="LEFT">{html(view.run_summary)}</TD></TR>')
    if view.check_summary:
        color = {"error": ERROR, "warning": WARNING}.get(view.check_severity or "", "#2e7d32")
        rows.append(f'<TR><TD ALIGN="LEFT"><FONT COLOR="{color}"><B>{html(view.check_summary)}</B></FONT></TD></TR>')
    for note in view.notes:
        color = ERROR if note.severity == "error" else WARNING
        text = html(shorten(f"{note.code} {note.name}: {note.message}", 200))
        rows.append(f'<TR><TD ALIGN="LEFT"><FONT COLOR="{color}">{text}</FONT></TD></TR>')
    body = "\n".join(rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">\n{body}\n</TABLE>>'


def _emit_items(dot: graphviz.Digraph, items: list[NodeView | ClusterView], depth: int) -> None:
    for item in items:
        if isinstance(item, NodeView):
            _emit_node(dot, item)
            continue
        name = "cluster_" + "/".join(dot_name(part).replace("/", "%2F") for part in item.path)
        with dot.subgraph(name=graphviz.nohtml(name)) as sub:
            sub.attr(
                label=f"<<B>{html(item.label)}</B>>",
                style="rounded,filled",
                color="#94a3b8",
                fillcolor=CLUSTER_FILLS[min(depth, len(CLUSTER_FILLS) - 1)],
                fontsize="12",
                fontcolor="#334155",
                margin="12",
                labeljust="l",
            )
            _emit_items(sub, item.items, depth + 1)


# --------------------------------------------------------------------------- nodes


def _emit_node(dot: graphviz.Digraph, node: NodeView) -> None:
    name = graphviz.nohtml(dot_name(node.key))
    tooltip = graphviz.nohtml(esc_string(_node_tooltip(node)))
    if node.is_io:
        dot.node(name, label=_io_label(node), tooltip=tooltip, **_io_style(node))
        return
    dot.node(name, label=_table_label(node), tooltip=tooltip)


def _node_tooltip(node: NodeView) -> str:
    lines = [f"{node.id} ({node.kind})"]
    if node.members:
        lines[0] = f"group {node.id} ({node.members} nodes)"
    if node.run is not None:
        lines.append(run_line(node.run))
        if node.run.error:
            lines.append(shorten(node.run.error, 300))
    lines.extend(f"{m.code} {m.name}: {shorten(m.message, 300)}" for m in node.all_marks)
    return "\n".join(lines)


def _io_style(node: NodeView) -> dict[str, str]:
    fill = INPUT_FILL if node.kind == INPUT_KIND else OUTPUT_FILL
    color = BORDER
    penwidth = "1"
    if node.run is not None:
        fill, color = STATUS_COLORS.get(node.run.status, UNKNOWN_STATUS)
    severity = node.severity
    if severity is not None:
        color = ERROR if severity == "error" else WARNING
        penwidth = "2.5"
    return {
        "shape": "box",
        "style": "rounded,filled",
        "fillcolor": fill,
        "color": color,
        "penwidth": penwidth,
        "margin": "0.12,0.06",
    }


def _io_label(node: NodeView) -> str:
    ports = node.outputs if node.kind == INPUT_KIND else node.inputs
    port = ports[0] if ports else None
    name = port.name if port is not None else node.id
    # The id is kept whole in the drawing, but "input:topic" reads better as a tag over "topic".
    lines = [f'<FONT POINT-SIZE="9" COLOR="{MUTED}">{html(node.kind)}</FONT>']
    typed = f"<B>{html(name)}</B>"
    if port is not None and port.type:
        typed += f'<FONT COLOR="{MUTED}">: </FONT><FONT FACE="{MONO}" COLOR="{MUTED}">{html(port.type)}</FONT>'
    lines.append(typed)
    expected = f"{node.kind}:{name}"
    if node.id != expected:
        lines.append(f'<FONT POINT-SIZE="9" COLOR="{MUTED}">{html(node.id)}</FONT>')
    if node.run is not None:
        lines.append(f'<FONT POINT-SIZE="9">{html(run_line(node.run))}</FONT>')
    marks = node.all_marks
    if marks:
        lines.append(_codes_font(marks))
    return "<" + "<BR/>".join(lines) + ">"


def _codes_font(marks: list[Mark]) -> str:
    color = ERROR if worst(marks) == "error" else WARNING
    return f'<FONT POINT-SIZE="9" COLOR="{color}"><B>{html(", ".join(codes(marks)))}</B></FONT>'


def _table_label(node: NodeView) -> str:
    header_fill = KIND_FILLS.get(node.kind, OTHER_FILL)
    border = BORDER
    if node.run is not None:
        header_fill, border = STATUS_COLORS.get(node.run.status, UNKNOWN_STATUS)
    severity = node.severity
    if severity is not None:
        border = ERROR if severity == "error" else WARNING
    table_attrs = (
        f'BORDER="{2 if severity else 1}" CELLBORDER="0" CELLSPACING="0" CELLPADDING="4" '
        f'COLOR="{border}" BGCOLOR="white"'
    )
    style = ' STYLE="dashed"' if node.kind == MISSING_KIND or _all_skipped(node) else ""
    rows = [_header_row(node, header_fill)]
    count = max(len(node.inputs), len(node.outputs))
    for i in range(count):
        left = _port_cell(node.inputs[i], "in") if i < len(node.inputs) else "<TD></TD>"
        right = _port_cell(node.outputs[i], "out") if i < len(node.outputs) else "<TD></TD>"
        rows.append(f"<TR>{left}{right}</TR>")
    if node.run is not None:
        fill = STATUS_COLORS.get(node.run.status, UNKNOWN_STATUS)[0]
        text = html(run_line(node.run))
        if node.run.error:
            text += (
                f'<BR/><FONT POINT-SIZE="9" COLOR="{ERROR}">{html(shorten(node.run.error.splitlines()[0], 60))}</FONT>'
            )
        rows.append(f'<TR><TD COLSPAN="2" BGCOLOR="{fill}"><FONT POINT-SIZE="10">{text}</FONT></TD></TR>')
    if node.marks:
        color = ERROR if worst(node.marks) == "error" else WARNING
        fill = ERROR_FILL if color == ERROR else WARNING_FILL
        tags = "<BR/>".join(html(m.tag) for m in _distinct(node.marks))
        rows.append(
            f'<TR><TD COLSPAN="2" BGCOLOR="{fill}" ALIGN="LEFT">'
            f'<FONT POINT-SIZE="10" COLOR="{color}"><B>{tags}</B></FONT></TD></TR>'
        )
    # One row a line: a changed port shows as one changed line in a review diff.
    body = "\n".join(rows)
    return f"<<TABLE {table_attrs}{style}>\n{body}\n</TABLE>>"


def _all_skipped(node: NodeView) -> bool:
    """Dashed means "did not run": a collapsed group only when every node of it was skipped."""
    run = node.run
    return run is not None and run.status == "skipped" and set(run.counts or ("skipped",)) == {"skipped"}


def _distinct(marks: list[Mark]) -> list[Mark]:
    seen: dict[str, Mark] = {}
    for mark in marks:
        seen.setdefault(mark.code, mark)
    return list(seen.values())


def _header_row(node: NodeView, fill: str) -> str:
    sub = node.kind if node.kind != MISSING_KIND else "unknown node"
    if node.kind == GROUP_KIND:
        sub = "collapsed group"
    details = " · ".join([sub, *node.facts])
    return (
        f'<TR><TD COLSPAN="2" BGCOLOR="{fill}" CELLPADDING="5"><B>{html(node.id)}</B><BR/>'
        f'<FONT POINT-SIZE="9" COLOR="#475569">{html(details)}</FONT></TD></TR>'
    )


def port_id(port: PortView, side: str) -> str:
    """The HTML PORT name of a port cell: ``i.topic`` / ``o.findings`` (escaped, injective)."""
    return f"{'i' if side == 'in' else 'o'}.{dot_port(port.name)}"


def _port_cell(port: PortView, side: str) -> str:
    align = "LEFT" if side == "in" else "RIGHT"
    name = html(port.name)
    if port.optional:
        name += f'<FONT COLOR="{MUTED}">?</FONT>'
    if port.missing:
        text = f'<I>{name}</I><FONT POINT-SIZE="9" COLOR="{MUTED}"> (not declared)</FONT>'
    else:
        type_text = f'<FONT FACE="{MONO}" POINT-SIZE="10" COLOR="{TYPE_INK}">{html(port.type)}</FONT>'
        text = f'{name}<FONT COLOR="{MUTED}">: </FONT>{type_text}'
        if port.collect:
            text += f'<FONT POINT-SIZE="8" COLOR="{MUTED}"> collect</FONT>'
    bg = ""
    severity = worst(port.marks)
    if severity is not None:
        color = ERROR if severity == "error" else WARNING
        bg = f' BGCOLOR="{ERROR_FILL if severity == "error" else WARNING_FILL}"'
        tag = f'<FONT POINT-SIZE="9" COLOR="{color}"><B>{html(" ".join(codes(port.marks)))}</B></FONT>'
        text = f"{tag} {text}" if side == "out" else f"{text} {tag}"
    return f'<TD PORT="{port_id(port, side)}" ALIGN="{align}"{bg}>{text}</TD>'


# --------------------------------------------------------------------------- edges


def _endpoint(node: NodeView, port: str, side: str) -> str:
    name = str(graphviz.quoting.quote(graphviz.nohtml(dot_name(node.key))))
    if node.is_io:
        return name
    cell = graphviz.quoting.quote(f"{'i' if side == 'in' else 'o'}.{dot_port(port)}")
    return f"{name}:{cell}:{'w' if side == 'in' else 'e'}"


def _emit_edge(dot: graphviz.Digraph, edge: EdgeView, by_key: dict[str, NodeView]) -> None:
    tail = _endpoint(by_key[edge.source], edge.source_port, "out")
    head = _endpoint(by_key[edge.target], edge.target_port, "in")
    source, target = by_key[edge.source], by_key[edge.target]
    tail_text = source.id if source.is_io else f"{source.id}.{edge.source_port}"
    head_text = target.id if target.is_io else f"{target.id}.{edge.target_port}"
    tip = f"{tail_text} → {head_text}"
    if edge.source_type:
        tip += f" : {edge.source_type}"
    attrs: dict[str, str] = {}
    label = edge.label
    severity = worst(edge.marks)
    if severity is not None:
        color = ERROR if severity == "error" else WARNING
        attrs.update(color=color, fontcolor=color, penwidth="2.4")
        label = " ".join([*codes(edge.marks), label]).strip()
        tip += "\n" + "\n".join(f"{m.code} {m.name}: {shorten(m.message, 300)}" for m in edge.marks)
    elif edge.state == "skipped":
        attrs.update(style="dashed", color="#9e9e9e")
    elif edge.state == "failed":
        attrs.update(style="dashed", color=ERROR)
    if label:
        attrs["label"] = graphviz.nohtml(esc_string(label))
        attrs.setdefault("fontcolor", MUTED)
    attrs["tooltip"] = graphviz.nohtml(esc_string(tip))
    dot.body.append(f"\t{tail} -> {head}{graphviz.quoting.attr_list(attributes=sorted(attrs.items()))}\n")
