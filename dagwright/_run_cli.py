"""``dagwright run``: run a flow from the command line, with a progress display on a terminal.

Input values are read by the type of the flow input they feed: text inputs take
the value as written, every other type takes JSON (``--input n=3``,
``--input tags='["a","b"]'``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, TextIO

from dagwright._loader import TargetError
from dagwright.compiler.flow import Flow
from dagwright.compiler.ir import Graph
from dagwright.compiler.types import TypeExpr
from dagwright.runtime.events import Event, RunResult

__all__ = ["parse_inputs", "run_flow"]


def _takes_text(t: TypeExpr) -> bool:
    if t.kind == "str":
        return True
    if t.kind == "literal":
        return all(isinstance(v, str) for v in t.values)
    if t.kind == "union":
        return any(_takes_text(a) for a in t.args) and not any(a.kind in ("int", "float", "bool") for a in t.args)
    return False


def parse_inputs(graph: Graph, pairs: list[str], json_text: str | None) -> dict[str, Any]:
    """Flow inputs from ``KEY=VALUE`` pairs and/or a JSON object; errors name the input."""
    types = {n.outputs[0].name: n.outputs[0].type for n in graph.input_nodes}
    values: dict[str, Any] = {}
    if json_text is not None:
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
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            raise TargetError(
                f"--input {name}: the input is typed {ptype}, so its value is read as JSON, and {raw!r} is not JSON"
            ) from None
    return values


class _Progress:
    """One line per node event, on a terminal."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = total
        self.finished = 0

    def __call__(self, event: Event) -> None:
        record = event.record
        if event.kind == "node_started":
            self.out.write(f"  ... {event.node_id}\n")
        elif event.kind == "node_finished" and record is not None:
            self.finished += 1
            extra = ""
            if record.usage is not None and record.usage.calls:
                extra = f", {record.usage.total} tokens, ${record.usage.cost:.4f}"
            ms = record.duration_ms or 0.0
            self.out.write(f"  ok  {event.node_id} ({ms:.0f} ms{extra}) [{self.finished}/{self.total}]\n")
        elif event.kind == "node_failed":
            self.out.write(f"  FAIL {event.node_id}: {event.error}\n")
        elif event.kind == "node_retried":
            self.out.write(f"  retry {event.node_id} after attempt {event.attempt}: {event.error}\n")
        elif event.kind == "node_skipped":
            self.out.write(f"  skip {event.node_id}: {event.error}\n")
        self.out.flush()


def run_flow(flow: Flow, inputs: dict[str, Any], *, as_json: bool, progress: bool) -> int:
    """Run ``flow`` and print its outputs; returns the exit code (0 success, 1 failed run)."""
    scheduler = flow._scheduler()
    graph: Graph = scheduler.plan.graph
    try:
        scheduler.check_inputs(inputs)
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    work = sum(1 for n in graph.nodes if n.kind not in ("input", "output"))
    listener = _Progress(sys.stderr, work) if progress else None
    if listener is not None:
        sys.stderr.write(f"running {flow.name} ({work} nodes)\n")
    started = time.perf_counter()
    try:
        result: RunResult = asyncio.run(scheduler.run(inputs, None, listener))
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted: the run was cancelled\n")
        return 130
    elapsed = time.perf_counter() - started
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
            f"{usage.total} tokens, ${usage.cost:.4f}" + (f", model {', '.join(models)}" if models else "") + "\n"
        )
    if not result.success:
        for record in result.failed:
            sys.stderr.write(f"node {record.node_id} failed: {record.error_type}: {record.error}\n")
        return 1
    return 0
