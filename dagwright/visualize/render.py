"""Writing drawings to files: DOT and Mermaid as text, SVG/PNG/PDF through Graphviz's ``dot``.

The format comes from the file's suffix unless given. Only the image formats
need the ``dot`` program; without it they fail with :class:`GraphvizNotFoundError`,
which says how to install Graphviz and that DOT and Mermaid output still work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from dagwright.compiler.ir import Graph
from dagwright.visualize.dot import view_to_dot
from dagwright.visualize.mermaid import view_to_mermaid
from dagwright.visualize.model import DiagnosticsArg, RunLike, build_view

__all__ = [
    "FORMATS",
    "IMAGE_FORMATS",
    "GraphvizNotFoundError",
    "RenderError",
    "dot_to_image",
    "format_for",
    "render",
    "render_bytes",
]

IMAGE_FORMATS = ("svg", "png", "pdf")
FORMATS = ("dot", "mermaid", *IMAGE_FORMATS)
SUFFIXES = {
    ".dot": "dot",
    ".gv": "dot",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".md": "mermaid",
    ".svg": "svg",
    ".png": "png",
    ".pdf": "pdf",
}
# PNGs are for people: twice Graphviz's default 72 dpi keeps small port text legible.
PNG_DPI = "144"


class RenderError(RuntimeError):
    """A drawing that could not be made or written (the message says which and why)."""


class GraphvizNotFoundError(RenderError):
    """The ``dot`` program is needed for SVG, PNG and PDF and is not on PATH."""

    def __init__(self, fmt: str) -> None:
        super().__init__(
            f"rendering {fmt.upper()} needs Graphviz's 'dot' program, which is not on PATH. "
            "Install Graphviz: 'sudo apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS), "
            "'choco install graphviz' (Windows), or see https://graphviz.org/download/. "
            "DOT and Mermaid output work without it: flow.to_dot(), flow.to_mermaid(), "
            "or 'dagwright render --format dot|mermaid' (a .dot or .mmd file)."
        )
        self.format = fmt


def format_for(path: str | os.PathLike[str] | None, fmt: str | None = None) -> str:
    """The output format: ``fmt`` when given, else from the suffix of ``path``."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown drawing format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt
    if path is None:
        return "dot"
    suffix = Path(path).suffix.lower()
    found = SUFFIXES.get(suffix)
    if found is None:
        known = ", ".join(SUFFIXES)
        raise ValueError(
            f"cannot tell the drawing format of {os.fspath(path)!r} from its suffix {suffix or '(none)'!r}; "
            f"use one of {known}, or pass the format ({', '.join(FORMATS)})"
        )
    return found


def dot_to_image(source: str, fmt: str) -> bytes:
    """Lay out DOT ``source`` with the ``dot`` program and return the ``fmt`` (svg, png, pdf) bytes."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"dot_to_image makes {', '.join(IMAGE_FORMATS)}, not {fmt!r}")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFoundError(fmt)
    args = [exe, f"-T{fmt}"]
    if fmt == "png":
        args.append(f"-Gdpi={PNG_DPI}")
    try:
        proc = subprocess.run(args, input=source.encode("utf-8"), capture_output=True, check=False)
    except OSError as exc:
        raise RenderError(f"cannot run {exe}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise RenderError(f"dot failed to render {fmt.upper()}: {message}")
    return proc.stdout


def render_bytes(
    graph: Graph,
    fmt: str,
    *,
    collapse: Sequence[str] = (),
    diagnostics: DiagnosticsArg = None,
    run: RunLike | None = None,
) -> bytes:
    """The drawing of ``graph`` in ``fmt`` (dot, mermaid, svg, png, pdf) as bytes."""
    fmt = format_for(None, fmt)
    view = build_view(graph, collapse=collapse, diagnostics=diagnostics, run=run)
    if fmt == "mermaid":
        return view_to_mermaid(view).encode("utf-8")
    source = view_to_dot(view)
    if fmt == "dot":
        return source.encode("utf-8")
    return dot_to_image(source, fmt)


def render(
    graph: Graph,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    collapse: Sequence[str] = (),
    diagnostics: DiagnosticsArg = None,
    run: RunLike | None = None,
) -> Path:
    """Draw ``graph`` into ``path`` (format from the suffix unless ``format`` is given); returns the path.

    A ``.md`` file gets the Mermaid text inside a ```` ```mermaid ```` fence.
    """
    target = Path(path)
    fmt = format_for(target, format)
    data = render_bytes(graph, fmt, collapse=collapse, diagnostics=diagnostics, run=run)
    if fmt == "mermaid" and target.suffix.lower() == ".md":
        data = b"```mermaid\n" + data + b"```\n"
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise RenderError(f"cannot write {os.fspath(target)}: {exc.strerror or exc}") from None
    return target
