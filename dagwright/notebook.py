"""Flows, graphs, runs and agents shown inline in Jupyter and IPython.

Importing :mod:`dagwright` under IPython calls :func:`register`, which adds one
formatter per type to IPython's ``mimebundle_formatter`` (by module and class
name, so registering imports nothing). A displayed object then shows as:

- a :class:`~dagwright.flow.Flow` or a compiled :class:`~dagwright.compiler.ir.Graph`:
  its drawing, as SVG when Graphviz's ``dot`` is on the PATH, otherwise as a
  Mermaid chart in Markdown (JupyterLab and GitHub draw ```` ```mermaid ```` fences);
  its problems (``validate()``) drawn in red and orange;
- a :class:`~dagwright.execution.events.RunResult`: a table of its nodes (status,
  attempts, time, tokens, cost) in HTML; a result does not hold its graph, so
  ``draw(flow, run=result)`` draws the run on the flow;
- an agent (:class:`~dagwright.agent.BaseAgent`): its name, signature and model,
  and the drawing of its one-node flow.

Every object also gets a short ``text/plain`` summary. :func:`draw` makes a
drawing with options (``collapse``, ``run``, ``diagnostics``) that displays the same way.
Nothing here runs unless IPython is in use: a plain ``import dagwright`` does
not import this module, and this module imports the drawing code on first display.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagwright.compiler.diagnostics import Diagnostic
    from dagwright.compiler.ir import Graph
    from dagwright.execution.events import NodeRecord, RunResult
    from dagwright.flow import Flow
    from dagwright.visualize.model import RunLike, View

__all__ = [
    "Drawing",
    "agent_bundle",
    "draw",
    "flow_bundle",
    "graph_bundle",
    "graph_summary",
    "register",
    "run_bundle",
    "unregister",
]

SVG = "image/svg+xml"
MARKDOWN = "text/markdown"
HTML = "text/html"
TEXT = "text/plain"

# Past these a drawing is more noise than help (and Mermaid refuses charts of over 500 edges by default):
# the summary says so and how to draw a part (collapse groups) or write a file.
SVG_NODE_LIMIT = 1500
MERMAID_EDGE_LIMIT = 500
# A run table longer than this is cut; failed nodes are listed below it all the same.
ROW_LIMIT = 200
ERROR_LIMIT = 20

Bundle = dict[str, str]


# --------------------------------------------------------------------------- registration


def _shell(shell: Any) -> Any:
    """``shell``, or the running IPython shell, or None."""
    if shell is not None:
        return shell
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython() if callable(get_ipython) else None


# The MIME types a drawing is for; a shell showing none of them (IPython in a terminal) gets the text alone.
RICH_TYPES = frozenset({SVG, MARKDOWN, HTML})


@dataclass(frozen=True, slots=True)
class _Formatter:
    """A bundle function as registered with one shell: the drawing is made only where it can be shown."""

    bundle: Callable[..., Bundle]
    shell: Any

    def __call__(self, obj: Any) -> Bundle:
        # The terminal's IPython shows text/plain only: running `dot` there for every echoed flow is waste.
        active = getattr(getattr(self.shell, "display_formatter", None), "active_types", None)
        rich = not isinstance(active, list) or bool(RICH_TYPES.intersection(active))
        return self.bundle(obj, rich=rich)


def _formatters() -> tuple[tuple[str, str, Callable[..., Bundle]], ...]:
    # (module, class, bundle): IPython resolves the names when such an object is first displayed,
    # and subclasses (Agent, a user's QAAgent) through their MRO.
    return (
        ("dagwright.flow", "Flow", flow_bundle),
        ("dagwright.compiler.ir", "Graph", graph_bundle),
        ("dagwright.execution.events", "RunResult", run_bundle),
        ("dagwright.agent", "BaseAgent", agent_bundle),
    )


def register(shell: Any = None) -> bool:
    """Show flows, graphs, runs and agents inline in ``shell`` (default: the running IPython).

    Returns False when there is no shell to register with (IPython imported but not running).
    Registering twice is harmless.
    """
    found = _shell(shell)
    formatters = getattr(found, "display_formatter", None)
    bundles = getattr(formatters, "mimebundle_formatter", None)
    if bundles is None:
        return False
    for module, name, bundle in _formatters():
        bundles.for_type_by_name(module, name, _Formatter(bundle, found))
    return True


def unregister(shell: Any = None) -> None:
    """Undo :func:`register`: the objects show as their ``repr`` again."""
    found = _shell(shell)
    bundles = getattr(getattr(found, "display_formatter", None), "mimebundle_formatter", None)
    if bundles is None:
        return
    for module, name, _ in _formatters():
        bundles.pop(f"{module}.{name}", None)


# --------------------------------------------------------------------------- drawings


def _svg(view: View) -> str | None:
    """The view as an inline ``<svg>`` element, or None when ``dot`` is missing or fails."""
    from dagwright.visualize.dot import view_to_dot
    from dagwright.visualize.render import RenderError, dot_to_image

    try:
        image = dot_to_image(view_to_dot(view), "svg").decode("utf-8")
    except RenderError:
        return None  # no dot, or a dot that fails: Mermaid needs no program
    # The XML prolog and DOCTYPE are not allowed inside HTML, where the agent view embeds the SVG.
    start = image.find("<svg")
    return image[start:] if start >= 0 else image


def _mermaid_block(view: View) -> str:
    """The view as a fenced Mermaid block, which JupyterLab and GitHub draw in Markdown."""
    from dagwright.visualize.mermaid import view_to_mermaid

    return "```mermaid\n" + view_to_mermaid(view) + "```\n"


@dataclass(frozen=True, slots=True)
class _Picture:
    """A drawing made for a notebook: ``svg`` or ``mermaid`` (a fenced block), or why there is none."""

    svg: str | None = None
    mermaid: str | None = None
    skipped: str = ""


def _picture(view: View) -> _Picture:
    """SVG when ``dot`` can make it, else Mermaid, else (too large) the reason there is no drawing."""
    nodes, edges = len(view.nodes), len(view.edges)
    if nodes <= SVG_NODE_LIMIT:
        svg = _svg(view)
        if svg is not None:
            return _Picture(svg=svg)
    if edges <= MERMAID_EDGE_LIMIT:
        return _Picture(mermaid=_mermaid_block(view))
    return _Picture(
        skipped=f"too large to draw inline ({nodes} nodes, {edges} edges): draw part of it with "
        "dagwright.notebook.draw(flow, collapse=[...]), or write a file with flow.render('flow.svg')"
    )


def _markdown_code(text: str) -> str:
    """``text`` as one Markdown code span, whatever backticks it holds."""
    flat = " ".join(text.split())
    fence = "`"
    while fence in flat:
        fence += "`"
    return f"{fence} {flat} {fence}"


def _bundle(picture: _Picture, text: str, title: str = "", title_html: str = "") -> Bundle:
    """The MIME bundle of a drawing with a Markdown ``title`` (Mermaid) or an HTML one (SVG) above it."""
    bundle: Bundle = {TEXT: text if not picture.skipped else f"{text}\n{picture.skipped}"}
    if picture.svg is not None:
        bundle[SVG] = picture.svg
        if title_html:
            # HTML wins over SVG in the frontends: the title and the drawing together.
            bundle[HTML] = f"<div>{title_html}</div>\n{picture.svg}"
    elif picture.mermaid is not None:
        bundle[MARKDOWN] = (title + "\n\n" if title else "") + picture.mermaid
    return bundle


# --------------------------------------------------------------------------- flows and graphs


def _counted(words: Iterable[str]) -> str:
    """``4 agents, 1 function``: each word with how often it occurs, in order of first occurrence."""
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    return ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for word, n in counts.items())


def _ports(nodes: Iterable[Any], outputs: bool) -> str:
    """``topic: str, limit: int``: the typed ports of the flow's input (or output) nodes."""
    from dagwright.visualize._text import shorten

    parts = []
    for node in nodes:
        for port in node.outputs if outputs else node.inputs:
            parts.append(f"{port.name}: {shorten(str(port.type), 48)}")
    return ", ".join(parts) or "none"


def _check_line(found: Sequence[Diagnostic]) -> str:
    """``check: 1 error, 2 warnings`` (infos are not counted, as in the drawings)."""
    errors = sum(1 for d in found if d.severity == "error")
    warnings = sum(1 for d in found if d.severity == "warning")
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((errors, "error"), (warnings, "warning")) if n]
    return "check: " + (", ".join(parts) if parts else "no errors or warnings")


def graph_summary(what: str, graph: Graph, found: Sequence[Diagnostic]) -> str:
    """A few lines on a flow or graph: its nodes by kind, inputs, outputs, groups, and its check."""
    from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND

    description = graph.metadata.get("description", "") if graph.metadata else ""
    head = f"{what} {graph.name!r}" + (f": {description}" if isinstance(description, str) and description else "")
    inner = [n for n in graph.nodes if n.kind not in (INPUT_KIND, OUTPUT_KIND)]
    groups = list(dict.fromkeys("/".join(n.group) for n in graph.nodes if n.group))
    lines = [
        head,
        f"  {len(inner)} node{'s' if len(inner) != 1 else ''}"
        + (f" ({_counted(n.kind for n in inner)})" if inner else ""),
        f"  inputs: {_ports(graph.input_nodes, outputs=True)}",
        f"  outputs: {_ports(graph.output_nodes, outputs=False)}",
    ]
    if groups:
        lines.append(f"  groups: {', '.join(groups)}")
    lines.append(f"  {_check_line(found)}")
    return "\n".join(lines)


def _drawn_problems(found: Sequence[Diagnostic]) -> list[Diagnostic] | None:
    """The errors and warnings to draw, or None (no check line) for a clean flow."""
    # A clean flow is drawn as it is; one with problems shows them while it is being built.
    shown = [d for d in found if d.severity in ("error", "warning")]
    return shown or None


def _graph_bundle(what: str, graph: Graph, found: Sequence[Diagnostic], rich: bool) -> Bundle:
    """The summary of a flow's or graph's ``graph`` with its problems ``found``, and with ``rich`` its drawing."""
    from dagwright.visualize.model import build_view

    text = graph_summary(what, graph, found)
    if not rich:
        return {TEXT: text}
    picture = _picture(build_view(graph, diagnostics=_drawn_problems(found)))
    return _bundle(picture, text, title=f"**{what}** {_markdown_code(graph.name)}")


def flow_bundle(flow: Flow, *, rich: bool = True) -> Bundle:
    """What a notebook shows for a :class:`~dagwright.flow.Flow`: a summary, and its drawing unless not ``rich``."""
    return _graph_bundle("Flow", flow.to_graph(), flow.validate(), rich)


def graph_bundle(graph: Graph, *, rich: bool = True) -> Bundle:
    """What a notebook shows for a :class:`~dagwright.compiler.ir.Graph`: a summary, and its drawing if ``rich``."""
    from dagwright.compiler.passes import validate

    return _graph_bundle("Graph", graph, validate(graph), rich)


# --------------------------------------------------------------------------- draw()


@dataclass(frozen=True, slots=True)
class Drawing:
    """A drawing that displays in a notebook (SVG, or Mermaid without ``dot``); see :func:`draw`."""

    graph: Graph
    title: str
    collapse: tuple[str, ...] = ()
    diagnostics: tuple[Diagnostic, ...] | None = None
    run: RunLike | None = None

    def view(self) -> View:
        """What is drawn (see :func:`dagwright.visualize.build_view`)."""
        from dagwright.visualize.model import build_view

        diagnostics = list(self.diagnostics) if self.diagnostics is not None else None
        return build_view(self.graph, collapse=self.collapse, diagnostics=diagnostics, run=self.run)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        """What IPython shows (it asks any object for this method, registered or not)."""
        view = self.view()
        lines = [self.title]
        lines.extend(f"  {line}" for line in (view.run_summary, view.check_summary) if line)
        return _bundle(_picture(view), "\n".join(lines), title=f"**{_markdown_code(self.title)}**")


def draw(
    subject: Flow | Graph,
    *,
    collapse: Sequence[str] = (),
    diagnostics: bool = False,
    run: RunLike | None = None,
) -> Drawing:
    """A drawing of a flow or graph for a notebook cell: ``draw(flow, run=result, collapse=["debate"])``.

    The options are those of ``Flow.to_dot``; the collapsed groups are checked now, so a wrong name
    fails here and not when the cell's output is shown.
    """
    from dagwright.compiler.ir import Graph
    from dagwright.compiler.passes import validate

    graph = subject if isinstance(subject, Graph) else subject.to_graph()
    found: list[Diagnostic] | None = None
    if diagnostics:
        found = validate(graph) if isinstance(subject, Graph) else subject.validate()
    names = (collapse,) if isinstance(collapse, str) else tuple(collapse)
    title = f"flow {graph.name!r}"
    drawing = Drawing(graph, title, names, tuple(found) if found is not None else None, run)
    drawing.view()  # fail now on an unknown group or a run that is not one
    return drawing


# --------------------------------------------------------------------------- runs

_RUN_COLUMNS = ("node", "status", "attempts", "time", "tokens", "cost")


def _run_row(record: NodeRecord) -> tuple[str, str, str, str, str, str]:
    """A record's cells under ``_RUN_COLUMNS``; what was not measured stays empty."""
    from dagwright.visualize.model import format_cost, format_duration

    duration, tokens, cost = record.duration_ms, record.tokens, record.cost
    return (
        record.node_id,
        record.status,
        str(record.attempts),
        format_duration(duration) if duration is not None else "",
        f"{tokens['total']:,}" if tokens is not None else "",
        format_cost(cost) if cost is not None else "",
    )


def _run_records(result: RunResult) -> list[NodeRecord]:
    """The records a run table lists: every node but the flow's inputs and outputs (which only pass values)."""
    return [r for r in result.nodes.values() if r.kind not in ("input", "output")]


def _run_head(result: RunResult, records: list[NodeRecord]) -> str:
    """``run 1a2b of flow 'research': success · 5 nodes: 4 done, 1 cached · 1.30 s · 2,468 tok · $0.0024``."""
    from dagwright.visualize.model import format_cost, format_duration, status_order

    counts: dict[str, int] = {}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    parts = ["success" if result.success else "FAILED"]
    nodes = f"{len(records)} node{'s' if len(records) != 1 else ''}"
    parts.append(nodes + (": " + ", ".join(f"{counts[s]} {s}" for s in status_order(counts)) if counts else ""))
    if result.ended_at > result.started_at:
        parts.append(format_duration(result.duration_ms))
    usage = result.usage
    if usage.calls or usage.total:
        parts.append(f"{usage.total:,} tok")
        parts.append(format_cost(usage.cost) + ("" if usage.cost_known else " (some prices unknown)"))
    return f"run {result.run_id} of flow {result.flow!r}: " + " · ".join(parts)


def _run_errors(result: RunResult) -> list[str]:
    """One line per failed node (the first line of its error), or the run's error when no node failed."""
    from dagwright.visualize._text import shorten

    lines = []
    for record in result.failed[:ERROR_LIMIT]:
        message = (record.error or "").strip().splitlines()
        kind = f"{record.error_type}: " if record.error_type else ""
        lines.append(f"{record.node_id} failed: {kind}{shorten(message[0] if message else '', 200)}")
    if len(result.failed) > ERROR_LIMIT:
        lines.append(f"... and {len(result.failed) - ERROR_LIMIT} more failed nodes")
    if not lines and result.error:
        lines.append(shorten(result.error.strip(), 300))
    return lines


def _run_text(head: str, rows: Sequence[tuple[str, ...]], more: int, errors: list[str], outputs: str) -> str:
    """The run table as aligned plain text."""
    table = [_RUN_COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_RUN_COLUMNS))]
    lines = [head]
    for row in table:
        # Names and statuses read left to right, numbers line up on the right.
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  " + "  ".join(cells).rstrip())
    if more:
        lines.append(f"  ... {more} more nodes")
    lines.extend(f"  {line}" for line in errors)
    lines.append(f"  outputs: {outputs}")
    return "\n".join(lines)


def _run_html(head: str, rows: Sequence[tuple[str, ...]], more: int, errors: list[str], outputs: str) -> str:
    """The run table as HTML, every cell escaped, each status on its overlay color."""
    from dagwright.visualize.model import STATUS_COLORS, UNKNOWN_STATUS

    esc = html.escape
    header = "".join(
        f'<th style="text-align:{"left" if i < 2 else "right"}">{esc(c)}</th>' for i, c in enumerate(_RUN_COLUMNS)
    )
    body = []
    for row in rows:
        fill = STATUS_COLORS.get(row[1], UNKNOWN_STATUS)[0]
        cells = [
            f"<td><code>{esc(row[0])}</code></td>",
            f'<td style="background:{fill}">{esc(row[1])}</td>',
            *(f'<td style="text-align:right">{esc(c)}</td>' for c in row[2:]),
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    if more:
        body.append(f'<tr><td colspan="6">… {more} more nodes</td></tr>')
    parts = [f"<div><b>{esc(head)}</b></div>", f"<table><thead><tr>{header}</tr></thead><tbody>"]
    parts.extend(body)
    parts.append("</tbody></table>")
    parts.extend(f'<div style="color:#c62828">{esc(line)}</div>' for line in errors)
    parts.append(f"<div>outputs: {esc(outputs)}</div>")
    return "\n".join(parts)


def run_bundle(result: RunResult, *, rich: bool = True) -> Bundle:
    """What a notebook shows for a :class:`~dagwright.execution.events.RunResult`: its node table
    (as text, and unless not ``rich`` as HTML).

    A result does not hold its graph, so it is not drawn here; ``draw(flow, run=result)`` draws it.
    """
    records = _run_records(result)
    rows = [_run_row(r) for r in records[:ROW_LIMIT]]
    more = max(len(records) - ROW_LIMIT, 0)
    head = _run_head(result, records)
    errors = _run_errors(result)
    outputs = ", ".join(result.outputs) or "none"
    bundle = {TEXT: _run_text(head, rows, more, errors, outputs)}
    if rich:
        bundle[HTML] = _run_html(head, rows, more, errors, outputs)
    return bundle


# --------------------------------------------------------------------------- agents


def _agent_flow(agent: Any) -> Flow:
    """The agent's one-node flow, the node named after the agent when its name is a valid node id."""
    from dagwright.flow import Flow

    name = str(getattr(agent, "name", "") or "agent")
    flow = Flow.from_agent(agent, name)
    if any(d.code == "DW002" for d in flow.validate()):  # an invalid id: "my agent!" cannot name a node
        flow = Flow.from_agent(agent, "agent")
    return flow


def _agent_facts(agent: Any) -> list[tuple[str, str]]:
    """(label, value) lines about an agent: its signature and model (never other config: it may hold keys)."""
    from dagwright.visualize.model import safe_fact

    signature = str(agent.signature)
    if getattr(agent, "free_form", False):
        signature = f"free-form ({signature})"
    facts = [("signature", signature)]
    model = safe_fact(getattr(getattr(agent, "config", None), "model", None))
    if model is not None:
        facts.append(("model", model))
    return facts


def agent_bundle(agent: Any, *, rich: bool = True) -> Bundle:
    """What a notebook shows for an agent: its name, signature and model, and (if ``rich``) its one-node flow."""
    from dagwright.visualize.model import build_view

    name = str(getattr(agent, "name", "") or type(agent).__name__)
    kind = type(agent).__name__
    facts = _agent_facts(agent)
    text = "\n".join([f"{kind} {name!r}", *(f"  {label}: {value}" for label, value in facts)])
    if not rich:
        return {TEXT: text}
    title = f"**{kind}** {_markdown_code(name)}  \n" + "  \n".join(
        f"{label}: {_markdown_code(value)}" for label, value in facts
    )
    title_html = f"<b>{html.escape(kind)}</b> <code>{html.escape(name)}</code>" + "".join(
        f"<br/>{html.escape(label)}: <code>{html.escape(value)}</code>" for label, value in facts
    )
    picture = _picture(build_view(_agent_flow(agent).to_graph()))
    return _bundle(picture, text, title, title_html)
