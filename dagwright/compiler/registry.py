"""Resolving function references of a graph loaded from JSON.

A function node stores ``{"function": "package.module:qualname"}``. Loading a
graph never imports anything; binding its functions goes through a
:class:`FunctionRegistry`: functions registered explicitly, plus modules the
caller allows to be imported. Everything else is a clear error.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dagwright.compiler.ir import Graph, function_ref_problem
from dagwright.compiler.suggest import suggest

__all__ = ["FunctionRegistry", "UnresolvedReferenceError", "function_ref"]


class UnresolvedReferenceError(LookupError):
    """A function reference that the registry does not know and may not import."""


def function_ref(fn: Callable[..., Any]) -> str:
    """The reference stored in the IR for ``fn``: ``module:qualname``.

    A ``functools.partial`` and a callable object cannot be rebuilt from an import:
    their references (``module:f(partial)``, ``module:Class()``) name what they wrap
    but resolve only through a registry they were registered in, never to the bare
    function or the class.
    """
    if isinstance(fn, functools.partial):
        return f"{function_ref(fn.func)}(partial)"
    if not (inspect.isroutine(fn) or isinstance(fn, type)):  # an instance of a class with __call__
        return f"{type(fn).__module__}:{type(fn).__qualname__}()"
    module = getattr(fn, "__module__", None) or "<unknown>"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__qualname__
    return f"{module}:{qualname}"


class FunctionRegistry:
    """Maps references to callables.

    ``functions`` are registered up front (by their own reference, or under the
    keys of a mapping); ``allow`` lists modules (and their submodules) from which
    references may be imported on demand.
    """

    def __init__(
        self,
        functions: Mapping[str, Callable[..., Any]] | Iterable[Callable[..., Any]] = (),
        *,
        allow: Iterable[str] = (),
    ) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}
        self._allow = tuple(allow)
        if isinstance(functions, Mapping):
            for name, fn in functions.items():
                self.register(fn, name)
        else:
            for fn in functions:
                self.register(fn)

    def register(self, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        """Register ``fn`` under ``name`` (default: its own reference); usable as a decorator."""
        if not callable(fn):
            raise TypeError(f"only callables can be registered, got {fn!r}")
        self._functions[name or function_ref(fn)] = fn
        return fn

    def allowed(self, module: str) -> bool:
        """May ``module`` be imported to resolve a reference?"""
        return any(module == a or module.startswith(a + ".") for a in self._allow)

    def resolve(self, ref: str, *, node: str | None = None) -> Callable[..., Any]:
        """The callable for ``ref``; raises :class:`UnresolvedReferenceError` naming the node."""
        found = self._functions.get(ref)
        if found is not None:
            return found
        where = f"node {node!r}: " if node else ""
        module, _, qualname = ref.partition(":")
        if not qualname:
            raise UnresolvedReferenceError(f"{where}function reference {ref!r} is not of the form 'module:name'")
        # Graphs built in code skip the loader's check: refuse here too, before the module is imported.
        problem = function_ref_problem(ref)
        if problem is not None:
            raise UnresolvedReferenceError(f"{where}function reference {ref!r} is not valid: {problem}")
        if not self.allowed(module):
            close = suggest(ref, self._functions)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnresolvedReferenceError(
                f"{where}unknown function {ref!r}{hint}: register it, or allow its module with "
                f"FunctionRegistry(allow=[{module!r}])"
            )
        if qualname.endswith(("()", "(partial)")):
            what = "a callable object" if qualname.endswith("()") else "a functools.partial"
            raise UnresolvedReferenceError(
                f"{where}{ref!r} is {what}, which no import rebuilds: register it, FunctionRegistry({{{ref!r}: ...}})"
            )
        try:
            obj: Any = importlib.import_module(module)
        except ImportError as exc:
            raise UnresolvedReferenceError(f"{where}cannot import {module!r} for {ref!r}: {exc}") from None
        for part in qualname.split("."):
            if part == "<locals>" or not hasattr(obj, part):
                raise UnresolvedReferenceError(
                    f"{where}{module!r} has no importable {qualname!r} (functions defined inside other "
                    "functions must be registered)"
                )
            obj = getattr(obj, part)
        if not callable(obj):
            raise UnresolvedReferenceError(f"{where}{ref!r} is not callable")
        return obj  # type: ignore[no-any-return]

    def bind(self, graph: Graph) -> dict[str, Callable[..., Any]]:
        """Resolve every function node of ``graph``; all failures are reported together."""
        bound: dict[str, Callable[..., Any]] = {}
        errors: list[str] = []
        for node in graph.nodes:
            ref = node.config.get("function") if node.kind == "function" else None
            if ref is None:
                continue
            if not isinstance(ref, str):
                errors.append(f"node {node.id!r}: 'function' must be a reference string, got {ref!r}")
                continue
            try:
                bound[node.id] = self.resolve(ref, node=node.id)
            except UnresolvedReferenceError as exc:
                errors.append(str(exc))
        if errors:
            raise UnresolvedReferenceError("\n".join(errors))
        return bound
