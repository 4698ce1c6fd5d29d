"""The graph shapes the compile benchmark builds, through the public Flow API.

Both shapes hold exactly ``n`` nodes added by the user (compiling adds one
``output:`` node for the declared flow output) and are clean: they compile with
no diagnostic at all, so the benchmark measures the passes' normal path.

* ``chain``: ``n0 -> n1 -> ... -> n{n-1}``, one function node each, ``n - 1``
  port-to-port connections.
* ``fan``: one source, ``n - 2`` parallel function nodes it feeds, and one join
  function whose parameter ``values: list[int]`` is a collect input
  (``add_function(..., collect=["values"])``) receiving all of them (``2 (n - 2)``
  connections): the shape consensus votes and debate transcripts use.
"""

from __future__ import annotations

from collections.abc import Callable

from dagwright import Flow

__all__ = ["SHAPES", "build_chain", "build_fan", "join", "start", "step"]


def start() -> int:
    """The source of both shapes."""
    return 0


def step(x: int) -> int:
    """One link of the chain, or one parallel branch of the fan."""
    return x + 1


def join(values: list[int]) -> int:
    """The fan's join: ``values`` is a collect input, one value per connected branch."""
    return sum(values)


def build_chain(n: int) -> Flow:
    """A chain of ``n`` function nodes."""
    flow = Flow(f"chain{n}")
    flow.add_function("n0", start)
    for i in range(1, n):
        flow.add_function(f"n{i}", step)
        flow.connect(f"n{i - 1}.output", f"n{i}.x")
    flow.output("result", f"n{n - 1}.output")
    return flow


def build_fan(n: int) -> Flow:
    """One source, ``n - 2`` parallel nodes, one join with a collect input: ``n`` nodes."""
    if n < 3:
        raise ValueError("a fan needs at least 3 nodes")
    flow = Flow(f"fan{n}")
    flow.add_function("src", start)
    for i in range(n - 2):
        flow.add_function(f"w{i}", step)
        flow.connect("src.output", f"w{i}.x")
    flow.add_function("join", join, output="total", collect=["values"])
    for i in range(n - 2):
        flow.connect(f"w{i}.output", "join.values")
    flow.output("total", "join.total")
    return flow


SHAPES: dict[str, Callable[[int], Flow]] = {"chain": build_chain, "fan": build_fan}
