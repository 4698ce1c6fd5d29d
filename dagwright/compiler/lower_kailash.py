"""Lowering a checked graph to the Kailash SDK: every IR node becomes a registered Kailash node.

Only a **checked** graph is lowered: ``lower_flow`` compiles the flow (raising its
:class:`~dagwright.compiler.diagnostics.CompileError`), ``lower_graph`` runs the
validation passes on a graph loaded from JSON. The result, a :class:`Lowering`, is
plain data (no Kailash import); ``Lowering.builder()`` and ``Lowering.workflow()``
turn it into Kailash objects.

The mapping, which is the contract Kailash users see:

* **Nodes.** An IR node keeps its id. Its Kailash type is ``DagwrightAgentNode``,
  ``DagwrightFunctionNode``, or ``DagwrightNode`` for every other kind (coordination
  nodes and kinds registered later): all three run the very executor the built-in
  scheduler runs (same prompt, parsing and retries). A node's config holds one key,
  ``dagwright``: the IR node itself (kind, typed ports, settings) and how its inputs
  are wired; agents and functions are attached by ``WorkflowBuilder.bind`` when the
  workflow is built, never written into the config.
* **Inputs.** An input port fed by one edge is the Kailash input of the same name
  (``add_connection("research", "findings", "writer", "findings")``). Kailash would
  lose values in two places, so the lowering avoids both: edges into one ``collect``
  port get distinct inputs ``__collect_<port>_<i>`` that the node assembles into the
  list in edge order, and an output feeding several inputs of one node is connected
  once and delivered to each of them.
* **Flow inputs** are not Kailash nodes: they become parameters of the nodes that
  consume them, under the consuming input's name, so ``parameters={"research":
  {"topic": "..."}}`` works; :meth:`Lowering.parameters` builds that dict from the
  flow's input names. A flow input's default is the consuming node's config value.
  Flat parameters (``{"topic": "..."}``) work on ``LocalRuntime`` through
  ``add_workflow_inputs``; ``AsyncLocalRuntime`` hands flat parameters to every node
  as they are, so prefer the node-specific form there.
* **Outputs** keep their port names in Kailash's results, except that a '.' (which
  Kailash reads as a path into a value) becomes ``__``: a router's ``billing.text`` is
  ``results["router"]["billing__text"]``. Flow outputs are read from there;
  :attr:`Lowering.results` says where each one is.
"""

from __future__ import annotations

import functools
import json
import os
import pprint
import sys
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from dagwright.compiler.diagnostics import CompileError, has_errors
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph, Node, thaw_json
from dagwright.compiler.signature import MISSING

if TYPE_CHECKING:
    from dagwright.compiler.flow import Flow
    from dagwright.runtime.policy import NodePolicy

__all__ = [
    "CONFIG_KEY",
    "GENERIC_TYPE",
    "KIND_TYPES",
    "KailashConnection",
    "KailashNodeSpec",
    "KailashPortNameWarning",
    "Lowering",
    "lower_flow",
    "lower_graph",
    "to_kailash_script",
    "to_kailash_yaml",
]

KIND_TYPES: dict[str, str] = {"agent": "DagwrightAgentNode", "function": "DagwrightFunctionNode"}
"""The registered Kailash node type of each IR node kind; other kinds lower to :data:`GENERIC_TYPE`."""
GENERIC_TYPE = "DagwrightNode"
CONFIG_KEY = "dagwright"
"""The one config key of a lowered node: its IR node, wiring and policy."""

# Output names Kailash's LocalRuntime reads as a verdict on the node itself.
_VERDICT_PORTS = {
    "failed": "a truthy 'failed' output makes LocalRuntime refuse to pass the node's outputs on",
    "success": "a false 'success' output is a node failure unless content_aware_success_detection=False",
}


class KailashPortNameWarning(UserWarning):
    """An output name that Kailash's runtime interprets (``failed``, ``success``)."""


class KailashNodeSpec(NamedTuple):
    """One ``add_node(type, id, config)`` call, plus what to bind to the node when it is built."""

    id: str
    type: str
    kind: str
    config: dict[str, Any]
    binding: object = None
    policy: NodePolicy | None = None


class KailashConnection(NamedTuple):
    """One ``add_connection(source, source_output, target, target_input)`` call."""

    source: str
    source_output: str
    target: str
    target_input: str


@dataclass
class Lowering:
    """A checked graph as Kailash calls: node specs, connections, and where flow inputs and outputs go.

    ``inputs`` maps each flow input to the ``(node, input)`` pairs it feeds; ``outputs`` maps
    each flow output to the ``(node, port)`` it reads (the node is ``input:NAME`` when a flow
    input is passed straight through), and ``results`` to where Kailash's results hold it:
    ``results[node][name]``, the port's name unless it has a '.', which Kailash would read as
    a path (``billing.text`` is ``billing__text`` there).
    """

    graph: Graph
    nodes: list[KailashNodeSpec]
    connections: list[KailashConnection]
    inputs: dict[str, list[tuple[str, str]]]
    input_defaults: dict[str, Any]
    outputs: dict[str, tuple[str, str]]
    results: dict[str, tuple[str, str]]
    _workflow: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.graph.name

    def parameters(self, values: Mapping[str, Any] | None = None, /, **named: Any) -> dict[str, dict[str, Any]]:
        """Kailash ``parameters`` for flow inputs given by name: ``{node_id: {input: value}}``.

        Flow inputs that are not given are left out (their defaults are in the nodes' config).
        """
        given = dict(values or {})
        given.update(named)
        unknown = [k for k in given if k not in self.inputs]
        if unknown:
            known = ", ".join(self.inputs) or "none"
            raise ValueError(
                f"flow {self.name!r} has no input {', '.join(map(repr, unknown))}; its inputs are: {known}"
            )
        params: dict[str, dict[str, Any]] = {}
        for name, value in given.items():
            for node_id, input_name in self.inputs[name]:
                params.setdefault(node_id, {})[input_name] = value
        return params

    def workflow_inputs(self) -> dict[str, dict[str, str]]:
        """Per node, flow input name -> the node's input: Kailash's ``add_workflow_inputs`` mappings."""
        per_node: dict[str, dict[str, str]] = {}
        for name, targets in self.inputs.items():
            for node_id, input_name in targets:
                per_node.setdefault(node_id, {})[name] = input_name
        return per_node

    def builder(self, *, bind: bool = True) -> Any:
        """A new ``dagwright.WorkflowBuilder`` (a Kailash ``WorkflowBuilder``) with every node and connection.

        With ``bind`` (the default) the flow's agents, functions and retry policies are attached to
        the nodes when the builder builds; without it the nodes rebuild agents from their IR and
        resolve functions through ``dagwright.nodes.kailash.functions`` (what a loaded YAML file does).
        """
        from dagwright.nodes.kailash import WorkflowBuilder

        builder = WorkflowBuilder()
        for spec in self.nodes:
            builder.add_node(spec.type, spec.id, dict(spec.config))
            if bind and (spec.binding is not None or spec.policy is not None):
                builder.bind(spec.id, spec.binding, policy=spec.policy)
        for conn in self.connections:
            builder.add_connection(conn.source, conn.source_output, conn.target, conn.target_input)
        for node_id, mapping in self.workflow_inputs().items():
            builder.add_workflow_inputs(node_id, mapping)
        metadata: dict[str, Any] = {"name": self.name}
        description = self.graph.metadata.get("description")
        if isinstance(description, str) and description:
            metadata["description"] = description
        builder.set_metadata(**metadata)
        return builder

    def workflow(self, *, bind: bool = True, workflow_id: str | None = None) -> Any:
        """A new Kailash ``Workflow`` built from :meth:`builder`."""
        return self.builder(bind=bind).build(workflow_id)

    def cached_workflow(self) -> Any:
        """One bound ``Workflow`` kept for repeated runs (Kailash workflows can be executed many times)."""
        if self._workflow is None:
            self._workflow = self.workflow()
        return self._workflow


# --------------------------------------------------------------------------- lowering


_flow_cache: weakref.WeakKeyDictionary[Flow, tuple[int, Lowering]] = weakref.WeakKeyDictionary()


def lower_flow(flow: Flow) -> Lowering:
    """Lower a flow (compiled first: a flow with errors raises its ``CompileError``).

    The result is cached until the flow changes.
    """
    cached = _flow_cache.get(flow)
    if cached is not None and cached[0] == flow._version:
        return cached[1]
    graph = flow.compile()
    lowering = _lower(graph, flow._bindings, flow._policies)
    _flow_cache[flow] = (flow._version, lowering)
    return lowering


def lower_graph(
    graph: Graph,
    bindings: Mapping[str, object] | None = None,
    policies: Mapping[str, NodePolicy] | None = None,
) -> Lowering:
    """Lower a graph (from JSON, say) after running the validation passes on it."""
    from dagwright.compiler.passes import validate

    diagnostics = validate(graph)
    if has_errors(diagnostics):
        raise CompileError(graph.name, diagnostics)
    return _lower(graph, bindings or {}, policies or {})


def _lower(graph: Graph, bindings: Mapping[str, object], policies: Mapping[str, NodePolicy]) -> Lowering:
    input_names = {n.id: str(n.config.get("name", n.outputs[0].name)) for n in graph.input_nodes}
    inputs: dict[str, list[tuple[str, str]]] = {name: [] for name in input_names.values()}
    input_defaults: dict[str, Any] = {
        input_names[n.id]: thaw_json(n.config["default"]) for n in graph.input_nodes if "default" in n.config
    }
    nodes: list[KailashNodeSpec] = []
    connections: list[KailashConnection] = []
    verdicts: list[str] = []
    renamed = {node.id: _output_names(node) for node in graph.nodes if node.kind not in (INPUT_KIND, OUTPUT_KIND)}
    in_edges = graph._index.in_edges  # read-only here; edges_into() would copy each list
    for node in graph.nodes:
        if node.kind in (INPUT_KIND, OUTPUT_KIND):
            continue
        wiring: dict[str, list[str]] = {}
        sources: dict[str, list[str]] = {}
        flow_inputs: dict[str, str] = {}
        config: dict[str, Any] = {}
        by_source: dict[tuple[str, str], str] = {}
        taken = {p.name for p in node.inputs}
        if CONFIG_KEY in taken:
            raise ValueError(
                f"graph {graph.name!r}, node {node.id!r}: an input called {CONFIG_KEY!r} cannot be lowered to "
                "Kailash (that config key holds the node's dagwright settings); rename the input"
            )
        for port in node.inputs:
            edges = in_edges.get((node.id, port.name))
            if not edges:
                continue
            names: list[str] = []
            for i, edge in enumerate(edges):
                key = (edge.source, edge.source_port)
                name = by_source.get(key)
                if name is None:
                    name = port.name if not port.collect else _fresh(f"__collect_{port.name}_{i}", taken)
                    taken.add(name)
                    by_source[key] = name
                    if edge.source in input_names:
                        flow_input = input_names[edge.source]
                        flow_inputs[name] = flow_input
                        inputs[flow_input].append((node.id, name))
                        if flow_input in input_defaults:
                            config[name] = input_defaults[flow_input]
                    else:
                        sources[name] = [edge.source, edge.source_port]
                        output = renamed[edge.source].get(edge.source_port, edge.source_port)
                        connections.append(KailashConnection(edge.source, output, node.id, name))
                names.append(name)
            wiring[port.name] = names
        settings: dict[str, Any] = {"node": node.to_dict(locations=False)}
        if wiring:
            settings["wiring"] = wiring
        if sources:
            settings["sources"] = sources
        if flow_inputs:
            settings["flow_inputs"] = flow_inputs
        if renamed[node.id]:
            settings["outputs"] = renamed[node.id]
        policy = policies.get(node.id)
        if policy is not None:
            settings["policy"] = policy_to_json(policy)
        config[CONFIG_KEY] = settings
        binding = bindings.get(node.id)
        nodes.append(
            KailashNodeSpec(node.id, KIND_TYPES.get(node.kind, GENERIC_TYPE), node.kind, config, binding, policy)
        )
        for p in node.outputs:
            if p.name in _VERDICT_PORTS:
                verdicts.append(f"{node.id}.{p.name} ({_VERDICT_PORTS[p.name]})")
    outputs: dict[str, tuple[str, str]] = {}
    results: dict[str, tuple[str, str]] = {}
    for out in graph.output_nodes:
        edges = graph.edges_into(out.id, out.inputs[0].name)
        if edges:
            name = str(out.config.get("name", out.inputs[0].name))
            source, source_port = edges[0].source, edges[0].source_port
            outputs[name] = (source, source_port)
            results[name] = (source, renamed.get(source, {}).get(source_port, source_port))
    if verdicts:
        warnings.warn(
            f"flow {graph.name!r}: Kailash reads these outputs as a verdict on their node: "
            + "; ".join(verdicts)
            + ". Rename them, or run with dagwright's Kailash helpers (which switch that detection off).",
            KailashPortNameWarning,
            stacklevel=3,
        )
    return Lowering(graph, nodes, connections, inputs, input_defaults, outputs, results)


def _fresh(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _output_names(node: Node) -> dict[str, str]:
    """Kailash names for output ports with a '.' (Kailash reads a dotted output name as a path into a value)."""
    if not any("." in p.name for p in node.outputs):
        return {}
    taken = {p.name for p in node.outputs}
    names: dict[str, str] = {}
    for port in node.outputs:
        if "." in port.name:
            names[port.name] = _fresh(port.name.replace(".", "__"), taken)
            taken.add(names[port.name])
    return names


def policy_to_json(policy: NodePolicy) -> dict[str, Any]:
    """A node policy as JSON config; ``retry_on`` classes by qualified name."""
    retry = policy.retry
    out: dict[str, Any] = {
        "max_attempts": retry.max_attempts,
        "initial_delay": retry.initial_delay,
        "backoff": retry.backoff,
        "max_delay": retry.max_delay,
        "jitter": retry.jitter,
        "retry_on": [f"{cls.__module__}.{cls.__qualname__}" for cls in retry.retry_on],
    }
    if policy.timeout is not None:
        out["timeout"] = policy.timeout
    return out


# --------------------------------------------------------------------------- export


def _lowering_of(target: Flow | Graph) -> Lowering:
    from dagwright.compiler.flow import Flow

    if isinstance(target, Flow):
        return lower_flow(target)
    if isinstance(target, Graph):
        return lower_graph(target)
    raise TypeError(f"expected a Flow or a Graph, got {type(target).__name__}")


def to_kailash_yaml(target: Flow | Graph) -> str:
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
        loader=jinja2.PackageLoader("dagwright.compiler", "templates"),
        autoescape=False,  # Python source, not HTML: values go in through the pyrepr filter
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pyrepr"] = repr
    return env


def to_kailash_script(target: Flow | Graph, *, script_path: str | None = None) -> str:
    """A standalone Python script that rebuilds the lowered ``WorkflowBuilder`` and runs it on ``LocalRuntime``.

    Function nodes import their functions by reference (``module:qualname``); agents are rebuilt
    from their signature and settings (API keys come from the environment, as the IR never holds
    them). ``script_path`` (where the script will be written) makes the module search paths it adds
    relative to the script. Raises ValueError for a function a script cannot import.
    """
    from dagwright import __version__
    from dagwright.nodes import EXECUTORS

    lowering = _lowering_of(target)
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
