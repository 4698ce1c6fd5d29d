"""Finding the flows a command line names: ``path/file.py:obj``, ``package.module:attr``, a JSON IR file,
or (for ``check``) a directory or a glob pattern standing for the Python files in it.

Importing user code runs it, so every failure here is reported as a
:class:`TargetError` that says which target, and quotes the import's own message
with the line of user code that raised it. A failed import is an
:class:`ImportFailed`, which also carries that line, so ``check`` can report it as
a diagnostic of the file (DW019) and go on with the other files. Ctrl-C during an
import is an :class:`ImportInterrupted` instead, which stops the command (exit 130).
An IR ``.json`` file is read as data: nothing it names is imported.

The working directory is put on ``sys.path`` before anything is imported, as
``python -m`` does: run from a repository's root (as pre-commit and CI do), a flow
file can import the repository's own packages (``from flows.steps import ...``).
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import dataclass

from dagwright.compiler.diagnostics import Diagnostic, make
from dagwright.compiler.ir import Graph, IRFormatError, SourceLocation
from dagwright.compiler.suggest import suggest
from dagwright.flow import Flow

__all__ = ["ImportFailed", "ImportInterrupted", "Target", "TargetError", "expand_target", "ir_file", "load_targets"]


class TargetError(Exception):
    """A target that cannot be loaded (bad path, import error, no flow in it)."""


class ImportFailed(TargetError):
    """Importing a target's code raised (a syntax error, an ImportError, any exception at import).

    ``str()`` is the whole message, with ``(at FILE:LINE)``; ``reason`` is the message without
    it and ``site`` the line of user code where it happened, when the traceback shows one.
    """

    def __init__(self, reason: str, site: tuple[str, int] | None, *, missing_module: bool) -> None:
        super().__init__(reason + _at(site))
        self.reason = reason
        self.site = site
        self.missing_module = missing_module

    def diagnostic(self) -> Diagnostic:
        """The failure as a DW019 diagnostic located at the line of user code that raised."""
        hint = ""
        if self.missing_module:
            hint = (
                "install the package where dagwright runs (a pre-commit hook: additional_dependencies), or run "
                "dagwright from the directory your imports are relative to (the repository root)"
            )
        location = SourceLocation(*self.site) if self.site is not None else None
        return make("DW019", self.reason, hint=hint, location=location)


class ImportInterrupted(Exception):
    """Ctrl-C (a ``KeyboardInterrupt``) arrived while a target's code was being imported.

    Not a :class:`TargetError`: ``check`` goes on after a target that fails, but stops here.
    """

    def __init__(self, what: str) -> None:
        super().__init__(f"interrupted while importing {what}")


@dataclass(frozen=True)
class Target:
    """One flow (or a graph read from JSON) found on the command line."""

    name: str
    flow: Flow | None = None
    graph: Graph | None = None


def load_targets(spec: str, *, allow_empty: bool = False) -> list[Target]:
    """Load what ``spec`` names; a path without ``:obj`` yields every module-level Flow."""
    cwd_importable()
    if spec.endswith(".json") and os.path.isfile(spec):
        return [_load_json(spec)]
    path, obj = spec, None
    if not os.path.exists(spec) and ":" in spec:
        path, _, obj = spec.rpartition(":")
        if not obj:
            raise TargetError(f"{spec!r}: nothing after ':'; write FILE:OBJECT or MODULE:OBJECT")
    if ir_file(spec) is not None:
        return [_json_named(path, obj or "")]
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


def cwd_importable() -> None:
    """Put the working directory first on ``sys.path``, as ``python -m`` does (the console script does not)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


# Directories a walk never enters: caches, installed packages, virtual environments (and hidden ones, below).
_SKIPPED_DIRS = frozenset({"__pycache__", "site-packages", "node_modules"})


def expand_target(spec: str) -> tuple[list[str], bool]:
    """The targets ``spec`` stands for, and whether it named them one by one.

    A directory stands for every ``*.py`` below it, a glob pattern (``'flows/*.py'``, ``'**/*.py'``)
    for the ``.py`` and ``.json`` files it matches and the ``*.py`` below the directories it
    matches; anything else is one target, named explicitly.
    """
    if os.path.isdir(spec):
        files = _python_files(spec)
        if not files:
            raise TargetError(f"{spec!r}: no .py file below this directory")
        return files, False
    if os.path.exists(spec) or not any(c in spec for c in "*?["):
        return [spec], True
    files = []
    for match in sorted(glob.glob(spec, recursive=True)):
        if _under_skipped_dir(match, spec):
            continue
        if os.path.isdir(match):
            files.extend(_python_files(match))
        elif match.endswith((".py", ".json")):
            files.append(os.path.normpath(match))
    if not files:
        raise TargetError(f"{spec!r} matches no .py or .json file")
    return list(dict.fromkeys(files)), False


def _python_files(root: str) -> list[str]:
    found: list[str] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not _skipped_dir(os.path.join(directory, d)))
        found.extend(
            os.path.normpath(os.path.join(directory, name))
            for name in sorted(names)
            if name.endswith(".py") and not name.startswith(".")
        )
    return found


def _under_skipped_dir(match: str, pattern: str) -> bool:
    """Whether a wildcard of ``pattern`` led ``match`` through a directory a walk skips (``'**/*.py'`` into
    a ``venv/``); directories the pattern spells out literally were asked for."""
    literal = 0
    for part in pattern.split(os.sep):
        if any(c in part for c in "*?["):
            break
        literal += 1
    parts = match.split(os.sep)
    return any(_skipped_dir(os.sep.join(parts[: i + 1])) for i in range(literal, len(parts) - 1))


def _skipped_dir(path: str) -> bool:
    name = os.path.basename(path)
    if name.startswith(".") or name in _SKIPPED_DIRS:
        return True
    # A virtualenv (pyvenv.cfg) or conda environment (conda-meta) under any name holds installed code.
    return os.path.isfile(os.path.join(path, "pyvenv.cfg")) or os.path.isdir(os.path.join(path, "conda-meta"))


def _load_json(path: str) -> Target:
    try:
        with open(path, encoding="utf-8") as fh:
            graph = Graph.from_json(fh.read())
    except (OSError, IRFormatError) as exc:
        raise TargetError(f"{path}: {exc}") from None
    return Target(graph.name or path, graph=graph)


def ir_file(spec: str) -> str | None:
    """The exported IR file ``spec`` names (``graph.json`` or ``graph.json:NAME``), if it names one."""
    for path in (spec, spec.rpartition(":")[0]):
        if path.endswith(".json") and os.path.isfile(path):
            return path
    return None


def _json_named(path: str, name: str) -> Target:
    """``FILE.json:NAME``: an IR file holds one flow, so NAME can only repeat its name."""
    target = _load_json(path)
    if target.graph is not None and name == target.graph.name:
        return target
    raise TargetError(
        f"{path}:{name}: {path} is an exported IR holding one flow, {target.name!r}, not {name!r}; name the file "
        f"alone ({path})"
    )


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_site(exc: BaseException, path: str | None) -> tuple[str, int] | None:
    """Where in user code ``exc`` was raised: the last line in ``path`` when it is in the
    traceback, else the last frame outside this package and the import machinery."""
    frames = traceback.extract_tb(exc.__traceback__)
    if path is not None:
        for frame in reversed(frames):
            if os.path.abspath(frame.filename) == os.path.abspath(path) and frame.lineno is not None:
                return frame.filename, frame.lineno
    for frame in reversed(frames):
        if (
            not frame.filename.startswith("<")
            and not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR)
            and frame.lineno is not None
        ):
            return frame.filename, frame.lineno
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return exc.filename, exc.lineno
    return None


def _detail(exc: BaseException, site: tuple[str, int] | None) -> str:
    """The exception's message; a syntax error's without "(file, line N)" when ``site`` already says where."""
    if not (isinstance(exc, SyntaxError) and exc.msg and exc.filename and site is not None):
        return str(exc)
    same_place = os.path.abspath(exc.filename) == os.path.abspath(site[0]) and exc.lineno == site[1]
    return exc.msg if same_place else str(exc)


def _at(site: tuple[str, int] | None) -> str:
    return f" (at {site[0]}:{site[1]})" if site is not None else ""


def _user_frame(exc: BaseException, path: str | None) -> str:
    return _at(_user_site(exc, path))


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
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise ImportInterrupted(path) from None
        site = _user_site(exc, abspath)
        if isinstance(exc, SystemExit):
            reason = f"importing {path} called exit({exc.code})"
        else:
            reason = f"cannot import {path}: {type(exc).__name__}: {_detail(exc, site)}"
        raise ImportFailed(reason, site, missing_module=isinstance(exc, ModuleNotFoundError)) from None
    finally:
        if sys.path and sys.path[0] == directory:
            sys.path.pop(0)
    return module


def _import_module(name: str, spec: str) -> object:
    failure: Exception
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise TargetError(f"{spec!r}: no file or module named {name!r}") from None
        failure = exc
    except Exception as exc:
        failure = exc
    except KeyboardInterrupt:
        raise ImportInterrupted(name) from None
    site = _user_site(failure, None)
    reason = f"cannot import {name}: {type(failure).__name__}: {_detail(failure, site)}"
    missing = isinstance(failure, ModuleNotFoundError)
    raise ImportFailed(reason, site, missing_module=missing) from None


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
