"""Lowering a checked graph to the Kailash SDK: every IR node becomes a registered Kailash node.

Only a **checked** graph is lowered: :func:`lower` takes the graph a flow compiled
(``Flow.to_kailash()`` compiles first, raising its
:class:`~dagwright.compiler.diagnostics.CompileError`), :func:`lower_graph` runs the
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
  (``add_connection("research", "findings", "writer", "findings")``), unless a flat flow
  input could reach that name (see below). Kailash would lose values in two places, so
  the lowering avoids both: edges into one ``collect`` port get distinct inputs
  (``views_from_optimist``, ``views_from_skeptic``) that the node assembles into the list in
  edge order, and an output feeding several inputs of one node is connected once and
  delivered to each of them. Each input is declared to Kailash with its Python type
  (``str``, ``int``, ``float``, ``bool``, ``bytes``, ``list``, ``dict``; ``Any`` for the rest),
  so ``connection_validation="strict"`` refuses a mismatched value before the node runs.
* **Flow inputs** are not Kailash nodes: they become parameters of the nodes that
  consume them, under the consuming input's name, so ``parameters={"research":
  {"topic": "..."}}`` works; :meth:`Lowering.parameters` builds that dict from the
  flow's input names. A flow input's default is the consuming node's config value.
  Flat parameters (``{"topic": "..."}``) work on both runtimes: ``LocalRuntime`` maps them
  through ``add_workflow_inputs``, ``AsyncLocalRuntime`` hands them to every node, which
  reads the flow inputs it consumes. Kailash also hands a flat parameter to any input with
  a similar name (``text`` reaches ``context`` and ``clean_text``), and a parameter wins over
  a connection, so a connected input that a flow input's name could reach is named after
  its source instead (``clean_output``): a flat parameter only ever feeds flow inputs.
* **Outputs** keep their port names in Kailash's results, except that a '.' (which
  Kailash reads as a path into a value) becomes ``/``: a router's ``billing.text`` is
  ``results["router"]["billing/text"]``. Flow outputs are read from there;
  :attr:`Lowering.results` says where each one is.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from dagwright.backends.kailash.config import CONFIG_KEY, SETTING_KEYS, policy_to_json, readable_config
from dagwright.compiler.diagnostics import CompileError, has_errors
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph, Node, thaw_json
from dagwright.compiler.passes import validate

if TYPE_CHECKING:
    from dagwright.execution.policy import NodePolicy

__all__ = [
    "GENERIC_TYPE",
    "KIND_TYPES",
    "KailashConnection",
    "KailashNodeSpec",
    "KailashPortNameWarning",
    "Lowering",
    "lower",
    "lower_graph",
    "reachable_by",
]

KIND_TYPES: dict[str, str] = {"agent": "DagwrightAgentNode", "function": "DagwrightFunctionNode"}
"""The registered Kailash node type of each IR node kind; other kinds lower to :data:`GENERIC_TYPE`."""
GENERIC_TYPE = "DagwrightNode"

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
    a path (``billing.text`` is ``billing/text`` there).
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
        resolve functions through ``dagwright.backends.kailash.nodes.functions`` (what a loaded YAML file does).
        """
        from dagwright.backends.kailash.nodes import WorkflowBuilder

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


def lower(
    graph: Graph,
    bindings: Mapping[str, object] | None = None,
    policies: Mapping[str, NodePolicy] | None = None,
) -> Lowering:
    """Lower a checked graph (``Flow.compile()``'s): ``bindings`` are what its nodes run, ``policies`` their
    retry and timeout settings."""
    return _lower(graph, bindings or {}, policies or {})


def lower_graph(
    graph: Graph,
    bindings: Mapping[str, object] | None = None,
    policies: Mapping[str, NodePolicy] | None = None,
) -> Lowering:
    """Lower a graph (from JSON, say) after running the validation passes on it."""
    diagnostics = validate(graph)
    if has_errors(diagnostics):
        raise CompileError(graph.name, diagnostics)
    return _lower(graph, bindings or {}, policies or {})


def _lower(graph: Graph, bindings: Mapping[str, object], policies: Mapping[str, NodePolicy]) -> Lowering:
    input_names = {n.id: str(n.config.get("name", n.outputs[0].name)) for n in graph.input_nodes}
    flow_inputs = _FlowInputs(
        input_names,
        {name: [] for name in input_names.values()},
        {input_names[n.id]: thaw_json(n.config["default"]) for n in graph.input_nodes if "default" in n.config},
        sorted(name for name in input_names.values() if name in SETTING_KEYS),
    )
    nodes: list[KailashNodeSpec] = []
    connections: list[KailashConnection] = []
    verdicts: list[str] = []
    renamed = {node.id: _output_names(node) for node in graph.nodes if node.kind not in (INPUT_KIND, OUTPUT_KIND)}
    for node in graph.nodes:
        if node.kind in (INPUT_KIND, OUTPUT_KIND):
            continue
        policy = policies.get(node.id)
        config = _node_config(graph, node, flow_inputs, renamed, connections)
        if policy is not None:
            config[CONFIG_KEY]["policy"] = policy_to_json(policy)
        kailash_type = KIND_TYPES.get(node.kind, GENERIC_TYPE)
        nodes.append(KailashNodeSpec(node.id, kailash_type, node.kind, config, bindings.get(node.id), policy))
        verdicts.extend(
            f"{node.id}.{p.name} ({_VERDICT_PORTS[p.name]})" for p in node.outputs if p.name in _VERDICT_PORTS
        )
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
            stacklevel=4,
        )
    return Lowering(graph, nodes, connections, flow_inputs.targets, flow_inputs.defaults, outputs, results)


class _FlowInputs(NamedTuple):
    names: dict[str, str]  # input node id -> flow input name
    targets: dict[str, list[tuple[str, str]]]  # flow input name -> the (node, input) pairs it feeds
    defaults: dict[str, Any]
    # The flow inputs named like an agent setting, sorted: AsyncLocalRuntime hands them to every node.
    settings: list[str]


def _node_config(
    graph: Graph,
    node: Node,
    flow_inputs: _FlowInputs,
    renamed: Mapping[str, Mapping[str, str]],
    connections: list[KailashConnection],
) -> dict[str, Any]:
    """One node's Kailash config (see the module docstring); its connections are added to ``connections``."""
    wiring: dict[str, list[str]] = {}
    sources: dict[str, list[str]] = {}
    fed_by: dict[str, str] = {}
    config: dict[str, Any] = {}
    by_source: dict[tuple[str, str], str] = {}
    taken = {p.name for p in node.inputs}
    if CONFIG_KEY in taken:
        raise ValueError(
            f"graph {graph.name!r}, node {node.id!r}: an input called {CONFIG_KEY!r} cannot be lowered to "
            "Kailash (that config key holds the node's dagwright settings); rename the input"
        )
    in_edges = graph._index.in_edges  # read-only here; edges_into() would copy each list
    for port in node.inputs:
        edges = in_edges.get((node.id, port.name))
        if not edges:
            continue
        names: list[str] = []
        for i, edge in enumerate(edges):
            key = (edge.source, edge.source_port)
            name = by_source.get(key)
            if name is None:
                if edge.source in flow_inputs.names:
                    name = port.name if not port.collect else _fresh(f"{port.name}_{i}", taken)
                else:
                    name = _connected_name(port.name, port.collect, edge.source, edge.source_port, taken, flow_inputs)
                taken.add(name)
                by_source[key] = name
                if edge.source in flow_inputs.names:
                    flow_input = flow_inputs.names[edge.source]
                    fed_by[name] = flow_input
                    flow_inputs.targets[flow_input].append((node.id, name))
                    if flow_input in flow_inputs.defaults:
                        config[name] = flow_inputs.defaults[flow_input]
                else:
                    sources[name] = [edge.source, edge.source_port]
                    output = renamed[edge.source].get(edge.source_port, edge.source_port)
                    connections.append(KailashConnection(edge.source, output, node.id, name))
            names.append(name)
        wiring[port.name] = names
    data = node.to_dict(locations=False)
    settings: dict[str, Any] = {"node": data, "lowered": True}
    # AsyncLocalRuntime hands flat parameters to every node: a flow input named like an agent setting
    # is a flow input there, not an override to refuse.
    if flow_inputs.settings and node.kind == "agent":
        settings["flat_inputs"] = list(flow_inputs.settings)
    parts: dict[str, Mapping[str, Any]] = {
        "wiring": wiring,
        "sources": sources,
        "flow_inputs": fed_by,
        "outputs": renamed[node.id],
    }
    settings.update((key, value) for key, value in parts.items() if value)
    config[CONFIG_KEY] = settings
    config.update(readable_config(data))
    return config


# Kailash's WorkflowParameterInjector hands a flat parameter to every node input whose name equals it,
# contains it, is contained in it, or is one of these aliases of it.
_KAILASH_ALIASES: dict[str, tuple[str, ...]] = {
    "input": ("data", "content", "text", "input_data"),
    "data": ("input", "content", "text", "input_data"),
    "content": ("data", "input", "text", "body"),
    "text": ("data", "input", "content", "body"),
    "url": ("endpoint", "address", "link", "uri"),
    "endpoint": ("url", "address", "link", "uri"),
    "config": ("configuration", "settings", "options"),
    "params": ("parameters", "args", "arguments"),
    "result": ("output", "response", "return"),
    "output": ("result", "response", "return"),
}


def reachable_by(name: str, flat: str) -> bool:
    """Whether Kailash would hand the flat parameter ``flat`` to a node input called ``name``."""
    a, b = name.lower(), flat.lower()
    return a in b or b in a or name in _KAILASH_ALIASES.get(flat, ()) or flat in _KAILASH_ALIASES.get(name, ())


def _connected_name(
    port: str, collect: bool, source: str, source_port: str, taken: set[str], flow_inputs: _FlowInputs
) -> str:
    """The Kailash input name of a connection: readable, and out of reach of every flat flow input.

    ``LocalRuntime().execute(workflow, parameters={"text": ...})`` gives a flat parameter to every
    node input with a name like it (:func:`reachable_by`), and a parameter wins over a connection:
    a connected input called ``text`` would get the flow's raw ``text`` instead of its upstream
    value. So a connected input keeps the port's name only when no flow input reaches it, and
    is otherwise named after its source (``clean_output``, or ``from_handoff`` when the flow input's name is in
    that too), or ``wN`` as a last resort.
    """
    # An empty flow input name is in every name, so Kailash would hand it to every input: nothing avoids it.
    flats = [name for name in flow_inputs.names.values() if name]
    where = source.replace(".", "_")
    origin = f"{where}_{source_port.replace('.', '_')}"
    # A flow input's name is in every name that contains it, so the port's own name may be out of reach:
    # then the input is named after where its value comes from (``from_handoff``), before a bare ``wN``.
    readable = [f"from_{where}", f"{where}_output", f"{where}_value"]
    candidates = [f"{port}_from_{where}", origin, *readable] if collect else [port, origin, *readable]
    for n in range(1, 1000):
        for candidate in candidates:
            free = candidate == port or (candidate not in taken and candidate != CONFIG_KEY)
            if free and not any(reachable_by(candidate, f) for f in flats):
                return candidate
        candidates = [f"{letter}{n}" for letter in "wvqzjk"]
    raise ValueError(
        f"node input {port!r} (from {source}.{source_port}): every Kailash name tried is reached by a flow "
        f"input ({', '.join(flats)}); rename the flow inputs"
    )


def _fresh(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _output_names(node: Node) -> dict[str, str]:
    """Kailash names for output ports with a '.' (Kailash reads a dotted output name as a path into a value).

    The '.' becomes a '/': a router's ``billing.request`` is ``billing/request`` in Kailash's results,
    connections and drawings, a name that reads as the port it is and that Kailash takes literally.
    """
    if not any("." in p.name for p in node.outputs):
        return {}
    taken = {p.name for p in node.outputs}
    names: dict[str, str] = {}
    for port in node.outputs:
        if "." in port.name:
            names[port.name] = _fresh(port.name.replace(".", "/"), taken)
            taken.add(names[port.name])
    return names
