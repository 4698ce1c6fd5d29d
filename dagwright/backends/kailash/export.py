"""Exporting a lowered flow: Kailash's own YAML, or a standalone Python script that rebuilds and runs it.

Both take a :class:`~dagwright.backends.kailash.lowering.Lowering`, a Flow (which lowers
itself) or a graph loaded from JSON, which is checked first. Exporting never runs or
imports the flow's code: function nodes are named by reference.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import keyword
import math
import os
import pprint
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from dagwright._version import __version__
from dagwright.backends.kailash.config import CONFIG_KEY, qualified_type
from dagwright.backends.kailash.lowering import GENERIC_TYPE, KIND_TYPES, Lowering, lower_graph
from dagwright.compiler.ir import Graph, Node
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


def _tools_held(node: Node) -> list[str]:
    """An agent's tools, which an export cannot carry: Python functions, and MCP servers' env and headers."""
    names = [str(t.get("name")) for t in node.config.get("tools") or ()]
    names += [f"MCP server {s.get('name')!r}" for s in node.config.get("mcp_servers") or ()]
    return [f"tools ({', '.join(names)})"] if names else []


def _exportable(target: object) -> Lowering:
    """The lowering of ``target``; ValueError naming every agent that only this process can run."""
    lowering = _lowering_of(target)
    held = [
        (n.id, [*n.config.get("in_process", ()), *_tools_held(n)])
        for n in lowering.graph.nodes
        if n.kind == "agent" and ("in_process" in n.config or _tools_held(n))
    ]
    if held:
        which = "; ".join(f"agent node {node_id!r} has {', '.join(map(str, what))}" for node_id, what in held)
        raise ValueError(
            f"flow {lowering.name!r} cannot be exported to run elsewhere: {which}, which only this Python process "
            "holds, and an export would run the agent without it; run it in this process (flow.run_kailash(), "
            "flow.build() with LocalRuntime), or give an access policy a name (register_access_policy)"
        )
    return lowering


_YAML_HEADER = """\
# A dagwright flow lowered to Kailash. Its node types (dagwright.backends.kailash.nodes.DagwrightAgentNode,
# ...DagwrightFunctionNode, ...DagwrightNode) are registered by `import dagwright.backends.kailash.nodes`:
# import it before Workflow.from_dict(yaml.safe_load(...)) or WorkflowNode(workflow_path=...) reads this
# file (Kailash resolves node types only through its registry; it imports nothing for them).
"""


def to_kailash_yaml(target: object) -> str:
    """The lowered workflow as safe YAML: Kailash's own ``Workflow.to_dict()``, written with ``yaml.safe_dump``.

    ``yaml.safe_load`` reads it back, so ``Workflow.from_dict`` and ``WorkflowNode(workflow_path=...)``
    load it (Kailash's ``to_yaml()`` writes node positions as ``!!python/tuple``, which they refuse).
    The workflow id is derived from the graph's content hash, so the same flow exports the same
    nodes and connections every time (Kailash adds a ``created_at`` stamp).
    An agent with a callable access policy or a custom strategy cannot be exported (ValueError).
    """
    import yaml  # type: ignore[import-untyped]  # Kailash depends on PyYAML

    lowering = _exportable(target)
    builder = lowering.builder(bind=False)
    builder.set_metadata(dagwright_graph_hash=lowering.graph.content_hash)
    workflow = builder.build(f"{lowering.name}-{lowering.graph.content_hash[:12]}")
    data = _safe_yaml_data(workflow.to_dict(), "workflow")
    dagwright_types = {*KIND_TYPES.values(), GENERIC_TYPE}
    for node in data.get("nodes", {}).values():
        if node.get("node_type") in dagwright_types:
            node["node_type"] = qualified_type(node["node_type"])
    text: str = yaml.safe_dump(data, default_flow_style=False, sort_keys=False, allow_unicode=True)
    return _YAML_HEADER + text


def _safe_yaml_data(value: Any, where: str) -> Any:
    """``value`` with tuples as lists and keys as text; anything safe YAML cannot hold is an error naming it."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _safe_yaml_data(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe_yaml_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise ValueError(f"{where}: a {type(value).__name__} cannot be written as safe YAML")


class _Code(str):
    """Python source made by this module: a literal written through ``repr``, escaped text, or a checked name.

    The template's ``finalize`` lets nothing else out, so a value that was never escaped or checked
    cannot end up in the script as code (see :func:`_only_code`).
    """

    __slots__ = ()


def _only_code(value: object) -> object:
    if type(value) is not _Code:
        raise TypeError(
            f"the script template writes {value!r:.80} as it is: pass it through pyrepr or pytext, "
            "or check it as a name"
        )
    return value


@functools.lru_cache(maxsize=1)
def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dagwright.backends.kailash", "templates"),
        autoescape=False,  # Python source, not HTML: every value goes in through a filter below, or as _Code
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        finalize=_only_code,
    )
    env.filters["pyrepr"] = _pyrepr
    env.filters["pytext"] = _text
    return env


# Names the script binds at module level (its imports, constants and functions) and the builtins it calls:
# an imported function called ``main``, ``sys`` or ``print`` must not replace one of them (nor a dunder
# such as ``__name__``, see _alias), so it is imported under another name.
_SCRIPT_NAMES = frozenset(
    {"annotations", "json", "os", "sys", "Any", "LocalRuntime", "KailashException", "WorkflowBuilder", "dagwright"}
    | {"FLOW_NAME", "GRAPH_HASH", "FLOW_INPUTS", "INPUT_DEFAULTS", "FLOW_OUTPUTS", "_HERE"}
    | {"build_workflow", "parameters", "main", "workflow"}
) | frozenset(dir(builtins))


def to_kailash_script(target: object, *, script_path: str | None = None) -> str:
    """A standalone Python script that rebuilds the lowered ``WorkflowBuilder`` and runs it on ``LocalRuntime``.

    Function nodes import their functions by reference (``module:qualname``); agents are rebuilt
    from their signature and settings (API keys come from the environment, as the IR never holds
    them). ``script_path`` (where the script will be written) makes the module search paths it adds
    relative to the script. Every name and value of the graph is written as a Python literal (or as
    escaped text in the docstring and comments); those the script must use as code (modules and
    functions it imports) are checked to be Python names. Raises ValueError for a function a script
    cannot import, for a name or value it cannot write, naming the node and field, and for an agent
    with a callable access policy or a custom strategy (the script would run it without them).
    """
    lowering = _exportable(target)
    context = _script_context(lowering, script_path)
    text: str = _templates().get_template("kailash_script.py.j2").render(**context)
    try:  # a last guard: the escaping above leaves no way to write a script that does not parse
        ast.parse(text)
    except SyntaxError as exc:
        raise ValueError(
            f"flow {lowering.name!r}: the generated script does not parse ({exc.msg}, line {exc.lineno}); "
            "please report this as a dagwright bug"
        ) from None
    return text


def _script_context(lowering: Lowering, script_path: str | None) -> dict[str, Any]:
    """What the template is rendered with: each value escaped (``_Code``) or left for a template filter."""
    imports, binds, paths = _function_imports(lowering)
    base = os.path.dirname(os.path.abspath(script_path)) if script_path else None
    search = [
        {"relative": base is not None, "path": os.path.relpath(p, base) if base is not None else p} for p in paths
    ]
    nodes = [
        {
            "id": spec.id,
            "type": spec.type,
            "kind": spec.kind,
            "config": _literal(spec.config, indent=8, where=f"node {spec.id!r}: config"),
            "bind": binds.get(spec.id),
        }
        for spec in lowering.nodes
    ]
    description = lowering.graph.metadata.get("description")
    return {
        "name": lowering.name,
        # As Lowering.builder() does: only a text description goes into the workflow's metadata.
        "description": _pyrepr(description) if isinstance(description, str) and description else None,
        "graph_hash": lowering.graph.content_hash,
        "version": __version__,
        "imports": sorted(imports.items()),
        "kind_modules": _kind_modules(lowering),
        "search": search,
        "nodes": nodes,
        "connections": lowering.connections,
        "flow_inputs": _literal(
            {k: [tuple(t) for t in v] for k, v in lowering.inputs.items()}, indent=4, where="flow inputs"
        ),
        "input_defaults": _literal(lowering.input_defaults, indent=4, where="flow input defaults"),
        "flow_outputs": _literal({k: tuple(v) for k, v in lowering.results.items()}, indent=4, where="flow outputs"),
        "workflow_inputs": list(lowering.workflow_inputs().items()),
        "example": json.dumps({name: "..." for name in lowering.inputs}),
    }


def _kind_modules(lowering: Lowering) -> list[_Code]:
    """Modules to import for the kinds registered outside dagwright.nodes (which the script imports anyway)."""
    modules: dict[str, str] = {}
    for spec in lowering.nodes:
        executor = EXECUTORS.get(spec.kind)
        if executor is not None and not executor.__module__.startswith("dagwright.nodes"):
            modules.setdefault(executor.__module__, f"node {spec.id!r}: kind {spec.kind!r}")
    return [_module_name(module, where) for module, where in sorted(modules.items())]


def _function_imports(
    lowering: Lowering,
) -> tuple[dict[_Code, list[tuple[_Code, _Code]]], dict[str, _Code], list[str]]:
    """What the script imports for the function nodes: names by module, the name bound to each node, and the
    directories to put on ``sys.path``. Raises ValueError naming every function a script cannot import."""
    imports: dict[_Code, list[tuple[_Code, _Code]]] = {}
    binds: dict[str, _Code] = {}
    problems: list[str] = []
    paths: list[str] = []
    taken = set(_SCRIPT_NAMES)
    for spec in lowering.nodes:
        if spec.kind != "function":
            continue
        ref = spec.config[CONFIG_KEY]["node"].get("config", {}).get("function", "")
        problem = _import_problem(ref)
        if problem is not None:
            problems.append(f"node {spec.id!r}: function {ref!r} {problem}")
            continue
        module, _, qualname = ref.partition(":")
        alias = _alias(qualname, taken)
        imports.setdefault(_Code(module), []).append((_Code(qualname), alias))
        binds[spec.id] = alias
        root = _module_root(module)
        if root is not None and root not in paths:
            paths.append(root)
    if problems:
        raise ValueError(f"flow {lowering.name!r} cannot be exported as a script:\n  " + "\n  ".join(problems))
    return imports, binds, paths


def _import_problem(ref: object) -> str | None:
    """Why ``from MODULE import QUALNAME`` cannot be written for ``ref``, or None when it can."""
    module, _, qualname = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    if not module or not _is_name(qualname):
        return "cannot be imported by a script; define it at module level"
    if not all(_is_name(part) for part in module.split(".")):
        return f"names the module {module!r}, which is not a dotted Python name a script can import"
    if module.startswith("_dagwright_target_") or module == "__main__":
        hint = "give its file a name that is not taken by another module"
        return f"lives in a module a script cannot import by name; {hint}"
    return None


def _is_name(text: str) -> bool:
    """Can ``text`` be written as a name in Python source (``from m import text``)?"""
    return text.isidentifier() and not keyword.iskeyword(text)


def _module_name(module: str, where: str) -> _Code:
    if not all(_is_name(part) for part in module.split(".")):
        raise ValueError(f"{where}: its module {module!r} is not a dotted Python name a script can import")
    return _Code(module)


def _alias(qualname: str, taken: set[str]) -> _Code:
    """The name the script binds an imported function to: its own, unless the script or another import has it."""
    alias, n = qualname, 1
    while alias in taken or (alias.startswith("__") and alias.endswith("__")):
        n += 1
        alias = f"{qualname}_{n}"
    taken.add(alias)
    return _Code(alias)


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


def _literal(value: Any, *, indent: int, where: str) -> _Code:
    """A Python literal for JSON-like data, indented to sit inside generated code."""
    text = pprint.pformat(_plain(value, where), width=110 - indent, sort_dicts=False)
    return _Code(text.replace("\n", "\n" + " " * indent))


def _pyrepr(value: Any) -> _Code:
    """The ``pyrepr`` filter: ``value`` as a one-line Python literal."""
    return _Code(repr(_plain(value, "a value of the script")))


def _plain(value: Any, where: str) -> Any:
    """``value`` as built-in JSON-like data, whose ``repr`` is a Python literal: subclasses of str, int and
    float (enums, say) become the plain values they hold, so no ``__repr__`` of theirs reaches the script."""
    if value is None or value is MISSING or isinstance(value, bool):
        return None if value is MISSING else value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        if not math.isfinite(number):
            raise ValueError(f"{where}: {number!r} has no Python literal")
        return number
    if isinstance(value, Mapping):
        data: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                _not_literal(key, where)
            data[str.__str__(key)] = _plain(item, where)
        return data
    if isinstance(value, (tuple, list)):
        items = [_plain(v, where) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return _not_literal(value, where)


def _not_literal(value: object, where: str) -> NoReturn:
    raise ValueError(f"{where}: {type(value).__name__} {value!r:.80} cannot be written as a Python literal")


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _text(value: Any) -> _Code:
    """The ``pytext`` filter: ``str(value)`` for the script's docstring and comments. A backslash and every
    character that is not printable (line breaks, NUL, lone surrogates) are written as escapes, and so is a
    double quote next to another or at the end, so the text can neither close the docstring nor start a
    line of code; it reads back as it was."""
    text = str.__str__(value) if isinstance(value, str) else str(value)
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch == '"':
            out.append('\\"' if i == len(text) - 1 or text[i - 1 : i] == '"' else ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            out.append(ch if ch.isprintable() else ascii(ch)[1:-1])
    return _Code("".join(out))
