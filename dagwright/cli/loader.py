"""Finding the flows a command line names: ``path/file.py:obj``, ``package.module:attr``, or a JSON IR file.

Importing user code runs it, so every failure here is reported as a
:class:`TargetError` that says which target, and quotes the import's own message
with the line of user code that raised it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import dataclass

from dagwright.compiler.ir import Graph, IRFormatError
from dagwright.compiler.suggest import suggest
from dagwright.flow import Flow

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
    # Named as FILE:NAME, so a report over several files says which file each flow is in.
    found = [Target(f"{path}:{name}", flow=value) for name, value in vars(module).items() if isinstance(value, Flow)]
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


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_frame(exc: BaseException, path: str | None) -> str:
    """Where in user code ``exc`` was raised: the last line in ``path`` when it is in the
    traceback, else the last frame outside this package and the import machinery."""
    frames = traceback.extract_tb(exc.__traceback__)
    if path is not None:
        for frame in reversed(frames):
            if os.path.abspath(frame.filename) == os.path.abspath(path):
                return f" (at {frame.filename}:{frame.lineno})"
    for frame in reversed(frames):
        if not frame.filename.startswith("<") and not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f" (at {frame.filename}:{frame.lineno})"
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" (at {exc.filename}:{exc.lineno})"
    return ""


def _module_name(abspath: str) -> str:
    """The name a user file is imported under; it is stable, because it ends up in the IR.

    Function references (``module:qualname``) and pydantic model paths carry it,
    so the same file must give the same graph and content hash in every run. The
    file's own name is used, as ``python -c "import research"`` next to it would,
    unless that name already means another module.
    """
    stem = os.path.splitext(os.path.basename(abspath))[0]
    if stem.isidentifier():
        loaded = sys.modules.get(stem)
        if loaded is not None:
            # This very file, loaded before in this process (a run, then its resume): the same name again.
            if os.path.abspath(str(getattr(loaded, "__file__", None) or "")) == abspath:
                return stem
        else:
            try:
                found = importlib.util.find_spec(stem)
            except (ImportError, ValueError):
                found = None
            if found is None or (found.origin and os.path.abspath(found.origin) == abspath):
                return stem
    digest = hashlib.sha256(abspath.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"_dagwright_target_{digest}_{stem}" if stem.isidentifier() else f"_dagwright_target_{digest}"


def _import_file(path: str) -> object:
    abspath = os.path.abspath(path)
    directory = os.path.dirname(abspath)
    name = _module_name(abspath)
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
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise TargetError(f"{spec!r}: no file or module named {name!r}") from None
        raise TargetError(f"cannot import {name}: {type(exc).__name__}: {exc}{_user_frame(exc, None)}") from None
    except Exception as exc:
        raise TargetError(f"cannot import {name}: {type(exc).__name__}: {exc}{_user_frame(exc, None)}") from None


def _resolve(module: object, dotted: str, spec: str) -> Target:
    value: object = module
    for part in dotted.split("."):
        if not hasattr(value, part):
            names = [n for n in dir(value) if not n.startswith("_")]
            close = suggest(part, names)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TargetError(f"{spec!r}: {part!r} is not defined there{hint}")
        value = getattr(value, part)
    flow = as_flow(value, dotted, spec)
    return Target(spec, flow=flow)


def as_flow(value: object, name: str, spec: str = "") -> Flow:
    """A Flow from a Flow, an agent, or a zero-argument callable returning either."""
    label = spec or name
    if isinstance(value, Flow):
        return value
    if hasattr(value, "signature") and not isinstance(value, type):
        return _agent_flow(value, name, label)
    if callable(value) and not isinstance(value, type):
        _require_no_arguments(value, name, label)
        try:
            produced = value()
        except Exception as exc:
            where = _user_frame(exc, getattr(getattr(value, "__code__", None), "co_filename", None))
            raise TargetError(f"{label}: {name}() raised {type(exc).__name__}: {exc}{where}") from None
        if isinstance(produced, Flow):
            return produced
        if hasattr(produced, "signature"):
            return _agent_flow(produced, name, label)
        raise TargetError(f"{label}: {name}() returned {type(produced).__name__}, not a Flow or an agent")
    if isinstance(value, type) and hasattr(value, "signature"):
        raise TargetError(f"{label}: {name} is an agent class; name an instance of it, or a function returning one")
    kind = type(value).__name__
    raise TargetError(
        f"{label}: {name} is {'an' if kind[:1] in 'aeiou' else 'a'} {kind}, not a Flow, an agent or a function"
    )


def _require_no_arguments(fn: object, name: str, label: str) -> None:
    try:
        sig = inspect.signature(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return  # a builtin without a readable signature: calling it tells
    required = [
        p.name
        for p in sig.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise TargetError(f"{label}: {name}() needs arguments ({', '.join(required)}); name a function that takes none")


def _agent_flow(agent: object, name: str, label: str) -> Flow:
    try:
        return Flow.from_agent(agent, name.rsplit(".", 1)[-1])
    except (TypeError, ValueError) as exc:
        raise TargetError(f"{label}: {name} has a 'signature' but is not a usable agent: {exc}") from None
