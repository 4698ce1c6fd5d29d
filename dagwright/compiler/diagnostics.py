"""Diagnostics: what the validation passes report, and the stable codes they use.

Every code is listed in :data:`CODES` with its name, default severity and a
one-line summary; the README's table is checked against this list by the tests,
so a code cannot go undocumented. Codes never change meaning once released.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dagwright.compiler.ir import Edge, SourceLocation

__all__ = ["CODES", "CodeInfo", "CompileError", "Diagnostic", "Severity", "count", "has_errors"]

Severity = Literal["error", "warning", "info"]
_RANK = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """The documentation of one diagnostic code."""

    code: str
    name: str
    severity: Severity
    summary: str


def _codes(*rows: tuple[str, str, Severity, str]) -> dict[str, CodeInfo]:
    return {code: CodeInfo(code, name, sev, summary) for code, name, sev, summary in rows}


CODES: dict[str, CodeInfo] = _codes(
    ("DW001", "duplicate-id", "error", "Two nodes share one id (ids are checkpoint keys and Kailash ids)."),
    (
        "DW002",
        "invalid-id",
        "error",
        "A node id is not ASCII letters, digits, _ and - in dot-separated segments, each starting with a letter, "
        "digit or _.",
    ),
    ("DW003", "unknown-node", "error", "A connection or flow output names a node that does not exist."),
    ("DW004", "unknown-output", "error", "A connection reads an output port the node does not have."),
    ("DW005", "unknown-input", "error", "A connection writes an input port the node does not have."),
    ("DW006", "cycle", "error", "The connections form a cycle; the full path is given."),
    ("DW007", "type-mismatch", "error", "An output's type can never be accepted by the input it is connected to."),
    (
        "DW008",
        "optional-into-required",
        "warning",
        "A value that may be None flows into an input that does not accept None.",
    ),
    ("DW009", "missing-input", "error", "A required input has no connection, no default and no flow input."),
    ("DW010", "multiple-edges", "error", "Several connections write one input that is not a collect port."),
    ("DW011", "unreachable-node", "warning", "No flow input or source node leads to this node."),
    ("DW012", "dead-end", "warning", "Nothing uses any output of this node; its work is thrown away."),
    ("DW013", "unused-output", "info", "One output of a node is never used while others are."),
    (
        "DW014",
        "invalid-port",
        "error",
        "A port is declared wrongly: a duplicate name, a collect port not typed list[T], or a default (of an input"
        " or a flow input) that does not fit its type.",
    ),
    ("DW015", "no-matching-ports", "error", "A node-to-node connection found no output and input of the same name."),
    ("DW016", "unused-flow-input", "warning", "A declared flow input feeds no node."),
    ("DW017", "empty-flow", "warning", "The flow has no nodes."),
    ("DW018", "ambiguous-flow-output", "error", "A flow output names a node with several outputs but no port."),
    (
        "DW019",
        "import-failed",
        "error",
        "Importing a checked file raised (a syntax error, an ImportError, any exception); the other files are"
        " still checked.",
    ),
    (
        "DW020",
        "unbounded-into-bounded",
        "warning",
        "A value without bounds (or with wider ones) flows into an input that has bounds: a number's "
        "(float[0, 1]), a text's length (str[1, 280]) or a list's length (list[str][1, None]).",
    ),
    ("DW200", "pattern-config", "error", "A coordination pattern is configured wrongly (DW200-DW299 are patterns)."),
    (
        "DW201",
        "step-input-unproduced",
        "error",
        "A pipeline step needs an input that no earlier step or flow input gives.",
    ),
    (
        "DW202",
        "bad-rounds",
        "error",
        "A debate or revision loop is given fewer than one round (or negative revisions).",
    ),
    (
        "DW203",
        "too-few-agents",
        "error",
        "A pattern got fewer agents than it needs (a debate: two debaters and a judge).",
    ),
    (
        "DW204",
        "incompatible-agent",
        "error",
        "An agent's signature lacks what its role needs (topic, transcript, decision, task).",
    ),
    ("DW205", "duplicate-agent", "error", "Two agents of one pattern share a name (node ids derive from names)."),
    (
        "DW206",
        "bad-option",
        "error",
        "A pattern option is invalid (vote rule, threshold, weights, allocation, map field).",
    ),
    ("DW207", "no-common-outputs", "error", "The destinations of a router share no output to return."),
    (
        "DW301",
        "untyped-tool",
        "error",
        "A tool's parameter or return value has no type hint (DW300-DW399 are tools).",
    ),
    ("DW302", "tool-without-schema", "error", "A tool's parameter type has no JSON schema to tell the model."),
    ("DW303", "duplicate-tool", "error", "Two tools of one agent share a name (the model calls tools by name)."),
    (
        "DW304",
        "invalid-tool-name",
        "error",
        "A tool name an OpenAI-compatible server refuses (1-64 letters, digits, _ or -).",
    ),
    (
        "DW305",
        "mcp-unreachable",
        "error",
        "An MCP server did not answer when listing its tools (checked with dagwright check --connect).",
    ),
    (
        "DW306",
        "mcp-tool-missing",
        "error",
        "An MCP server lacks a tool the agent names (checked with dagwright check --connect).",
    ),
    (
        "DW307",
        "unbounded-tool-loop",
        "warning",
        "An agent calls tools with max_tool_steps=None: nothing bounds its rounds of tool calls.",
    ),
)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a graph.

    ``node``/``port`` locate it; ``related`` names the other nodes involved (the
    other end of an edge, the rest of a cycle); ``location`` is where the user's
    code added the node or made the connection, when known.
    """

    code: str
    severity: Severity
    message: str
    node: str | None = None
    port: str | None = None
    hint: str = ""
    related: tuple[str, ...] = ()
    edge: Edge | None = None
    location: SourceLocation | None = None

    @property
    def name(self) -> str:
        """The code's short name, e.g. ``type-mismatch``."""
        info = CODES.get(self.code)
        return info.name if info else "custom"

    @property
    def where(self) -> str:
        """``node.port``, ``node``, or the flow."""
        if self.node is None:
            return "<flow>"
        return f"{self.node}.{self.port}" if self.port else self.node

    def __str__(self) -> str:
        text = f"{self.severity} {self.code} [{self.name}] {self.where}: {self.message}"
        if self.location is not None:
            text += f" ({self.location})"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
            "node": self.node,
            "port": self.port,
        }
        if self.hint:
            out["hint"] = self.hint
        if self.related:
            out["related"] = list(self.related)
        if self.edge is not None:
            out["edge"] = self.edge.to_dict(locations=False)
        if self.location is not None:
            out["location"] = {"file": self.location.file, "line": self.location.line}
        return out


def make(
    code: str,
    message: str,
    *,
    node: str | None = None,
    port: str | None = None,
    hint: str = "",
    related: Iterable[str] = (),
    edge: Edge | None = None,
    location: SourceLocation | None = None,
    severity: Severity | None = None,
) -> Diagnostic:
    """A diagnostic with the code's default severity."""
    return Diagnostic(
        code,
        severity or CODES[code].severity,
        message,
        node,
        port,
        hint,
        tuple(related),
        edge,
        location,
    )


def sort_key(d: Diagnostic) -> tuple[int, str]:
    """Errors first, then warnings, then info; stable within a severity."""
    return (_RANK[d.severity], d.code)


def has_errors(diagnostics: Iterable[Diagnostic], *, strict: bool = False) -> bool:
    """True when any diagnostic is an error (or, with ``strict``, a warning)."""
    limit = 1 if strict else 0
    return any(_RANK[d.severity] <= limit for d in diagnostics)


def count(diagnostics: Iterable[Diagnostic]) -> dict[str, int]:
    """How many errors, warnings and infos."""
    out = {"error": 0, "warning": 0, "info": 0}
    for d in diagnostics:
        out[d.severity] += 1
    return out


class CompileError(ValueError):
    """A flow that does not compile. ``diagnostics`` holds every problem found, not just the first."""

    def __init__(self, flow_name: str, diagnostics: Sequence[Diagnostic]) -> None:
        self.flow_name = flow_name
        self.diagnostics = list(diagnostics)
        self.errors = [d for d in self.diagnostics if d.severity == "error"]
        n = len(self.errors)
        lines = [f"flow {flow_name!r} does not compile: {n} error{'s' if n != 1 else ''}"]
        lines.extend(f"  {str(d).replace(chr(10), chr(10) + '  ')}" for d in self.diagnostics)
        super().__init__("\n".join(lines))
