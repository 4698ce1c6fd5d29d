"""Finding the flows a command line names: ``path/file.py:obj``, ``package.module:attr``, or a JSON IR file.

Importing user code runs it, so every failure here is reported as a
:class:`TargetError` that says which target, and quotes the import's own message
with the line of user code that raised it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass

from dagwright.compiler.flow import Flow
from dagwright.compiler.ir import Graph, IRFormatError

__all__ = ["Target", "TargetError", "load_targets"]


class TargetError(Exception):
    """A target that cannot be loaded (bad path, import error, no flow in it)."""


@dataclass(frozen=True)
class Target:
    """One flow (or a graph read from JSON) found on the command line."""

    name: str
    flow: Flow | None = None
    graph: Graph | None = None


def load_targets(spec: str, *, allow_empty: bool = False) -> list[Target]:
    """Load what ``spec`` names; a path without ``:obj`` yields every module-level Flow."""
    if spec.endswith(".json") and os.path.isfile(spec):
        return [_load_json(spec)]
    path, obj = spec, None
    if not os.path.exists(spec) and ":" in spec:
        path, _, obj = spec.rpartition(":")
        if not obj:
            raise TargetError(f"{spec!r}: nothing after ':'; write FILE:OBJECT or MODULE:OBJECT")
    if path.endswith(".py") or os.path.sep in path or os.path.exists(path):
        if not os.path.isfile(path):
            raise TargetError(f"{spec!r}: no such file {path!r}")
        module = _import_file(path)
    else:
        module = _import_module(path, spec)
    if obj is not None:
        return [_resolve(module, obj, spec)]
    found = [Target(name, flow=value) for name, value in vars(module).items() if isinstance(value, Flow)]
    if not found and not allow_empty:
        raise TargetError(
            f"{spec!r} defines no Flow at module level; name one with {path}:NAME (a Flow, an agent, or a "
            "function returning one)"
        )
    return found


def _load_json(path: str) -> Target:
    try:
        with open(path, encoding="utf-8") as fh:
            graph = Graph.from_json(fh.read())
    except (OSError, IRFormatError) as exc:
        raise TargetError(f"{path}: {exc}") from None
    return Target(graph.name or path, graph=graph)


def _user_frame(exc: BaseException, path: str | None) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if path is None or os.path.abspath(frame.filename) == os.path.abspath(path):
            return f" (at {frame.filename}:{frame.lineno})"
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" (at {exc.filename}:{exc.lineno})"
    return ""


def _import_file(path: str) -> object:
    abspath = os.path.abspath(path)
    directory = os.path.dirname(abspath)
    stem = os.path.splitext(os.path.basename(abspath))[0]
    name = f"_dagwright_target_{abs(hash(abspath)):x}_{stem}"
    spec = importlib.util.spec_from_file_location(name, abspath)
    if spec is None or spec.loader is None:
        raise TargetError(f"{path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    # Sibling imports in the user's file work as they would under `python file.py`.
    sys.path.insert(0, directory)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:
        raise TargetError(f"importing {path} called exit({exc.code})") from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        sys.modules.pop(name, None)
        raise TargetError(f"cannot import {path}: {type(exc).__name__}: {exc}{_user_frame(exc, abspath)}") from None
    finally:
        if sys.path and sys.path[0] == directory:
            sys.path.pop(0)
    return module


def _import_module(name: str, spec: str) -> object:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise TargetError(f"{spec!r}: no file or module named {name!r}") from None
        raise TargetError(f"cannot import {name}: {type(exc).__name__}: {exc}{_user_frame(exc, None)}") from None
    except Exception as exc:
        raise TargetError(f"cannot import {name}: {type(exc).__name__}: {exc}{_user_frame(exc, None)}") from None


def _resolve(module: object, dotted: str, spec: str) -> Target:
    value: object = module
    for part in dotted.split("."):
        if not hasattr(value, part):
            names = [n for n in dir(value) if not n.startswith("_")]
            import difflib

            close = difflib.get_close_matches(part, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TargetError(f"{spec!r}: {part!r} is not defined there{hint}")
        value = getattr(value, part)
    flow = as_flow(value, dotted, spec)
    return Target(dotted, flow=flow)


def as_flow(value: object, name: str, spec: str = "") -> Flow:
    """A Flow from a Flow, an agent, or a zero-argument callable returning either."""
    label = spec or name
    if isinstance(value, Flow):
        return value
    if hasattr(value, "signature") and not isinstance(value, type):
        return Flow.from_agent(value, name.rsplit(".", 1)[-1])
    if callable(value) and not isinstance(value, type):
        try:
            produced = value()
        except TypeError as exc:
            raise TargetError(f"{label}: calling {name}() failed: {exc} (it must take no arguments)") from None
        except Exception as exc:
            raise TargetError(f"{label}: {name}() raised {type(exc).__name__}: {exc}{_user_frame(exc, None)}") from None
        if isinstance(produced, Flow):
            return produced
        if hasattr(produced, "signature"):
            return Flow.from_agent(produced, name.rsplit(".", 1)[-1])
        raise TargetError(f"{label}: {name}() returned {type(produced).__name__}, not a Flow or an agent")
    raise TargetError(f"{label}: {name} is a {type(value).__name__}, not a Flow, an agent or a function")
