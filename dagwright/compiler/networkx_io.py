"""A Graph as a networkx ``MultiDiGraph`` and back, for analysing workflows with networkx's algorithms.

Each IR node is a networkx node keyed by its id, with the IR's fields as attributes
(``kind``, ``inputs`` and ``outputs`` as port dicts with their types, ``config``,
``group``, ``location``); each edge is keyed by its position among the graph's edges
(the order a collect port receives its values in) and carries ``source_port``,
``target_port`` and ``location``. The graph's ``name``, ``schema_version`` and
``metadata`` are graph attributes. A dangling edge of an unchecked graph adds a node
marked ``missing=True``, which ``from_networkx`` leaves out again, so every graph
with unique node ids round-trips: ``Graph.from_networkx(g.to_networkx())`` has ``g``'s JSON.
"""

from __future__ import annotations

import collections
from typing import Any

__all__ = ["from_networkx", "to_networkx"]

_NODE_FIELDS = ("kind", "inputs", "outputs", "config", "group", "location")


# Both functions work on a graph's dict form (``Graph.to_dict()`` / ``Graph.from_dict()``), which keeps this
# module below the IR: ``Graph.to_networkx`` and ``Graph.from_networkx`` call them.


def to_networkx(data: dict[str, Any]) -> Any:
    """A graph's dict form as a ``networkx.MultiDiGraph`` (see the module docstring); node ids must be unique."""
    import networkx as nx  # type: ignore[import-untyped]

    counts = collections.Counter(n["id"] for n in data["nodes"])
    duplicates = sorted(node_id for node_id, n in counts.items() if n > 1)
    if duplicates:
        raise ValueError(
            f"graph {data['name']!r} has duplicate node ids ({', '.join(map(repr, duplicates))}); a networkx graph "
            "keys nodes by id (run the validation passes: DW001)"
        )
    out = nx.MultiDiGraph(name=data["name"], schema_version=data["schema_version"], metadata=data.get("metadata", {}))
    for node in data["nodes"]:
        out.add_node(node["id"], **{k: v for k, v in node.items() if k != "id"})
    for position, edge in enumerate(data["edges"]):
        for end in (edge["source"], edge["target"]):
            if end not in out:
                out.add_node(end, missing=True)
        attributes = {k: v for k, v in edge.items() if k not in ("source", "target")}
        out.add_edge(edge["source"], edge["target"], key=position, **attributes)
    return out


def from_networkx(nx_graph: Any, schema_version: int) -> dict[str, Any]:
    """The dict form of the graph a ``MultiDiGraph`` made by :func:`to_networkx` describes (edited or not); a
    node that does not describe one raises ValueError naming it (``Graph.from_dict`` checks the rest)."""
    if not hasattr(nx_graph, "nodes") or not hasattr(nx_graph, "edges") or not nx_graph.is_directed():
        raise ValueError(f"expected a networkx MultiDiGraph, got {type(nx_graph).__name__}")
    attributes = dict(nx_graph.graph)
    nodes = []
    for node_id, fields in nx_graph.nodes(data=True):
        if fields.get("missing"):
            continue
        unknown = sorted(set(fields) - set(_NODE_FIELDS))
        if unknown:
            raise ValueError(f"node {node_id!r}: unknown attribute(s) {', '.join(map(repr, unknown))}")
        nodes.append({"id": node_id, **fields})
    edges = []
    multi = nx_graph.is_multigraph()
    rows = nx_graph.edges(keys=True, data=True) if multi else ((s, t, None, d) for s, t, d in nx_graph.edges(data=True))
    for order, (source, target, key, fields) in enumerate(rows):
        position = key if isinstance(key, int) and not isinstance(key, bool) else order
        edges.append((position, order, {"source": source, "target": target, **fields}))
    edges.sort(key=lambda item: (item[0], item[1]))
    data = {
        "schema_version": attributes.get("schema_version", schema_version),
        "name": attributes.get("name", ""),
        "nodes": nodes,
        "edges": [edge for _, _, edge in edges],
    }
    if attributes.get("metadata"):
        data["metadata"] = attributes["metadata"]
    return data
