"""Function nodes: a typed Python function, sync or async.

Async functions are awaited on the event loop; sync functions run in a worker
thread so a slow one never blocks the other nodes. What flows between nodes
is JSON data (an agent's reply, a checkpoint row), so where a port's type
involves a pydantic model, a parameter receives model instances (validated into
its annotation on the way in) and a returned model is dumped to JSON data on the
way out. What a function returns is checked against its output ports' types
at the node's boundary.
"""

from __future__ import annotations

import asyncio
import inspect
import reprlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dagwright.compiler.ir import Node
from dagwright.compiler.types import TypeExpr, callable_hints, exact_fits, value_misfit
from dagwright.execution.executor import Executor, NodeContext

__all__ = ["DirectCall", "direct_call", "function_executor", "is_sync_function_executor"]


@dataclass(frozen=True, slots=True)
class DirectCall:
    """An async function node with one output port, as the built-in scheduler calls it itself: ``fn``'s
    coroutine awaited directly (no executor coroutine around it, no :class:`NodeContext`), its value checked
    with :meth:`check` unless its type is in ``fits`` (None: the port's type needs no check), and returned
    as ``{port: value}``. The same as what :func:`function_executor` makes for the node does."""

    fn: Callable[..., Awaitable[Any]]
    port: str
    declared: TypeExpr
    fits: frozenset[type] | None
    node_id: str

    def check(self, value: object) -> None:
        """Raise the TypeError the node's executor raises when ``value`` does not fit the output's type."""
        _check_output(self.node_id, self.port, self.declared, value)

    def executor(self) -> Executor:
        """The node's executor: what :func:`function_executor` makes for it."""
        return _async_one(self.fn, self.port, self.declared, self.fits, self.node_id)


def direct_call(node: Node, binding: object) -> DirectCall | None:
    """How to call ``binding`` directly for ``node``, when it is an async function whose value is the node's one
    output and whose parameters and output take no pydantic model; None otherwise."""
    if not callable(binding) or len(node.outputs) != 1 or node.config.get("returns") == "dict":
        return None
    if not (inspect.iscoroutinefunction(binding) or inspect.iscoroutinefunction(type(binding).__call__)):
        return None
    if _has_model(node.outputs[0].type) or any(_has_model(p.type) for p in node.inputs):
        return None
    out = node.outputs[0]
    return DirectCall(binding, out.name, out.type, exact_fits(out.type), node.id)


def function_executor(node: Node, binding: object) -> Executor:
    """The executor of a ``function`` node bound to a callable.

    What the function returns is checked against its output ports' declared types (a ``TypeError``
    naming the node, the output, the type and the value fails the node), so a wrong value stops at
    the node that produced it instead of flowing on into its consumers.
    """
    if not callable(binding):
        raise TypeError(
            f"function node {node.id!r} is bound to {type(binding).__name__}, not a callable; bind its "
            f"function {node.config.get('function')!r} through a FunctionRegistry"
        )
    direct = direct_call(node, binding)
    if direct is not None:  # the common case, decided before building what the others need
        return direct.executor()
    fn: Callable[..., Any] = binding
    ports = [p.name for p in node.outputs]
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
    to_models = _model_inputs(node, fn)
    dumps = any(_has_model(p.type) for p in node.outputs)
    if to_models is not None or dumps:
        fn = _with_models(node, fn, to_models or {}, dumps, is_async)
    single = len(ports) == 1 and node.config.get("returns") != "dict"
    if is_async and single:
        # Decided once here rather than per call: a function taking or returning models.
        out = node.outputs[0]
        return _async_one(fn, out.name, out.type, exact_fits(out.type), node.id)
    checks = _output_checks(node)

    def shape(result: Any) -> dict[str, Any]:
        if not ports:
            return {}
        if single:
            return {ports[0]: result}
        # A TypedDict return: one port per key, every key required.
        if not isinstance(result, dict):
            raise TypeError(
                f"function node {node.id!r} must return a dict with keys {ports}, got {type(result).__name__}"
            )
        missing = [p for p in ports if p not in result]
        if missing:
            raise TypeError(f"function node {node.id!r} returned no value for {', '.join(map(repr, missing))}")
        return {p: result[p] for p in ports}

    def outputs_of(result: Any) -> dict[str, Any]:
        outputs = shape(result)
        for port, declared, fits in checks:
            value = outputs[port]
            if type(value) not in fits:
                _check_output(node.id, port, declared, value)
        return outputs

    if is_async:

        async def run_async(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
            return outputs_of(await fn(**inputs))

        return run_async

    def call(inputs: dict[str, Any]) -> dict[str, Any]:
        # In the worker thread: checking a large value does not hold up the event loop.
        return outputs_of(fn(**inputs))

    async def run_sync(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, call, inputs)

    return run_sync


# A checked output port: its name, its declared type, and the exact types that fit it without a closer look.
_Check = tuple[str, TypeExpr, frozenset[type]]


def _output_checks(node: Node) -> tuple[_Check, ...]:
    """The output ports whose values must be checked, decided once per executor: ``Any`` and named classes,
    which :func:`value_misfit` takes whatever they hold, cost nothing at run time."""
    found: list[_Check] = []
    for port in node.outputs:
        fits = exact_fits(port.type)
        if fits is not None:
            found.append((port.name, port.type, fits))
    return tuple(found)


def _async_one(
    fn: Callable[..., Any], port: str, declared: TypeExpr, fits: frozenset[type] | None, node_id: str
) -> Executor:
    """The executor of an async function with one output port; ``fits`` is :func:`exact_fits` of its type."""
    if fits is None:  # Any, or a named class: nothing to check

        async def run_async_one(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
            return {port: await fn(**inputs)}

        return run_async_one

    async def run_async_one_checked(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        value = await fn(**inputs)
        # One set lookup for a value of an exact fitting type (an int for an int port): the usual case.
        if type(value) not in fits:
            _check_output(node_id, port, declared, value)
        return {port: value}

    return run_async_one_checked


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4
_SHORT.maxlevel = 3
_MAX_WHY = 200


def _check_output(node_id: str, port: str, declared: TypeExpr, value: object) -> None:
    """Raise a TypeError when ``value``, returned for output ``port``, does not fit its ``declared`` type."""
    why = value_misfit(value, declared)
    if why is None:
        return
    if len(why) > _MAX_WHY:  # value_misfit quotes the value: a huge one must not make a huge message
        why = why[:_MAX_WHY] + "..."
    raise TypeError(
        f"function node {node_id!r} returned {_SHORT.repr(value)} ({type(value).__name__}) for output {port!r}, "
        f"declared {declared}: {why}"
    )


def is_sync_function_executor(executor: object) -> bool:
    """Is ``executor`` one this module made for a sync function (which waits on nothing but its own work)?"""
    return getattr(executor, "__module__", "") == __name__ and getattr(executor, "__name__", "") == "run_sync"


def _has_model(t: TypeExpr) -> bool:
    if not t.args:  # most ports: no generator for an empty any()
        return t.kind == "model"
    return t.kind == "model" or any(_has_model(a) for a in t.args)


def _model_inputs(node: Node, fn: Callable[..., Any]) -> dict[str, Any] | None:
    """A pydantic validator per parameter whose type involves a model, or None when none does."""
    names = [p.name for p in node.inputs if _has_model(p.type)]
    if not names:
        return None
    try:
        hints = callable_hints(fn)
    except Exception as exc:  # a function bound from IR JSON whose annotations do not evaluate here
        raise TypeError(f"function node {node.id!r}: cannot evaluate the annotations of its function: {exc}") from None
    from pydantic import TypeAdapter

    adapters = {name: TypeAdapter(hints[name]) for name in names if name in hints}
    return adapters or None


def _with_models(
    node: Node, fn: Callable[..., Any], adapters: dict[str, Any], dumps: bool, is_async: bool
) -> Callable[..., Any]:
    """``fn`` taking model instances for the parameters in ``adapters`` and, with ``dumps``, returning JSON data."""
    from pydantic import ValidationError

    types = {p.name: p.type for p in node.inputs}

    def convert(inputs: dict[str, Any]) -> dict[str, Any]:
        converted = dict(inputs)
        for name, adapter in adapters.items():
            if name in converted:
                try:
                    converted[name] = adapter.validate_python(converted[name])
                except ValidationError as exc:
                    errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}" for e in exc.errors())
                    raise TypeError(
                        f"function node {node.id!r}: input {name!r} does not fit {types[name]}: {errors}"
                    ) from None
        return converted

    finish = _json_data if dumps else _same

    if is_async:

        async def call_async(**inputs: Any) -> Any:
            return finish(await fn(**convert(inputs)))

        return call_async

    def call(**inputs: Any) -> Any:
        return finish(fn(**convert(inputs)))

    return call


def _same(value: Any) -> Any:
    return value


def _json_data(value: Any) -> Any:
    """``value`` with every pydantic model in it dumped to JSON data (tuples become lists)."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_json_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_data(v) for k, v in value.items()}
    return value
