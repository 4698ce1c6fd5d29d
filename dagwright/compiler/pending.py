"""Nodes that ``add_function`` has declared but not made yet.

A large flow is built by a loop that adds one function, or a few, from the same lines, many thousands of times.
Each such node differs from the others made on its line only by its id, so the builder records just the id, and
the *kind* of node it is: the fields of :class:`~dagwright.compiler.ir.Node` after the id (kind, ports, config,
group, location) and what it runs, shared by every node of that kind. No object per node then, so the garbage
collector has nothing more to walk as the flow grows, and the nodes are made together, column by column
(:func:`~dagwright.compiler.ir.make_nodes`), when the declarations are next read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import CodeType

from dagwright.compiler.ir import Node, NodeFields, make_nodes, run_lengths, spread

__all__ = ["MAX_KINDS", "SMALL", "PendingNodes", "Site"]

Site = tuple[CodeType, object, str, tuple[str, ...], tuple[str, ...], int]
"""Where ``add_function`` was called (the caller's code; the instruction is the key it is kept under) with what
(function, output name, group, the internal paths in force), and the kind of node that made."""

MAX_KINDS = 1024
"""Kinds kept before the pending nodes are made anyway (a loop adding a new function each time makes a kind per
node)."""
SMALL = 8
"""Below this many pending nodes, each is made on its own (a flow read between two declarations)."""


@dataclass(slots=True)
class PendingNodes:
    """The ids declared, in order, each under a kind: ``runs`` holds ``(start, kind)`` where the kind changes."""

    ids: list[str] = field(default_factory=list)
    runs: list[tuple[int, int]] = field(default_factory=list)
    kinds: list[tuple[NodeFields, object]] = field(default_factory=list)
    # The call sites that made a kind, by the caller's instruction: a node declared from one, as it was, is that kind.
    sites: dict[int, Site] = field(default_factory=dict)

    def add(self, node_id: str, fields: NodeFields, binding: object) -> int:
        """Declare a node of a new kind; returns the kind."""
        kind = len(self.kinds)
        self.kinds.append((fields, binding))
        self.runs.append((len(self.ids), kind))
        self.ids.append(node_id)
        return kind

    def take(self) -> tuple[list[str], list[Node], Iterable[object]]:
        """The pending ids, their nodes, and what each runs, as if each node had been made on its own; nothing is
        pending afterwards."""
        ids, runs, kinds = self.ids, self.runs, self.kinds
        count = len(ids)
        run_kinds = [kind for _, kind in runs]
        lengths = run_lengths([start for start, _ in runs], count)
        if count < SMALL:
            of_each = list(spread(run_kinds, lengths))
            nodes = [Node(node_id, *kinds[kind][0]) for node_id, kind in zip(ids, of_each, strict=True)]
            bindings: Iterable[object] = [kinds[kind][1] for kind in of_each]
        elif len(runs) * SMALL > count:  # short runs (a loop adding several functions): a field's value per node
            of_each = list(spread(run_kinds, lengths))
            columns = list(zip(*(fields for fields, _ in kinds), strict=True))
            nodes = make_nodes(ids, [map(column.__getitem__, of_each) for column in columns])
            bindings = [kinds[kind][1] for kind in of_each]
        else:  # long runs: a field's value per run, repeated
            columns = list(zip(*(kinds[kind][0] for kind in run_kinds), strict=True))
            nodes = make_nodes(ids, [spread(column, lengths) for column in columns])
            bindings = spread([kinds[kind][1] for kind in run_kinds], lengths)
        taken = ids.copy()
        self.clear()
        return taken, nodes, bindings

    def clear(self) -> None:
        """Forget every pending node, kind and call site."""
        self.ids.clear()
        self.runs.clear()
        self.kinds.clear()
        self.sites.clear()
