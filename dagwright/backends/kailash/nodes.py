"""Kailash node classes that run dagwright nodes, and dagwright's ``WorkflowBuilder``.

Importing this module imports the ``kailash`` package (it takes about a second, so
``import dagwright`` does not do it) and registers three Kailash node types:

* ``DagwrightAgentNode`` (an agent: its signature's inputs are the node's parameters),
* ``DagwrightFunctionNode`` (a typed Python function),
* ``DagwrightNode`` (every other kind: coordination nodes, kinds registered later).

Each instance runs the executor the built-in scheduler runs for its IR node
(:data:`dagwright.nodes.EXECUTORS`), under the node's retry policy, so a lowered
flow behaves on Kailash as it does on dagwright's runtime. The compiler already
checked every connection's types, so the classes take values exactly as they come:
Kailash's coercion is switched off for them (a string sent to a ``list`` input arrives
as that string, never as a list of characters). Their inputs are declared with Python
types, and ``validate_inputs`` checks values against the ports' types, so Kailash's
``connection_validation="strict"`` stops a mismatched hand-wired connection.

A node's config has one key, ``dagwright`` (see :mod:`dagwright.backends.kailash.lowering`);
an agent node also shows its ``model``, ``signature`` and ``role`` (read, never run from),
and any other config key gives a constant value to the input of that name. Agents and
functions are attached with :meth:`WorkflowBuilder.bind` (or ``_binding=`` when
constructing a node directly); without one, an agent is rebuilt from the IR node's
signature and settings, and a function reference resolves through :data:`functions`
(empty until you register functions or allow modules: loading a workflow never
imports code by itself).

Outputs are returned as :class:`NodeOutputs` (a ``dict``); a port left out was not
produced, and nodes that need it are skipped, as on the built-in runtime.

:class:`WorkflowBuilder` also takes the calls of Kaizen's execution-engine ADR that
Kailash's builder lacks or reads differently: ``add_node_instance(agent.to_workflow_node("id"))``
keeps the node's own id, ``add_connection("a", "b")`` connects the outputs of ``a`` to
the inputs of ``b`` with the same names, ``add_connections([...])`` adds several at once,
and ``add_subworkflow("name", other.build())`` runs a whole workflow as one node
(Kailash's ``WorkflowNode``).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import contextvars
import inspect
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from kailash.nodes.base import NodeParameter, NodeRegistry, register_node  # type: ignore[import-untyped]
from kailash.nodes.base_async import AsyncNode  # type: ignore[import-untyped]
from kailash.nodes.code import PythonCodeNode  # type: ignore[import-untyped]
from kailash.nodes.logic.workflow import WorkflowNode  # type: ignore[import-untyped]
from kailash.sdk_exceptions import NodeExecutionError as KailashNodeExecutionError  # type: ignore[import-untyped]
from kailash.sdk_exceptions import WorkflowValidationError
from kailash.workflow.builder import WorkflowBuilder as KailashWorkflowBuilder  # type: ignore[import-untyped]
from kailash.workflow.graph import Workflow  # type: ignore[import-untyped]

from dagwright.backends.builtin.plan import bind_nodes
from dagwright.backends.kailash.config import (
    CONFIG_KEY,
    READABLE_KEYS,
    SETTING_KEYS,
    policy_from_json,
    qualified_type,
    readable_config,
)
from dagwright.backends.kailash.failures import current_guard, run_guarded
from dagwright.compiler.builder import FlowBuilder
from dagwright.compiler.ir import Graph, IRFormatError, Node, thaw_json
from dagwright.compiler.registry import FunctionRegistry
from dagwright.compiler.signature import MISSING
from dagwright.compiler.suggest import suggest
from dagwright.compiler.types import ANY, TypeExpr, from_json, value_misfit
from dagwright.execution.errors import NodeExecutionError
from dagwright.execution.events import NodeRecord
from dagwright.execution.executor import Executor
from dagwright.execution.policy import NodePolicy
from dagwright.execution.steps import attempt_node
from dagwright.nodes import EXECUTORS

__all__ = [
    "DagwrightAgentNode",
    "DagwrightFunctionNode",
    "DagwrightNode",
    "DagwrightNodeBase",
    "NodeOutputs",
    "RunRecorder",
    "WorkflowBuilder",
    "agent_node",
    "functions",
    "policy_from_json",
    "recording",
    "stop_recording",
]

functions = FunctionRegistry()
"""Where a function node with nothing bound looks up its ``module:qualname`` reference.

Register what a workflow loaded from YAML may call (``functions.register(summarize)``), or
replace it: ``dagwright.backends.kailash.nodes.functions = FunctionRegistry(allow=["mypackage"])``."""


class NodeOutputs(dict[str, Any]):
    """The outputs of a dagwright node in Kailash's results: output name -> value.

    The names are the ports' names, with a '.' written ``/`` (Kailash reads a dotted
    name as a path); :attr:`ports` holds the values by the ports' own names. A distinct
    type, so that a dagwright node can tell a whole result that ``AsyncLocalRuntime``
    hands over (for a missing output, or one named ``result``) from a port's value.
    """

    def __init__(self, ports: Mapping[str, Any] | None = None, names: Mapping[str, str] | None = None) -> None:
        ports = dict(ports or {})
        names = names or {}
        super().__init__((names.get(k, k), v) for k, v in ports.items())
        self.ports = ports


@dataclass
class RunRecorder:
    """Collects one node record per executed dagwright node during one Kailash run."""

    run_id: str
    records: dict[str, NodeRecord] = field(default_factory=dict)


_recorder: contextvars.ContextVar[RunRecorder | None] = contextvars.ContextVar("dagwright_kailash_run", default=None)


def recording(recorder: RunRecorder | None) -> contextvars.Token[RunRecorder | None]:
    """Record the dagwright nodes run in this context (and tasks it starts) into ``recorder``.

    Pass the token to :func:`stop_recording` when the run is over.
    """
    return _recorder.set(recorder)


def stop_recording(token: contextvars.Token[RunRecorder | None]) -> None:
    """Undo :func:`recording`."""
    _recorder.reset(token)


_ABSENT: Any = object()
_log = logging.getLogger("dagwright")


# Each dagwright node's Kailash output names, by node id: what an output of it missing from the results means.
_OUTPUT_NAMES: dict[str, frozenset[str]] = {}
_SOURCE_OUTPUT = re.compile(r"Source output '(.+?)' not found in node '(.+?)'\.")


class _UnproducedOutputs(logging.Filter):
    """LocalRuntime's "Source output 'x' not found in node 'n'" warning, for an output a dagwright node declares.

    An output left out is how a dagwright node says "not produced" (a router's other branches,
    a closed gate, a skipped node), so the warning is said as what it is, at INFO. During
    dagwright's own runs it is dropped: the run's records report those skips. A warning about
    any other output, or any other node, is kept as Kailash wrote it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or not str(record.msg).startswith("Source output '"):
            return True
        if _recorder.get() is not None:
            return False
        found = _SOURCE_OUTPUT.match(record.getMessage())
        if found is None or found.group(1) not in _OUTPUT_NAMES.get(found.group(2), ()):
            return True
        output, node_id = found.groups()
        record.levelno, record.levelname, record.args = logging.INFO, "INFO", ()
        record.msg = (
            f"dagwright node {node_id!r} did not produce {output!r} (a branch not taken, or the node was "
            "skipped): the nodes that need it skip themselves"
        )
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


logging.getLogger("kailash.runtime.base").addFilter(_UnproducedOutputs())


_WORKFLOW_NODE_CONFIG = frozenset(
    {"workflow", "workflow_path", "workflow_dict", "input_mapping", "output_mapping", "name", "description"}
)
_UNKNOWN_FOR_WORKFLOW_NODE = "[NODE] Unknown parameter(s) for WorkflowNode: "


class _WorkflowNodeOwnConfig(logging.Filter):
    """Drops Kailash's "Unknown parameter(s) for WorkflowNode" warning when it names only the node's own config.

    LocalRuntime hands a node its config along with its inputs, and ``WorkflowNode`` does not
    declare its config keys (``workflow``, ``input_mapping``, ...) as parameters, so every run
    of a sub-workflow (:meth:`WorkflowBuilder.add_subworkflow`) would warn about them. A
    warning naming any other key is kept: that one may be a real mistake.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        message = record.getMessage()
        if not message.startswith(_UNKNOWN_FOR_WORKFLOW_NODE):
            return True
        listed = message[len(_UNKNOWN_FOR_WORKFLOW_NODE) :].split("]", 1)[0] + "]"
        try:
            names = ast.literal_eval(listed)
        except (ValueError, SyntaxError):
            return True
        return not (isinstance(names, list) and set(map(str, names)) <= _WORKFLOW_NODE_CONFIG)


logging.getLogger("kailash.nodes.base").addFilter(_WorkflowNodeOwnConfig())


@dataclass(slots=True)
class _Prepared:
    """A node instance's settings, parsed once: the IR node, its wiring, policy and executor."""

    node: Node
    wiring: dict[str, list[str]]
    sources: dict[str, tuple[str, str]]
    flow_inputs: dict[str, str]
    outputs: dict[str, str]
    policy: NodePolicy
    executor: Executor
    lowered: bool
    readable: frozenset[str]
    flat_inputs: frozenset[str]


class DagwrightNodeBase(AsyncNode):  # type: ignore[misc]
    """The Kailash side of one dagwright node (see the module docstring). Not registered itself."""

    def __init__(self, **kwargs: Any) -> None:
        # Kailash asks for get_parameters() before it stores the config, so keep the settings first.
        self._binding: object = kwargs.pop("_binding", None)
        self._bound_policy: NodePolicy | None = kwargs.pop("_policy", None)
        settings = kwargs.get(CONFIG_KEY)
        self._settings: dict[str, Any] = settings if isinstance(settings, dict) else {}
        self._prepared: _Prepared | None = None
        self._parameters: dict[str, NodeParameter] | None = None
        self._input_types: dict[str, tuple[str, TypeExpr]] = {}
        super().__init__(**kwargs)

    # ---- what Kailash reads

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The node's Kailash inputs, typed (``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``; ``Any`` else).

        A lowered node declares the names its connections and flow inputs arrive under (a collect
        port one per edge, typed as one item); a node made from an agent, its signature's inputs.
        """
        # Kailash asks again and again (building, validating, every execute): make them once.
        if self._parameters is None:
            self._parameters = self._make_parameters()
        return self._parameters

    def _make_parameters(self) -> dict[str, NodeParameter]:
        params: dict[str, NodeParameter] = {}
        self._input_types = {}
        wiring = self._settings.get("wiring", {})
        lowered = bool(self._settings.get("lowered"))
        flow_fed = self._settings.get("flow_inputs", {})
        for port in self._settings.get("node", {}).get("inputs", ()):
            name = port["name"]
            names = wiring.get(name)
            if names is None and lowered:
                continue  # nothing feeds it in the flow: it takes its default, as on the built-in scheduler
            collect = bool(port.get("collect", False))
            kind = _port_type(port.get("type", "any"), item=collect and names is not None)
            about = port.get("description", "")
            text = str(kind)
            for input_name in dict.fromkeys(names or [name]):
                if input_name in params:  # one output into several ports: declared for the first one
                    continue
                self._input_types[input_name] = (name, kind)
                params[input_name] = NodeParameter(
                    name=input_name,
                    type=_PYTHON_TYPES.get(kind.kind, Any),
                    # A collect port, or one fed under other names, is not required under its own name:
                    # Kailash's pre-run check knows only names. A flow input is checked by the node
                    # itself (naming the flow input), so `kailash validate` passes without parameters.
                    required=bool(port.get("required", True))
                    and not collect
                    and names in (None, [name])
                    and input_name not in flow_fed,
                    default=port.get("default"),
                    description=(f"{about} ({text})" if about else text)
                    + (f"; port {name!r}" if input_name != name else ""),
                    input=True,
                )
        return params

    def get_output_schema(self) -> dict[str, NodeParameter]:
        """The node's output ports; a port may be left out when the node does not produce it."""
        return {
            port["name"]: NodeParameter(
                name=port["name"],
                type=Any,
                required=False,
                description=port.get("description", "") or _type_text(port.get("type", "any")),
                output=True,
            )
            for port in self._settings.get("node", {}).get("outputs", ())
        }

    def _validate_config(self) -> None:
        """Nothing to coerce: the dagwright compiler checked the graph's types."""

    def validate_inputs(self, **kwargs: Any) -> dict[str, Any]:
        """Inputs checked against their ports' types, and passed through unchanged (never coerced).

        Kailash calls this before a run when ``connection_validation`` is ``"warn"`` or ``"strict"``:
        a value of the wrong type (a ``float`` sent into a ``list[str]`` input) is a ``TypeError``
        naming the node, the input and both types, which strict mode raises and warn mode logs.
        Kailash's own coercion would turn ``"abc"`` into ``['a', 'b', 'c']``, so none is done.
        """
        self.get_parameters()
        problems: list[str] = []
        for name, value in kwargs.items():
            declared = self._input_types.get(name)
            if declared is None or isinstance(value, NodeOutputs):
                continue
            misfit = value_misfit(value, declared[1])
            if misfit is not None:
                port = f" (port {declared[0]!r})" if declared[0] != name else ""
                problems.append(
                    f"input {name!r}{port} takes {declared[1]}, got {type(value).__name__} {value!r:.60}: {misfit}"
                )
        if problems:
            raise TypeError(f"node {str(self.id)!r}: " + "; ".join(problems))
        return dict(kwargs)

    def validate_outputs(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Outputs pass through unchanged; they need not be JSON (the built-in runtime does not require it)."""
        return outputs

    # ---- binding

    def bind(self, binding: object, *, policy: NodePolicy | None = None) -> None:
        """Attach the agent or function this node runs (and, optionally, its exact retry policy)."""
        self._binding = binding
        if policy is not None:
            self._bound_policy = policy
        self._prepared = None

    def _prepare(self) -> _Prepared:
        prepared = self._prepared
        if prepared is not None:
            return prepared
        settings = self._settings
        data = settings.get("node")
        if not isinstance(data, dict):
            raise ValueError(
                f"{type(self).__name__} {self.id!r} has no '{CONFIG_KEY}' config; make it with dagwright "
                "(flow.to_kailash(), WorkflowBuilder.add_agent(), agent.to_workflow_node())"
            )
        try:
            node = Graph.from_dict({"schema_version": 1, "name": "", "nodes": [data]}).nodes[0]
        except IRFormatError as exc:
            raise ValueError(f"{type(self).__name__} {self.id!r}: invalid '{CONFIG_KEY}.node' config: {exc}") from None
        given = {node.id: self._binding} if self._binding is not None else None
        binding = bind_nodes(Graph("", (node,)), given, registry=functions).get(node.id)
        factory = EXECUTORS.get(node.kind)
        if factory is None:
            raise ValueError(
                f"node {self.id!r}: no runtime support for kind {node.kind!r}; import the module that registers it"
            )
        policy = self._bound_policy if self._bound_policy is not None else policy_from_json(settings.get("policy"))
        executor = factory(node, binding)
        if policy.cache is not None:  # flow.configure(node, cache=...): answered from the cache as on the built-in
            from dagwright.ops.cache import cached_executor

            executor = cached_executor(executor, node, policy.cache)
        sources = {k: (str(v[0]), str(v[1])) for k, v in settings.get("sources", {}).items()}
        prepared = _Prepared(
            node,
            {k: list(v) for k, v in settings.get("wiring", {}).items()},
            sources,
            dict(settings.get("flow_inputs", {})),
            dict(settings.get("outputs", {})),
            policy,
            executor,
            bool(settings.get("lowered")),
            frozenset(k for k in READABLE_KEYS if node.input(k) is None),
            frozenset(settings.get("flat_inputs", ())),
        )
        if len(_OUTPUT_NAMES) > 100_000:  # ids of workflows long gone: start over rather than grow
            _OUTPUT_NAMES.clear()
        _OUTPUT_NAMES[str(self.id)] = frozenset(prepared.outputs.get(p.name, p.name) for p in node.outputs)
        self._prepared = prepared
        return prepared

    # ---- running

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        return await self.execute_async(**kwargs)

    async def execute_async(self, **runtime_inputs: Any) -> dict[str, Any]:
        """Gather the ports' values, run the node's executor under its policy, return its outputs.

        Within a ``run_on_kailash`` run of its workflow, a failure is recorded and returns no outputs,
        under the run's failure mode (:mod:`dagwright.backends.kailash.failures`); otherwise it raises.
        """
        guard = current_guard(self)
        if guard is None:
            return await self._execute(runtime_inputs)
        outputs: dict[str, Any] = await run_guarded(
            guard, str(self.id), lambda: self._execute(runtime_inputs), NodeOutputs
        )
        return outputs

    async def _execute(self, runtime_inputs: dict[str, Any]) -> dict[str, Any]:
        recorder = _recorder.get()
        node_id = str(self.id)
        record = NodeRecord(node_id, str(self._settings.get("node", {}).get("kind", "")))
        if recorder is not None:
            recorder.records[node_id] = record
        record.started_at = time.time()
        try:
            prepared = self._prepare()
            values = {k: v for k, v in self.config.items() if k != CONFIG_KEY and k not in prepared.readable}
            self._refuse_overrides(prepared, runtime_inputs)
            values.update(runtime_inputs)
            args, why_not = self._gather(prepared, values, recorder)
        except Exception as exc:
            self._fail(record, exc, 0)
        if why_not is not None:
            record.status = "skipped"
            record.skip_reason = why_not
            record.ended_at = time.time()
            if recorder is None:  # a raw Kailash run, which will list the node as completed: say what happened
                _log.info(
                    "dagwright node %r skipped (%s); Kailash lists it as completed with no outputs", node_id, why_not
                )
            return NodeOutputs(names=prepared.outputs)
        outputs = await self._run(prepared, args, record, recorder.run_id if recorder is not None else None)
        unknown = [k for k in outputs if prepared.node.output(k) is None]
        if unknown:
            self._fail(
                record, ValueError(f"returned unknown output(s) {', '.join(map(repr, unknown))}"), record.attempts
            )
        record.outputs = dict(outputs)
        record.status = "done"
        record.ended_at = time.time()
        return NodeOutputs(outputs, prepared.outputs)

    def _refuse_overrides(self, prepared: _Prepared, runtime_inputs: Mapping[str, Any]) -> None:
        """A Kailash-style per-run setting (``parameters={"qa": {"model": "gpt-4o"}}``) is refused, naming it.

        The agent runs with the settings it was built with; a setting that only seemed to apply
        would give answers from another model than the one asked for.
        """
        if prepared.node.kind != "agent":
            return
        inputs = {p.name for p in prepared.node.inputs} | set(self.get_parameters()) | prepared.flat_inputs
        given = sorted(k for k in runtime_inputs if k in SETTING_KEYS and k not in inputs)
        if given:
            raise ValueError(
                f"node {str(self.id)!r}: {', '.join(map(repr, given))} is an agent setting, which a run cannot "
                f"change (Kailash parameters feed the node's inputs: {_listing(sorted(self.get_parameters()))}); "
                "set it in the agent's config when the flow is built"
            )

    async def _run(self, prepared: _Prepared, args: dict[str, Any], record: NodeRecord, run_id: str | None) -> Any:
        # The attempt loop every back end runs: the same policy, the same attempts.
        record.status = "running"
        try:
            return await attempt_node(
                prepared.executor, prepared.policy, args, run_id or uuid.uuid4().hex, prepared.node, record
            )
        except asyncio.CancelledError:
            record.status = "cancelled"
            record.ended_at = time.time()
            raise
        except NodeExecutionError as failure:
            self._fail(record, failure.error, failure.attempts)

    def _fail(self, record: NodeRecord, error: BaseException, attempts: int) -> NoReturn:
        record.status = "failed"
        record.error = str(error) or type(error).__name__
        record.error_type = type(error).__name__
        record.ended_at = time.time()
        failure = NodeExecutionError(record.node_id, error, attempts)
        failure.__cause__ = error
        record.error_location = failure.location
        # Kailash's runtimes put "Node 'id' (execution) failed: " in front of it themselves.
        raise KailashNodeExecutionError(f"{record.error_type}: {record.error}") from failure

    def _gather(
        self, prepared: _Prepared, values: dict[str, Any], recorder: RunRecorder | None
    ) -> tuple[dict[str, Any], str | None]:
        """Each port's value, as the built-in scheduler assembles it, or why the node cannot run."""
        args: dict[str, Any] = {}
        for port in prepared.node.inputs:
            names = prepared.wiring.get(port.name)
            if names is None:
                # Nothing feeds it in a lowered flow: a value under its name is a flat parameter meant for others.
                value = values.get(port.name, _ABSENT) if not prepared.lowered else _ABSENT
                if value is not _ABSENT:
                    args[port.name] = value
                elif port.collect:
                    args[port.name] = []
                elif port.default is not MISSING:
                    args[port.name] = thaw_json(port.default)
                elif port.required:
                    raise ValueError(
                        f"node {self.id!r}: no value for required input {port.name!r}; pass "
                        f"parameters={{{str(self.id)!r}: {{{port.name!r}: ...}}}}"
                    )
                continue
            found = [self._value(prepared, name, values) for name in names]
            if port.collect:
                args[port.name] = [v for v in found if v is not _ABSENT]
                continue
            value, name = found[0], names[0]
            if value is not _ABSENT:
                args[port.name] = value
            elif name in prepared.flow_inputs:
                if port.default is not MISSING:
                    args[port.name] = thaw_json(port.default)
                elif port.required:
                    raise ValueError(
                        f"node {self.id!r}: flow input {prepared.flow_inputs[name]!r} was not given; pass "
                        f"parameters={{{str(self.id)!r}: {{{name!r}: ...}}}}"
                    )
            elif port.required:
                source, source_port = prepared.sources.get(name, ("?", name))
                upstream = recorder.records.get(source) if recorder is not None else None
                reason = upstream.status if upstream is not None and upstream.status != "done" else "did not produce it"
                return args, f"input {port.name!r} has no value: {source}.{source_port} {reason}"
            elif port.default is not MISSING:
                args[port.name] = thaw_json(port.default)
        return args, None

    @staticmethod
    def _value(prepared: _Prepared, name: str, values: Mapping[str, Any]) -> Any:
        flow_input = prepared.flow_inputs.get(name)
        # AsyncLocalRuntime hands flat parameters to every node under their own names: a flow input's.
        value = values.get(flow_input, _ABSENT) if flow_input is not None else _ABSENT
        if value is _ABSENT:
            value = values.get(name, _ABSENT)
        if isinstance(value, NodeOutputs):
            # AsyncLocalRuntime hands over a whole result for a missing output or one named "result".
            source = prepared.sources.get(name)
            if source is not None:
                return value.ports.get(source[1], _ABSENT)
        return value


# The Python type Kailash is told for each kind of port type; any other kind is ``Any`` to Kailash.
_PYTHON_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "bytes": bytes,
    "list": list,
    "dict": dict,
}


def _port_type(data: Any, *, item: bool) -> TypeExpr:
    """A port's type from its JSON form (``item``: the type of one item of a list, for a collect input)."""
    try:
        kind = from_json(data)
    except (TypeError, ValueError, KeyError):
        return ANY
    if item:
        return kind.args[0] if kind.kind == "list" and kind.args else ANY
    return kind


def _type_text(data: Any) -> str:
    try:
        return str(from_json(data))
    except (TypeError, ValueError, KeyError):
        return str(data)


@register_node()
class DagwrightAgentNode(DagwrightNodeBase):
    """A dagwright agent: one structured LLM call (same prompt, parsing and retries as dagwright's runtime)."""


@register_node()
class DagwrightFunctionNode(DagwrightNodeBase):
    """A dagwright function node: a typed Python function, sync (in a worker thread) or async."""


@register_node()
class DagwrightNode(DagwrightNodeBase):
    """Any other dagwright node kind (coordination nodes and kinds registered later)."""


# Each type is also registered under its qualified name, which an exported YAML file writes: a
# process that reads the file without importing this module then gets Kailash's "Node
# 'dagwright.backends.kailash.nodes.DagwrightAgentNode' not found in registry", which says what
# to import. (Kailash resolves a node type only through its registry: it imports nothing for it.)
for _registered in (DagwrightAgentNode, DagwrightFunctionNode, DagwrightNode):
    NodeRegistry.register(_registered, alias=qualified_type(_registered.__name__))


# --------------------------------------------------------------------------- agents and builders


def _agent_config(agent: object, node_id: str) -> tuple[dict[str, Any], object]:
    """The lowered config of a one-agent node, and the agent to bind (None for a bare signature)."""
    if not isinstance(node_id, str) or not node_id:
        raise ValueError(f"a Kailash node id must be a non-empty string, got {node_id!r}")
    flow = FlowBuilder(node_id)
    flow.add_agent(node_id, agent)
    node = flow.to_graph().node(node_id)
    binding = agent if hasattr(agent, "invoke") and hasattr(agent, "signature") else None
    data = node.to_dict(locations=False)
    return {CONFIG_KEY: {"node": data}, **readable_config(data)}, binding


def agent_node(agent: object, node_id: str) -> DagwrightAgentNode:
    """A Kailash node instance running ``agent``; its ``get_parameters()`` are the signature's inputs."""
    config, binding = _agent_config(agent, node_id)
    return DagwrightAgentNode(_node_id=node_id, _binding=binding, **config)


# --------------------------------------------------------------------------- ports, for connections by name

_Ports = tuple[list[str], list[str]]
"""A node's Kailash input names and output names (an empty list: the node declares none)."""


def _settings_ports(settings: Any) -> _Ports:
    """A dagwright node's Kailash input and output names, read from its config (no instance needed)."""
    if not isinstance(settings, Mapping):
        return [], []
    node = settings.get("node", {})
    wiring = settings.get("wiring", {})
    renamed = settings.get("outputs", {})
    # A port wired under other names (a collect port, one output into several ports) reads only
    # those names: a value sent under the port's own name would never arrive, so do not offer it.
    inputs = [p["name"] for p in node.get("inputs", ()) if wiring.get(p["name"], [p["name"]]) == [p["name"]]]
    outputs = [renamed.get(p["name"], p["name"]) for p in node.get("outputs", ())]
    return inputs, outputs


def _declared(node: Any, method: str) -> list[str]:
    """The names a Kailash node declares through ``get_parameters`` or ``get_output_schema``."""
    try:
        found = getattr(node, method)()
    except Exception:  # a node that cannot describe itself declares nothing; Kailash checks it at build()
        return []
    return [str(name) for name in found] if isinstance(found, Mapping) else []


def _instance_ports(node: Any) -> _Ports:
    """The input and output names of a node instance, dagwright's or Kailash's."""
    if isinstance(node, DagwrightNodeBase):
        return _settings_ports(node.config.get(CONFIG_KEY))
    inputs = _declared(node, "get_parameters")
    code = getattr(node, "code", None)
    if not inputs and isinstance(node, PythonCodeNode) and isinstance(code, str):
        inputs = _code_inputs(code)
    return inputs, _declared(node, "get_output_schema")


def _code_inputs(code: str) -> list[str]:
    """The variables a ``PythonCodeNode``'s code reads and never sets, in order: the inputs it takes.

    A ``PythonCodeNode`` made from code declares no parameters (declaring ``input_types`` in a
    builder's config breaks its run: the runtime hands the config to the code, and the code
    refuses type objects), yet it runs the code with its inputs as variables.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    read: list[tuple[int, int, str]] = []
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                read.append((node.lineno, node.col_offset, node.id))
            else:
                bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return list(dict.fromkeys(name for _, _, name in sorted(read) if name not in bound))


def _probe(node_class: Any, node_id: str, config: Mapping[str, Any]) -> Any:
    """A throwaway instance of a Kailash node, to read its declared ports; None when it cannot be made.

    Kailash's own ``build()`` makes nodes the same way (``name=`` for nodes that take one,
    ``_node_id=`` otherwise) and makes throwaway ones too, to check their parameters.
    """
    kwargs = dict(config)
    try:
        takes = inspect.signature(node_class.__init__).parameters
        if "name" in takes and "_node_id" not in takes:
            kwargs.setdefault("name", node_id)
            return node_class(**kwargs)
        return node_class(_node_id=node_id, **kwargs)
    except Exception:
        return None


def _listing(names: Sequence[str]) -> str:
    return ", ".join(map(repr, names)) if names else "none declared"


def _subworkflow_mappings(name: str, workflow: Any) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``WorkflowNode``'s ``input_mapping`` and ``output_mapping`` for the workflow that node ``name`` runs.

    Names are ``{node}_{port}``, as ``WorkflowNode`` names them itself; given explicitly,
    they work for node ids with ``_`` in them too (its own guess splits at the first ``_``).
    """
    fed = {(c.target_node, c.target_input) for c in workflow.connections}
    inputs: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for node_id in workflow.nodes:
        node_inputs, node_outputs = _instance_ports(workflow.get_node(node_id))
        for port in node_inputs:
            if (node_id, port) not in fed:
                # Optional here: a value may come through ``inputs`` instead; the inner node says what is missing.
                _claim(inputs, name, f"{node_id}_{port}", {"node": node_id, "parameter": port, "required": False})
        for port in node_outputs:
            _claim(outputs, name, f"{node_id}_{port}", {"node": node_id, "output": port})
    return inputs, outputs


def _claim(mapping: dict[str, dict[str, Any]], name: str, flat: str, target: dict[str, Any]) -> None:
    taken = mapping.get(flat)
    if taken is not None:
        side = "input" if "parameter" in target else "output"
        port = target.get("parameter", target.get("output"))
        raise ValueError(
            f"add_subworkflow({name!r}): {side} name {flat!r} would mean both "
            f"{taken['node']}.{taken.get('parameter', taken.get('output'))} and {target['node']}.{port}; "
            "rename one of those nodes"
        )
    mapping[flat] = target


class WorkflowBuilder(KailashWorkflowBuilder):  # type: ignore[misc]
    """Kailash's ``WorkflowBuilder`` plus dagwright agents.

    ::

        workflow = WorkflowBuilder()
        workflow.add_agent(research_agent, "research")
        workflow.add_node("PythonCodeNode", "shout", {"code": "result = text.upper()"})
        workflow.add_connection("research", "summary", "shout", "text")
        with LocalRuntime() as runtime:
            results, run_id = runtime.execute(workflow.build(), parameters={"research": {"topic": "AI"}})

    Also: ``add_node_instance(agent.to_workflow_node("id"))`` (the node keeps its id),
    ``add_connection("a", "b")`` (outputs to inputs of the same name), ``add_connections([...])``
    and ``add_subworkflow("name", other.build())``.
    """

    def __init__(self, edge_config: dict[str, Any] | None = None) -> None:
        super().__init__(edge_config)
        self._dagwright_bindings: dict[str, tuple[object, NodePolicy | None]] = {}

    def add_agent(self, agent: object, node_id: str | None = None) -> str:
        """Add an agent (or a bare signature) as a ``DagwrightAgentNode``; returns the node id.

        ``node_id`` defaults to the agent's name. The agent itself runs when the workflow does.
        """
        if node_id is None:
            node_id = getattr(agent, "name", None)
            if not isinstance(node_id, str) or not node_id:
                raise ValueError("add_agent() needs a node_id for an agent without a name")
        config, binding = _agent_config(agent, node_id)
        added: str = self.add_node("DagwrightAgentNode", node_id, config)
        if binding is not None:
            self.bind(added, binding)
        return added

    # ---- node instances

    def add_node_instance(self, node_instance: Any, node_id: str | None = None, *, _internal: bool = False) -> str:
        """Add a node instance; returns its node id.

        A dagwright node (``agent.to_workflow_node("processing_step")``) keeps the id it was
        made with unless ``node_id`` says otherwise, so ``parameters={"processing_step": ...}``
        reach it; it runs the agent it was made from. Other instances go to Kailash unchanged
        (without ``node_id`` Kailash gives them a random id).
        """
        if not isinstance(node_instance, DagwrightNodeBase):
            # Straight to Kailash, one call deep as from its own builder: its advice about
            # instances then points at the caller's line.
            added: str = super()._add_node_instance(node_instance, node_id, _internal=_internal)
            return added
        return self._add_node_instance(node_instance, node_id, _internal=_internal)

    def _add_node_instance(self, node_instance: Any, node_id: str | None, *, _internal: bool = False) -> str:
        # Kailash's add_node(instance) and add_node(instance, id) come here too.
        if not isinstance(node_instance, DagwrightNodeBase):
            added: str = super()._add_node_instance(node_instance, node_id, _internal=_internal)
            return added
        if node_id is None:
            node_id = node_instance.id
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"add_node_instance(): a Kailash node id must be a non-empty string, got {node_id!r}")
        # Kailash replaces an instance under a taken id silently; say so instead, as add_node() does.
        if node_id in self.nodes:
            raise WorkflowValidationError(f"Node ID '{node_id}' already exists in workflow")
        # Kailash advises adding nodes by type name instead; for a dagwright node that would drop
        # the agent it carries, so the instance is the intended way and the advice is left out.
        kept: str = super()._add_node_instance(node_instance, node_id, _internal=True)
        return kept

    # ---- connections

    def add_connection(
        self,
        from_node: str,
        from_output: str | None = None,
        to_node: str | None = None,
        to_input: str | None = None,
    ) -> WorkflowBuilder:
        """Connect two nodes: Kailash's four-argument form, or two nodes by their port names.

        ``add_connection("research", "summary", "shout", "text")`` is Kailash's own call.
        ``add_connection("research", "analysis")`` connects every output of ``research`` to the
        input of ``analysis`` with the same name (the ports of dagwright nodes; for Kailash's
        own nodes what their ``get_parameters()`` and ``get_output_schema()`` declare). It
        raises ``ValueError`` for an unknown node or when no name matches. Returns ``self``.
        """
        if to_node is None and to_input is None:
            if from_output is None:
                raise TypeError(
                    f"add_connection({from_node!r}): name the target node, add_connection({from_node!r}, "
                    "'to_node'), or the ports, add_connection(from_node, from_output, to_node, to_input)"
                )
            return self._connect_by_name(from_node, from_output)
        if from_output is None and to_input is None:  # add_connection("a", to_node="b")
            return self._connect_by_name(from_node, str(to_node))
        missing = [
            n for n, v in (("from_output", from_output), ("to_node", to_node), ("to_input", to_input)) if v is None
        ]
        if missing:
            raise TypeError(
                f"add_connection({from_node!r}, ...): the four-argument form needs {', '.join(missing)} too; "
                "or give two node ids to connect ports of the same name"
            )
        super().add_connection(from_node, from_output, to_node, to_input)
        return self

    def add_connections(self, connections: Iterable[Sequence[str]]) -> WorkflowBuilder:
        """Add several connections: ``(from_node, to_node)`` items connect by name (see :meth:`add_connection`),
        ``(from_node, from_output, to_node, to_input)`` items connect the ports given.

        All are added or none: a malformed item (``TypeError``, with its position) is found
        before any is added, and a failing one removes those added before it. Returns ``self``.
        Connecting by name raises ``ValueError`` as :meth:`add_connection` does, with the item's position.
        """
        items = list(connections)
        for i, item in enumerate(items):
            if not (isinstance(item, tuple | list) and len(item) in (2, 4) and all(isinstance(p, str) for p in item)):
                raise TypeError(
                    f"add_connections(): item {i} is {item!r}; each item must be (from_node, to_node) or "
                    "(from_node, from_output, to_node, to_input), all strings"
                )
        with self._all_or_none():
            for i, item in enumerate(items):
                try:
                    self.add_connection(*item)
                except ValueError as exc:  # dagwright's own errors: say which item (Kailash's name the nodes)
                    raise ValueError(f"add_connections(), item {i} {tuple(item)!r}: {exc}") from exc
        return self

    def _connect_by_name(self, from_node: str, to_node: str) -> WorkflowBuilder:
        call = f"add_connection({from_node!r}, {to_node!r})"
        for node_id in (from_node, to_node):
            self._require_node(node_id, call)
        if from_node == to_node:
            raise ValueError(f"{call}: a node cannot be connected to itself")
        outputs = self._ports(from_node)[1]
        inputs = self._ports(to_node)[0]
        matches = [name for name in outputs if name in set(inputs)]
        if not matches:
            out, into = (outputs or ["output"])[0], (inputs or ["input"])[0]
            raise ValueError(
                f"{call}: no output of {from_node!r} has the name of an input of {to_node!r}. "
                f"Outputs of {from_node!r}: {_listing(outputs)}. Inputs of {to_node!r}: {_listing(inputs)}. "
                f"Connect the ports explicitly: add_connection({from_node!r}, {out!r}, {to_node!r}, {into!r}), "
                f"or connect({from_node!r}, {to_node!r}, mapping={{{out!r}: {into!r}}})"
            )
        with self._all_or_none():
            for name in matches:
                super().add_connection(from_node, name, to_node, name)
        return self

    def _require_node(self, node_id: str, call: str) -> None:
        if node_id in self.nodes:
            return
        close = suggest(node_id, map(str, self.nodes)) if isinstance(node_id, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(map(repr, self.nodes)) or "none yet"
        raise ValueError(f"{call}: the workflow has no node {node_id!r}{hint} (its nodes: {known})")

    def _ports(self, node_id: str) -> _Ports:
        """The input and output names of a node added to this builder."""
        info = self.nodes[node_id]
        if "instance" in info:
            return _instance_ports(info["instance"])
        config = info.get("config") or {}
        node_class = info.get("class")
        if node_class is None:
            try:
                node_class = NodeRegistry.get(info["type"])
            except Exception:  # an unknown type: Kailash reports it at build()
                return [], []
        if isinstance(node_class, type) and issubclass(node_class, DagwrightNodeBase):
            return _settings_ports(config.get(CONFIG_KEY))
        # Kailash's nodes tell their ports only once made.
        probe = _probe(node_class, node_id, config)
        return _instance_ports(probe) if probe is not None else ([], [])

    @contextlib.contextmanager
    def _all_or_none(self) -> Iterator[None]:
        """Connections added inside are all kept, or all removed when one fails: no half-wired workflow."""
        count = len(self.connections)
        try:
            yield
        except BaseException:
            del self.connections[count:]
            raise

    # ---- sub-workflows

    def add_subworkflow(self, name: str, workflow: Any) -> str:
        """Add a whole workflow (built, or a builder) as one node ``name`` of this one; returns ``name``.

        The node is Kailash's own ``WorkflowNode``: it runs the inner workflow with a
        ``LocalRuntime`` of its own each time it runs (agents bound in the inner workflow
        run as they are).

        Its inputs are ``{node}_{input}`` for each input of an inner node that no inner
        connection feeds (``add_connection("prep", "result", "agent", "research_topic")``,
        or ``parameters={"agent": {"research_topic": ...}}``), plus ``inputs``,
        ``{inner node: {input: value}}``, for values the inner nodes do not declare (a
        ``PythonCodeNode``'s variables).

        Its outputs are ``{node}_{output}`` for each output every inner node declares
        (``add_connection("agent", "research_findings", "shout", "text")``; the results read
        ``results["agent"]["research_findings"]``), plus ``results``: every inner node's
        outputs by node id.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"add_subworkflow(): a Kailash node id must be a non-empty string, got {name!r}")
        if isinstance(workflow, KailashWorkflowBuilder):
            workflow = workflow.build()
        if not isinstance(workflow, Workflow):
            raise TypeError(
                f"add_subworkflow({name!r}, ...): expected a built Kailash workflow (builder.build()), "
                f"got {type(workflow).__name__}"
            )
        inputs, outputs = _subworkflow_mappings(name, workflow)
        config = {"workflow": workflow, "input_mapping": inputs, "output_mapping": outputs}
        added: str = self.add_node(WorkflowNode.__name__, name, config)
        return added

    # ---- binding and building

    def bind(self, node_id: str, binding: object, *, policy: NodePolicy | None = None) -> WorkflowBuilder:
        """Attach the agent or function (and retry policy) that a dagwright node runs, when it is built."""
        if node_id not in self.nodes:
            raise KeyError(f"bind({node_id!r}): the workflow has no node {node_id!r}; add it first")
        self._dagwright_bindings[node_id] = (binding, policy)
        return self

    def build(self, workflow_id: str | None = None, **kwargs: Any) -> Any:
        """Kailash's ``build()``, with the bound agents and functions attached to their nodes."""
        workflow = super().build(workflow_id, **kwargs)
        for node_id, (binding, policy) in self._dagwright_bindings.items():
            node = workflow.get_node(node_id)
            if isinstance(node, DagwrightNodeBase):
                node.bind(binding, policy=policy)
        return workflow

    def clear(self) -> WorkflowBuilder:
        super().clear()
        self._dagwright_bindings.clear()
        return self
