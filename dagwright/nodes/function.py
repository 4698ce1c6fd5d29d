"""Function nodes: a typed Python function, sync or async.

Async functions are awaited on the event loop; sync functions run in a worker
thread so a slow one never blocks the other nodes.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from dagwright.compiler.ir import Node
from dagwright.nodes.base import Executor, NodeContext

__all__ = ["function_executor"]


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
