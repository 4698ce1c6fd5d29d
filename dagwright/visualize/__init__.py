"""Views of a graph: Graphviz (DOT, SVG, PNG, PDF) and Mermaid, with diagnostics or a run drawn on them.

``to_dot``, ``to_mermaid`` and ``render`` take a :class:`~dagwright.compiler.ir.Graph`
(from a Flow or loaded from JSON); ``Flow.to_dot()``, ``Flow.to_mermaid()`` and
``Flow.render()`` call them. Importing :mod:`dagwright` does not import this
package (nor the ``graphviz`` package): a flow pulls it in when drawn.
"""

from dagwright.visualize.dot import to_dot
from dagwright.visualize.mermaid import to_mermaid
from dagwright.visualize.model import NodeRecordLike, RunLike, View, build_view
from dagwright.visualize.render import (
    FORMATS,
    GraphvizNotFoundError,
    RenderError,
    format_for,
    render,
    render_bytes,
)

__all__ = [
    "FORMATS",
    "GraphvizNotFoundError",
    "NodeRecordLike",
    "RenderError",
    "RunLike",
    "View",
    "build_view",
    "format_for",
    "render",
    "render_bytes",
    "to_dot",
    "to_mermaid",
]
