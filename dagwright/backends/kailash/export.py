"""Exporting a lowered flow: Kailash's own YAML, or a standalone Python script that rebuilds and runs it.

Both take a :class:`~dagwright.backends.kailash.lowering.Lowering`, a Flow (which lowers
itself) or a graph loaded from JSON, which is checked first. Exporting never runs or
imports the flow's code: function nodes are named by reference.
"""

from __future__ import annotations

import functools
import json
import os
import pprint
import sys
from collections.abc import Mapping
from typing import Any

from dagwright._version import __version__
from dagwright.backends.kailash.config import CONFIG_KEY
from dagwright.backends.kailash.lowering import Lowering, lower_graph
from dagwright.compiler.ir import Graph
from dagwright.compiler.signature import MISSING
from dagwright.nodes import EXECUTORS

__all__ = ["to_kailash_script", "to_kailash_yaml"]


def _lowering_of(target: object) -> Lowering:
    if isinstance(target, Lowering):
        return target
    if isinstance(target, Graph):
        return lower_graph(target)
    if callable(getattr(target, "_kailash_lowering", None)):  # a Flow: it lowers itself
        lowering: Lowering = target._kailash_lowering()  # type: ignore[attr-defined]
        return lowering
    raise TypeError(f"expected a Flow, a Graph or a Lowering, got {type(target).__name__}")


def to_kailash_yaml(target: object) -> str:
    """The lowered workflow as YAML, written by Kailash's own ``Workflow.to_yaml()``.

    The workflow id is derived from the graph's content hash, so the same flow exports
    the same nodes and connections every time (Kailash adds a ``created_at`` stamp).
    """
    lowering = _lowering_of(target)
    builder = lowering.builder(bind=False)
    builder.set_metadata(dagwright_graph_hash=lowering.graph.content_hash)
    workflow = builder.build(f"{lowering.name}-{lowering.graph.content_hash[:12]}")
    text: str = workflow.to_yaml()
    return text


@functools.lru_cache(maxsize=1)
def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dagwright.backends.kailash", "templates"),
        autoescape=False,  # Python source, not HTML: values go in through the pyrepr filter
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pyrepr"] = repr
    return env


def to_kailash_script(target: object, *, script_path: str | None = None) -> str:
    """A standalone Python script that rebuilds the lowered ``WorkflowBuilder`` and runs it on ``LocalRuntime``.

    Function nodes import their functions by reference (``module:qualname``); agents are rebuilt
    from their signature and settings (API keys come from the environment, as the IR never holds
    them). ``script_path`` (where the script will be written) makes the module search paths it adds
    relative to the script. Raises ValueError for a function a script cannot import.
    """
    lowering = _lowering_of(target)
    imports, binds, paths = _function_imports(lowering)
    # Kinds registered outside dagwright.nodes (which the script imports anyway) need their module imported.
    kind_modules = sorted(
        {
            EXECUTORS[spec.kind].__module__
            for spec in lowering.nodes
            if spec.kind in EXECUTORS and not EXECUTORS[spec.kind].__module__.startswith("dagwright.nodes")
        }
    )
    base = os.path.dirname(os.path.abspath(script_path)) if script_path else None
    search = [
        {"relative": base is not None, "path": os.path.relpath(p, base) if base is not None else p} for p in paths
    ]
    nodes = [
        {
            "id": spec.id,
            "type": spec.type,
            "kind": spec.kind,
            "config": _literal(spec.config, indent=8),
            "bind": binds.get(spec.id),
        }
        for spec in lowering.nodes
    ]
    text: str = (
        _templates()
        .get_template("kailash_script.py.j2")
        .render(
            name=lowering.name,
            description=lowering.graph.metadata.get("description", ""),
            graph_hash=lowering.graph.content_hash,
            version=__version__,
            imports=sorted(imports.items()),
            kind_modules=kind_modules,
            search=search,
            nodes=nodes,
            connections=lowering.connections,
            flow_inputs=_literal({k: [tuple(t) for t in v] for k, v in lowering.inputs.items()}, indent=4),
            input_defaults=_literal(lowering.input_defaults, indent=4),
            flow_outputs=_literal({k: tuple(v) for k, v in lowering.results.items()}, indent=4),
            workflow_inputs=list(lowering.workflow_inputs().items()),
            example=json.dumps({name: "..." for name in lowering.inputs}),
        )
    )
    return text


def _function_imports(
    lowering: Lowering,
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, str], list[str]]:
    """What the script imports for the function nodes: names by module, the name bound to each node, and the
    directories to put on ``sys.path``. Raises ValueError naming every function a script cannot import."""
    imports: dict[str, list[tuple[str, str]]] = {}
    binds: dict[str, str] = {}
    problems: list[str] = []
    paths: list[str] = []
    for spec in lowering.nodes:
        if spec.kind != "function":
            continue
        ref = spec.config[CONFIG_KEY]["node"].get("config", {}).get("function", "")
        module, _, qualname = str(ref).partition(":")
        if not module or not qualname or "<" in qualname or "." in qualname or not qualname.isidentifier():
            problems.append(
                f"node {spec.id!r}: function {ref!r} cannot be imported by a script; define it at module level"
            )
            continue
        if module.startswith("_dagwright_target_") or module == "__main__":
            problems.append(
                f"node {spec.id!r}: function {ref!r} lives in a module a script cannot import by name; "
                "give its file a name that is not taken by another module"
            )
            continue
        alias = _alias(qualname, spec.id, binds)
        imports.setdefault(module, []).append((qualname, alias))
        binds[spec.id] = alias
        root = _module_root(module)
        if root is not None and root not in paths:
            paths.append(root)
    if problems:
        raise ValueError(f"flow {lowering.name!r} cannot be exported as a script:\n  " + "\n  ".join(problems))
    return imports, binds, paths


def _alias(qualname: str, node_id: str, taken: Mapping[str, str]) -> str:
    used = set(taken.values())
    if qualname not in used:
        return qualname
    n = 2
    while f"{qualname}_{n}" in used:
        n += 1
    return f"{qualname}_{n}"


def _module_root(module: str) -> str | None:
    """The directory to put on ``sys.path`` for ``import module`` to work, unless it is a standard location."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return None  # not imported here: exporting never runs code, so the script relies on its sys.path
    filename = getattr(loaded, "__file__", None)
    if not isinstance(filename, str) or not filename:
        return None
    root = os.path.dirname(os.path.abspath(filename))
    for _ in range(module.count(".") + (1 if os.path.basename(filename).startswith("__init__.") else 0)):
        root = os.path.dirname(root)
    if any(part in root for part in ("site-packages", "dist-packages")) or root == os.path.dirname(os.__file__):
        return None
    return root


def _literal(value: Any, *, indent: int) -> str:
    """A Python literal for JSON-like data, indented to sit inside generated code."""
    text = pprint.pformat(_plain(value), width=110 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is MISSING:
        return None
    return value
