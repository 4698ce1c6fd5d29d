"""``dagwright run``'s progress: a live display of a run's node counts on a terminal, a line per event with -v.

On a terminal, :class:`RunDisplay` redraws a bar and one status line a few times a second:
nodes done / running / failed / skipped of the total, tokens, cost and the time elapsed.
Anywhere else (CI, pipes, tests) it prints nothing per event, since a line per event is
two lines per node (2 005 lines for a 1 000-node flow) and buries the result; the run's
one-line summary comes after it. ``--verbose`` prints a line per event on any stream, above
the live display on a terminal.

This module imports ``rich``; only the command line imports it, on ``dagwright run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND
from dagwright.execution.events import Event, NodeRecord, RunResult

__all__ = ["NodeCounts", "RunDisplay", "event_line"]

Listener = Callable[[Event], None]

# Flow inputs and outputs are bookkeeping, not work: they are not in the total, so not in the counts either.
_NOT_WORK = (INPUT_KIND, OUTPUT_KIND)


class NodeCounts:
    """What a run's events have said so far: nodes done (cached among them), running, failed, skipped; tokens, cost.

    Called with each event on the event loop's thread; read by the live display's refresh
    thread, which only reads ints and a set's length, so no lock is needed.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.running: set[str] = set()
        self.done = 0
        self.cached = 0
        self.failed = 0
        self.skipped = 0
        self.cancelled = 0
        self.tokens = 0
        self.cost = 0.0
        self.started = time.perf_counter()
        self.elapsed: float | None = None  # fixed when the run ends, so the last frame keeps the run's time

    def __call__(self, event: Event) -> None:
        record = event.record
        node_id = event.node_id
        if record is None or node_id is None or record.kind in _NOT_WORK:
            return
        kind = event.kind
        if kind == "node_started":
            self.running.add(node_id)
        elif kind == "node_finished":
            self.running.discard(node_id)
            self.done += 1
            self.cached += record.status == "cached"
            self._add_usage(record)
        elif kind == "node_failed":
            self.running.discard(node_id)
            self.failed += 1
            self._add_usage(record)
        elif kind == "node_skipped":
            self.skipped += 1

    def _add_usage(self, record: NodeRecord) -> None:
        if record.usage is not None:
            self.tokens += record.usage.total
            self.cost += record.usage.cost

    def settle(self, result: RunResult) -> None:
        """Take the final counts from the run's records: nodes cancelled by a failure send no event."""
        work = [r for r in result.nodes.values() if r.kind not in _NOT_WORK]
        self.running.clear()
        self.done = sum(r.status in ("done", "cached") for r in work)
        self.cached = sum(r.status == "cached" for r in work)
        self.failed = sum(r.status == "failed" for r in work)
        self.skipped = sum(r.status == "skipped" for r in work)
        self.cancelled = sum(r.status == "cancelled" for r in work)
        usage = result.usage
        self.tokens, self.cost = usage.total, usage.cost
        self.stop_clock()

    def stop_clock(self) -> None:
        if self.elapsed is None:
            self.elapsed = time.perf_counter() - self.started

    @property
    def resolved(self) -> int:
        """Nodes that will not run (again): done, failed, skipped or cancelled."""
        return self.done + self.failed + self.skipped + self.cancelled

    def status_line(self) -> str:
        """``done 180 (cached 3) · running 8 · failed 2 · skipped 10 · 12,345 tokens · $0.0123 · 4.2 s``."""
        parts = [f"done {self.done}" + (f" (cached {self.cached})" if self.cached else "")]
        parts.append(f"running {len(self.running)}")
        parts.append(f"failed {self.failed}")
        parts.append(f"skipped {self.skipped}")
        if self.cancelled:
            parts.append(f"cancelled {self.cancelled}")
        elapsed = self.elapsed if self.elapsed is not None else time.perf_counter() - self.started
        parts += [f"{self.tokens:,} tokens", f"${self.cost:.4f}", _duration(elapsed)]
        return " · ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def event_line(event: Event, finished: int, total: int) -> str | None:
    """The ``--verbose`` log line of an event (the run display's lines before it went live), or None."""
    record = event.record
    if event.kind == "node_started":
        return f"  ... {event.node_id}"
    if event.kind == "node_finished" and record is not None and record.status == "cached":
        return f"  cached {event.node_id} [{finished}/{total}]"
    if event.kind == "node_finished" and record is not None:
        extra = ""
        if record.usage is not None and record.usage.calls:
            extra = f", {record.usage.total} tokens, ${record.usage.cost:.4f}"
        ms = record.duration_ms or 0.0
        return f"  ok  {event.node_id} ({ms:.0f} ms{extra}) [{finished}/{total}]"
    if event.kind == "node_failed":
        return f"  FAIL {event.node_id}: {event.error}"
    if event.kind == "node_retried":
        return f"  retry {event.node_id} after attempt {event.attempt}: {event.error}"
    if event.kind == "node_skipped":
        return f"  skip {event.node_id}: {event.error}"
    return None


class RunDisplay:
    """A run's progress on ``console`` (default: stderr).

    With ``progress``, live counts when the console is a terminal; with ``verbose``, a line per
    event on any console; else nothing. Use as a context manager around the run, pass
    :attr:`listener` to the scheduler, and call :meth:`finish` with the result inside the block
    so the last frame shows the final counts::

        with RunDisplay(None, "qa", 12, progress=True) as display:
            result = asyncio.run(scheduler.run(inputs, None, display.listener))
            display.finish(result)
    """

    def __init__(
        self, console: Console | None, name: str, total: int, *, progress: bool, verbose: bool = False
    ) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.name = name
        self.counts = NodeCounts(total)
        self.verbose = verbose
        # Live only on a terminal: elsewhere (CI logs, pipes) redrawn frames are noise, and the summary says it all.
        live = progress and self.console.is_terminal
        self._live = Live(console=self.console, get_renderable=self.render, refresh_per_second=8) if live else None

    @property
    def listener(self) -> Listener | None:
        """What the scheduler calls with each event; None when nothing is shown, so it builds no events."""
        if self.verbose:
            return self._log
        return self.counts if self._live is not None else None

    def __enter__(self) -> RunDisplay:
        if self.verbose:
            self._print(f"running {self.name} ({self.counts.total} nodes)")
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        counts = self.counts
        counts.stop_clock()
        if kind is not None:
            # Interrupted (Ctrl-C): the nodes in flight were cancelled, and a cancelled node sends no event.
            counts.cancelled += len(counts.running)
            counts.running.clear()
        if self._live is not None:
            self._live.stop()  # draws the last frame, so the final counts stay on screen

    def finish(self, result: RunResult) -> None:
        """The run is over: show its final counts (cancelled nodes included)."""
        self.counts.settle(result)
        if self._live is not None:
            self._live.refresh()

    def _log(self, event: Event) -> None:
        self.counts(event)
        line = event_line(event, self.counts.done, self.counts.total)
        if line is not None:
            self._print(line)

    def _print(self, line: str) -> None:
        # Through the console, not straight to the stream: while the display is live, rich prints
        # the line above it instead of tearing it. Text, not str: node ids are not markup.
        self.console.print(Text(line), soft_wrap=True)

    def render(self) -> RenderableType:
        """The live frame: the flow's name, a bar of resolved nodes, and the status line."""
        counts = self.counts
        bar = ProgressBar(total=max(counts.total, 1), completed=counts.resolved, width=40)
        top = Table.grid(padding=(0, 1))
        top.add_row(Text(self.name, style="bold"), bar, Text(f"{counts.resolved}/{counts.total} nodes"))
        status = Text(counts.status_line(), style="red" if counts.failed else "")
        return Group(top, status)
