"""Function nodes: a typed Python function, sync or async.

Async functions are awaited on the event loop; sync functions run in a worker
thread so a slow one never blocks the other nodes. What flows between nodes
is JSON data (an agent's reply, a checkpoint row), so where a port's type
involves a pydantic model, a parameter receives model instances (validated into
its annotation on the way in) and a returned model is dumped to JSON data on the
way out.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from dagwright.compiler.ir import Node
from dagwright.compiler.types import TypeExpr, callable_hints
from dagwright.execution.executor import Executor, NodeContext

__all__ = ["function_executor", "is_sync_function_executor"]


def function_executor(node: Node, binding: object) -> Executor:
    """The executor of a ``function`` node bound to a callable."""
    if not callable(binding):
        raise TypeError(
            f"function node {node.id!r} is bound to {type(binding).__name__}, not a callable; bind its "
            f"function {node.config.get('function')!r} through a FunctionRegistry"
        )
    fn: Callable[..., Any] = binding
    ports = [p.name for p in node.outputs]
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
    to_models = _model_inputs(node, fn)
    dumps = any(_has_model(p.type) for p in node.outputs)
    if to_models is not None or dumps:
        fn = _with_models(node, fn, to_models or {}, dumps, is_async)

    def shape(result: Any) -> dict[str, Any]:
        if not ports:
            return {}
        if len(ports) == 1 and node.config.get("returns") != "dict":
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

    if is_async:
        if len(ports) == 1 and node.config.get("returns") != "dict":
            # The common case, decided once here rather than per call: one output port.
            port = ports[0]

            async def run_async_one(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
                return {port: await fn(**inputs)}

            return run_async_one

        async def run_async(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
            return shape(await fn(**inputs))

        return run_async

    async def run_sync(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return shape(await loop.run_in_executor(None, functools.partial(fn, **inputs)))

    return run_sync


def is_sync_function_executor(executor: object) -> bool:
    """Is ``executor`` one this module made for a sync function (which waits on nothing but its own work)?"""
    return getattr(executor, "__module__", "") == __name__ and getattr(executor, "__name__", "") == "run_sync"


def _has_model(t: TypeExpr) -> bool:
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
