"""Tools in the IR: what an agent node may call, as data, and the checks on it.

An agent node that has tools carries them in its config::

    "tools": [{"name": "lookup", "description": "...", "parameters": {JSON schema},
               "origin": {"kind": "python", "function": "pkg.mod:lookup"}}, ...],
    "mcp_servers": [{"name": "files", "transport": "stdio", "command": "python server.py",
                     "tools": ["read_file"]}],
    "max_tool_steps": 8

Everything here is plain JSON and secret-free: an MCP server's environment and HTTP headers stay in
the process, and its command and URL are shown without credentials. A tool that cannot be described
keeps what is wrong with it (``untyped``: parameters without a type hint, ``return`` for a missing
return hint; ``unschematized``: parameter -> why its type has no JSON schema), so the checks below
work on a graph loaded from JSON as well as on a fresh one.

:func:`check_tools` is the validation pass (DW301-DW304, DW307); DW305 and DW306 need a live server
and come from ``dagwright check --connect`` (:mod:`dagwright.llm.mcp`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from dagwright.compiler import diagnostics as dg
from dagwright.compiler.diagnostics import Diagnostic
from dagwright.compiler.ir import Graph, Node, thaw_json

__all__ = [
    "DEFAULT_MAX_TOOL_STEPS",
    "TOOL_NAME",
    "TOOL_NAME_RULE",
    "ToolSpec",
    "check_connected",
    "check_tools",
    "describe_sources",
    "node_tools",
    "tool_config",
]

DEFAULT_MAX_TOOL_STEPS = 8
"""Rounds of tool calls an agent makes at most before it must answer, unless its config says otherwise."""

TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What OpenAI-compatible servers accept as a function name (others reject the whole request)."""
TOOL_NAME_RULE = "1 to 64 ASCII letters, digits, _ or -"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool as the IR lists it: its name, description, JSON schema of its arguments and origin."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    origin: Mapping[str, Any]
    untyped: tuple[str, ...] = ()
    unschematized: tuple[tuple[str, str], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": thaw_json(self.parameters),
            "origin": thaw_json(self.origin),
        }
        if self.untyped:
            data["untyped"] = list(self.untyped)
        if self.unschematized:
            data["unschematized"] = {name: why for name, why in self.unschematized}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolSpec:
        unschematized = data.get("unschematized") or {}
        return cls(
            str(data.get("name", "")),
            str(data.get("description", "")),
            thaw_json(data.get("parameters") or {}),
            thaw_json(data.get("origin") or {}),
            tuple(str(u) for u in data.get("untyped") or ()),
            tuple((str(k), str(v)) for k, v in dict(unschematized).items()),
        )

    @property
    def where(self) -> str:
        """Where the tool comes from, in words: ``function pkg.mod:lookup``, ``MCP server 'files'``."""
        origin = self.origin
        if origin.get("kind") == "mcp":
            return f"MCP server {origin.get('server')!r}"
        return f"function {origin.get('function', '?')}"


def tool_config(
    specs: Iterable[ToolSpec], servers: Iterable[Mapping[str, Any]], max_tool_steps: int | None
) -> dict[str, Any]:
    """The part of an agent node's config that lists its tools (empty for an agent without any)."""
    tools = [spec.to_json() for spec in specs]
    listed = [dict(server) for server in servers]
    if not tools and not listed:
        return {}
    config: dict[str, Any] = {"max_tool_steps": max_tool_steps}
    if tools:
        config["tools"] = tools
    if listed:
        config["mcp_servers"] = listed
    return config


def describe_sources(sources: Iterable[object]) -> tuple[list[ToolSpec], list[dict[str, Any]]]:
    """The IR's view of an agent's tool sources: the specs of its tools (anything with a ``spec``) and the
    entries of its MCP servers (anything with ``ir_entry()``, whose tools are known once it is listed)."""
    specs: list[ToolSpec] = []
    servers: list[dict[str, Any]] = []
    for source in sources:
        spec = getattr(source, "spec", None)
        if isinstance(spec, ToolSpec):
            specs.append(spec)
            continue
        entry = getattr(source, "ir_entry", None)
        if callable(entry):
            data = dict(entry())
            specs.extend(ToolSpec.from_json(t) for t in data.pop("listed", None) or ())
            servers.append(data)
    return specs, servers


def node_tools(node: Node) -> list[ToolSpec]:
    """The tools an agent node lists (none for other nodes)."""
    return [ToolSpec.from_json(t) for t in node.config.get("tools") or ()]


def check_tools(graph: Graph) -> list[Diagnostic]:
    """DW301 untyped tools, DW302 tools without a schema, DW303 duplicate names, DW304 bad names, DW307 no bound."""
    out: list[Diagnostic] = []
    if "agent" not in graph._index.kind_set:
        return out
    for node in compress(graph.nodes, map("agent".__eq__, graph._index.kinds)):
        if "tools" not in node.config and "mcp_servers" not in node.config:
            continue
        specs = node_tools(node)
        for spec in specs:
            out.extend(_spec_problems(node, spec))
        out.extend(_name_problems(node, specs))
        if node.config.get("max_tool_steps", DEFAULT_MAX_TOOL_STEPS) is None:
            out.append(
                dg.make(
                    "DW307",
                    f"agent {node.id!r} calls tools with no bound on its tool rounds (max_tool_steps=None): "
                    "a model that keeps asking for tools keeps this flow running forever",
                    node=node.id,
                    hint=f"set max_tool_steps in its config (the default is {DEFAULT_MAX_TOOL_STEPS})",
                    location=node.location,
                )
            )
    return out


def _what(node: Node, spec: ToolSpec) -> str:
    return f"tool {spec.name!r} of agent {node.id!r} ({spec.where})"


def _name_problems(node: Node, specs: list[ToolSpec], only: Iterable[ToolSpec] | None = None) -> list[Diagnostic]:
    """DW304 for names a server refuses, DW303 for names given twice; with ``only``, just those involving them."""
    subject = list(specs if only is None else only)
    out: list[Diagnostic] = []
    for spec in subject:
        if not TOOL_NAME.fullmatch(spec.name):
            out.append(
                dg.make(
                    "DW304",
                    f"{_what(node, spec)}: the name is not one an OpenAI-compatible server accepts ({TOOL_NAME_RULE})",
                    node=node.id,
                    hint="name it with Tool(fn, name='...')",
                    location=node.location,
                )
            )
    counts = Counter(spec.name for spec in specs)
    for name in dict.fromkeys(spec.name for spec in subject):
        n = counts[name]
        if n > 1:
            origins = ", ".join(spec.where for spec in specs if spec.name == name)
            out.append(
                dg.make(
                    "DW303",
                    f"agent {node.id!r} has {n} tools named {name!r} ({origins}); the model calls tools by name",
                    node=node.id,
                    hint="rename one of them (Tool(fn, name=...)) or drop it",
                    location=node.location,
                )
            )
    return out


def _spec_problems(node: Node, spec: ToolSpec) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    what = _what(node, spec)
    if spec.untyped:
        params = [f"parameter {p!r}" for p in spec.untyped if p != "return"]
        if "return" in spec.untyped:
            params.append("its return value")
        out.append(
            dg.make(
                "DW301",
                f"{what}: {_joined(params)} {'has' if len(params) == 1 else 'have'} no type hint, so the model "
                "cannot be told what to pass or what comes back",
                node=node.id,
                hint="annotate every parameter and the return type",
                location=node.location,
            )
        )
    if spec.unschematized:
        why = "; ".join(f"parameter {param!r}: {reason}" for param, reason in spec.unschematized)
        out.append(
            dg.make(
                "DW302",
                f"{what}: a parameter type has no JSON schema to tell the model ({why})",
                node=node.id,
                hint="use JSON types (str, int, float, bool, list, dict), Literal, enums or pydantic models",
                location=node.location,
            )
        )
    return out


def _joined(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def check_connected(node: Node, listings: Mapping[str, list[ToolSpec] | str]) -> list[Diagnostic]:
    """What a live listing of an agent's MCP servers shows: DW305 for a server that did not answer (its
    listing is the error text), DW306 for a named tool it lacks, DW303 / DW304 for its tools' names."""
    out: list[Diagnostic] = []
    offered = [spec for spec in node_tools(node) if spec.origin.get("kind") != "mcp"]
    # Tools listed ahead of time are in node_tools already; the live listing replaces them.
    for entry in node.config.get("mcp_servers") or ():
        name = str(entry.get("name"))
        listing = listings.get(name)
        shown = entry.get("command") or entry.get("url")
        if listing is None or isinstance(listing, str):
            out.append(
                dg.make(
                    "DW305",
                    f"agent {node.id!r}: MCP server {name!r} ({shown}) did not list its tools: "
                    f"{listing or 'not asked'}",
                    node=node.id,
                    hint="start the server (or fix its command / URL) and check again",
                    location=node.location,
                )
            )
            continue
        names = {spec.name for spec in listing}
        for wanted in entry.get("tools") or ():
            if wanted not in names:
                out.append(
                    dg.make(
                        "DW306",
                        f"agent {node.id!r}: MCP server {name!r} has no tool {wanted!r}; "
                        f"it has: {', '.join(sorted(names)) or 'none'}",
                        node=node.id,
                        hint="fix the name in tools=[...] or update the server",
                        location=node.location,
                    )
                )
        expected = entry.get("tools")
        offered.extend(spec for spec in listing if expected is None or spec.name in expected)
    remote = [spec for spec in offered if spec.origin.get("kind") == "mcp"]
    out.extend(_name_problems(node, offered, only=remote))
    return out
