"""``dagwright run``: run a flow from the command line, with a progress display on a terminal.

Input values are read by the type of the flow input they feed: text inputs take
the value as written, every other type takes JSON (``--input n=3``,
``--input tags='["a","b"]'``).

On a terminal a live display counts the nodes done, running, failed and skipped, with tokens,
cost and time (:mod:`dagwright.cli.progress`); elsewhere only the one-line summary at the end is
printed, and ``--verbose`` prints a line per node event on any stream.

``--checkpoint runs.db`` stores each finished node's outputs; ``--resume RUN_ID`` continues
a stored run. Ctrl-C cancels the nodes in flight, leaves the checkpoint consistent and
prints the command that resumes the run (exit code 130).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from dagwright.cli.loader import TargetError
from dagwright.compiler.ir import Graph
from dagwright.compiler.types import TypeExpr
from dagwright.execution.events import RunResult
from dagwright.flow import Flow

if TYPE_CHECKING:
    from rich.console import Console

    from dagwright.execution.policy import RunOptions
    from dagwright.ops.checkpoint import CheckpointStore

__all__ = ["MAX_JSON_DEPTH", "parse_inputs", "run_flow"]


def _takes_text(t: TypeExpr) -> bool:
    if t.kind == "str":
        return True
    if t.kind == "literal":
        return all(isinstance(v, str) for v in t.values)
    if t.kind == "union":
        return any(_takes_text(a) for a in t.args) and not any(a.kind in ("int", "float", "bool") for a in t.args)
    return False


MAX_JSON_DEPTH = 100
"""How many levels of arrays and objects a JSON input may nest (deeper input would exhaust the parser's recursion)."""


def _too_deep(text: str) -> int | None:
    """The 1-based column where ``text`` opens a level of ``[`` or ``{`` past :data:`MAX_JSON_DEPTH`, if it does.

    Brackets inside JSON strings are text and do not count; the scan is linear and recursion-free.
    """
    depth = 0
    in_string = escaped = False
    for column, char in enumerate(text, 1):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return column
        elif char in "]}":
            depth -= 1
    return None


def _depth_problem(column: int) -> str:
    return (
        f"nested too deeply: level {MAX_JSON_DEPTH + 1} of [ and {{ opens at column {column}; JSON inputs may nest "
        f"at most {MAX_JSON_DEPTH} levels"
    )


def parse_inputs(graph: Graph, pairs: list[str], json_text: str | None) -> dict[str, Any]:
    """Flow inputs from ``KEY=VALUE`` pairs and/or a JSON object; errors name the input.

    JSON may nest at most :data:`MAX_JSON_DEPTH` levels of arrays and objects.
    """
    types = {n.outputs[0].name: n.outputs[0].type for n in graph.input_nodes}
    values: dict[str, Any] = {}
    if json_text is not None:
        column = _too_deep(json_text)
        if column is not None:
            raise TargetError(f"--inputs-json is {_depth_problem(column)}")
        try:
            loaded = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise TargetError(f"--inputs-json is not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(loaded, dict):
            raise TargetError("--inputs-json must be a JSON object of input name -> value")
        values.update(loaded)
    for pair in pairs:
        name, eq, raw = pair.partition("=")
        if not eq or not name:
            raise TargetError(f"--input {pair!r}: write it as NAME=VALUE")
        ptype = types.get(name)
        if ptype is None or _takes_text(ptype):
            values[name] = raw
            continue
        column = _too_deep(raw)
        if column is not None:
            raise TargetError(f"--input {name}: the value is {_depth_problem(column)}")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            raise TargetError(
                f"--input {name}: the input is typed {ptype}, so its value is read as JSON, and {raw!r} is not JSON"
            ) from None
    return values


def run_flow(
    flow: Flow,
    inputs: dict[str, Any],
    *,
    as_json: bool,
    progress: bool,
    target: str = "",
    checkpoint: str | None = None,
    resume: str | None = None,
    rerun_changed: bool = False,
    backend: str = "builtin",
    scheduler_address: str | None = None,
    verbose: bool = False,
    console: Console | None = None,
) -> int:
    """Run ``flow`` and print its outputs; returns the exit code (0 success, 1 failed run, 130 interrupted).

    ``progress`` asks for the live display (see :mod:`dagwright.cli.progress`): it is drawn when the
    console (``console``, default: stderr) is a terminal; elsewhere nothing is printed per event, only the
    summary at the end. ``verbose`` prints a line per node event on any stream.
    ``backend="dask"`` runs on Dask: on the scheduler at ``scheduler_address``, or on a local cluster;
    it has no per-node display.

    With ``checkpoint`` the run is stored there; ``resume`` continues the stored run of that id.
    """
    from dagwright.ops.checkpoint import CheckpointError

    _check_resume_id(resume)
    if backend == "dask":
        return _execute_dask(
            flow,
            inputs,
            scheduler_address,
            as_json=as_json,
            target=target,
            checkpoint=checkpoint,
            resume=resume,
            rerun_changed=rerun_changed,
        )
    if scheduler_address is not None:
        raise TargetError("--scheduler is the address of a Dask scheduler: use it with --backend dask")
    if resume is not None and checkpoint is None:
        raise TargetError("--resume needs --checkpoint: the database the run was stored in")
    prepared = _Prepared()
    started = time.perf_counter()
    try:
        result = asyncio.run(
            _run_connected(
                flow,
                inputs,
                prepared,
                checkpoint=checkpoint,
                resume=resume,
                rerun_changed=rerun_changed,
                progress=progress,
                verbose=verbose,
                console=console,
            )
        )
    except KeyboardInterrupt:
        options = prepared.options
        if options is not None and options.checkpoint is not None and options.run_id is not None:
            _interrupted(options.checkpoint, options.run_id, target)
        else:
            sys.stderr.write("\ninterrupted: the run was cancelled\n")
        return 130
    except CheckpointError as exc:
        raise TargetError(str(exc)) from None
    finally:
        if prepared.store is not None:
            prepared.store.close()
    return _report(flow, result, time.perf_counter() - started, as_json=as_json)


def _check_resume_id(resume: str | None) -> None:
    """Refuse a ``--resume RUN_ID`` outside the run id rule of ``RunOptions``, before anything is opened."""
    from dagwright.execution.policy import RunOptions

    if resume is None:
        return
    try:
        RunOptions(run_id=resume)
    except ValueError as exc:
        raise TargetError(f"--resume: {exc}") from None


class _Prepared:
    """What a run opened before it started, for the caller to close and a Ctrl-C to report."""

    store: CheckpointStore | None = None
    options: RunOptions | None = None


async def _run_connected(
    flow: Flow,
    inputs: dict[str, Any],
    prepared: _Prepared,
    *,
    checkpoint: str | None,
    resume: str | None,
    rerun_changed: bool,
    progress: bool,
    verbose: bool,
    console: Console | None,
) -> RunResult:
    """One run on the built-in scheduler, inside one connection to each of the flow's MCP servers.

    The servers are connected and listed first, as ``Flow.run`` does, so the graph the run takes (and
    a checkpoint compares on resume) lists their tools; the run's agents then use that connection."""
    from dagwright.cli.progress import RunDisplay
    from dagwright.execution.policy import RunOptions
    from dagwright.ops.checkpoint import CheckpointStore

    async with flow._run_scope() as resources:
        scheduler = flow._scheduler()
        graph: Graph = scheduler.plan.graph
        if checkpoint is not None:
            prepared.store = store = CheckpointStore(checkpoint)
            if resume is not None:
                # Given inputs are the run's secret ones again; prepare_resume refuses any other.
                stored = store.prepare_resume(resume, graph, rerun_changed=rerun_changed, inputs=inputs)
                inputs = stored.inputs
                prepared.options = RunOptions(run_id=resume, checkpoint=store, resume=True)
            else:
                prepared.options = RunOptions(run_id=uuid.uuid4().hex, checkpoint=store)
        try:
            scheduler.check_inputs(inputs)
        except ValueError as exc:
            raise TargetError(str(exc)) from None
        work = sum(1 for n in graph.nodes if n.kind not in ("input", "output"))
        with RunDisplay(console, flow.name, work, progress=progress, verbose=verbose) as display:
            result: RunResult = await scheduler.run(inputs, prepared.options, display.listener, resources)
            display.finish(result)
        return result


def _interrupted(store: Any, run_id: str, target: str, *extra: str) -> None:
    """What a Ctrl-C leaves: the finished nodes stored, and the command that resumes the run."""
    done = len(store.finished_nodes(run_id))
    command = shlex.join(["dagwright", "run", target, "--resume", run_id, "--checkpoint", store.path, *extra])
    sys.stderr.write("\ninterrupted: the run was cancelled\n")
    sys.stderr.write(f"{done} finished node(s) are stored in {store.path}; resume the run with:\n  {command}\n")


def _execute_dask(
    flow: Flow,
    inputs: dict[str, Any],
    address: str | None,
    *,
    as_json: bool,
    target: str,
    checkpoint: str | None,
    resume: str | None,
    rerun_changed: bool,
) -> int:
    """``--backend dask``: the same printout, without a per-node progress display.

    A flow given as a FILE.py travels to the workers by value (they may not have the file);
    the modules it imports must be importable there.
    """
    import os

    from dagwright.backends.dask.client import require_dask, run_on_dask

    try:
        require_dask()
    except ImportError as exc:
        raise TargetError(str(exc)) from None
    path = target.rsplit(":", 1)[0] if ":" in target and not os.path.exists(target) else target
    if path.endswith(".py"):
        import cloudpickle  # type: ignore[import-untyped]

        wanted = os.path.abspath(path)
        for module in list(sys.modules.values()):
            if getattr(module, "__file__", None) and os.path.abspath(str(module.__file__)) == wanted:
                cloudpickle.register_pickle_by_value(module)
    from dagwright.ops.checkpoint import CheckpointError, CheckpointStore

    if resume is not None and checkpoint is None:
        raise TargetError("--resume needs --checkpoint: the database the run was stored in")
    started = time.perf_counter()
    store: CheckpointStore | None = None
    run_id = resume if resume is not None else uuid.uuid4().hex
    try:
        flow._list_servers_here()
        store = CheckpointStore(checkpoint) if checkpoint is not None else None
        if store is not None and resume is not None:
            inputs = store.prepare_resume(resume, flow.compile(), rerun_changed=rerun_changed, inputs=inputs).inputs
        try:
            flow._scheduler().check_inputs(inputs)
        except ValueError as exc:
            raise TargetError(str(exc)) from None
        result = run_on_dask(
            flow._scheduler().plan, inputs, client=address, checkpoint=store, run_id=run_id, resume=resume is not None
        )
    except (ImportError, ConnectionError, CheckpointError) as exc:
        raise TargetError(str(exc)) from None
    except KeyboardInterrupt:
        if store is not None:
            extra = ["--backend", "dask", *(["--scheduler", address] if address else [])]
            _interrupted(store, run_id, target, *extra)
        else:
            sys.stderr.write("\ninterrupted: the run was cancelled\n")
        return 130
    finally:
        if store is not None:
            store.close()
    return _report(flow, result, time.perf_counter() - started, as_json=as_json)


def _report(flow: Flow, result: RunResult, elapsed: float, *, as_json: bool) -> int:
    """Print a run's outputs (and a summary on stderr); the exit code: 0 success, 1 failed run."""
    if as_json:
        payload = {
            "flow": flow.name,
            "run_id": result.run_id,
            "success": result.success,
            "error": result.error,
            "outputs": result.outputs,
            "summary": dict(result.summary()),
        }
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        for name, value in result.outputs.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            sys.stdout.write(f"{name}: {text}\n")
        usage = result.usage
        models = sorted({r.model for r in result.nodes.values() if r.model})
        sys.stderr.write(
            f"{'ok' if result.success else 'FAILED'}: run {result.run_id} in {elapsed * 1000:.0f} ms, "
            f"{_node_counts(result)}, {usage.total} tokens, ${usage.cost:.4f}"
            + (f", model {', '.join(models)}" if models else "")
            + "\n"
        )
    if not result.success:
        for record in result.failed:
            where = f" (at {record.error_location})" if record.error_location else ""
            sys.stderr.write(f"node {record.node_id} failed: {record.error_type}: {record.error}{where}\n")
        return 1
    return 0


def _node_counts(result: RunResult) -> str:
    """``12/12 nodes done``, then failed / skipped / cancelled when there are any: what the live display ended on."""
    work = [r for r in result.nodes.values() if r.kind not in ("input", "output")]
    done = sum(r.status in ("done", "cached") for r in work)
    text = f"{done}/{len(work)} nodes done"
    for status in ("failed", "skipped", "cancelled"):
        n = sum(r.status == status for r in work)
        if n:
            text += f", {n} {status}"
    return text
