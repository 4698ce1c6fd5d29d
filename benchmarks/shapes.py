"""The graph shapes the compile benchmark builds, through the public Flow API.

Both shapes hold exactly ``n`` nodes added by the user (compiling adds one
``output:`` node for the declared flow output) and are clean: they compile with
no diagnostic at all, so the benchmark measures the passes' normal path.

* ``chain``: ``n0 -> n1 -> ... -> n{n-1}``, one function node each, ``n - 1``
  port-to-port connections.
* ``fan``: one source, ``n - 2`` parallel function nodes it feeds, and one join
  node whose ``collect`` input ``values: list[int]`` receives all of them
  (``2 (n - 2)`` connections). The join is a ready-made IR node added with
  ``Flow.add_node``, because a function's ``list[int]`` parameter is an ordinary
  port that takes exactly one edge; a collect port is how the IR models fan-in
  (the shape consensus votes and debate transcripts use).
"""

from __future__ import annotations

from collections.abc import Callable

from dagwright import Flow, Node, Port
from dagwright.compiler.ir import FrozenDict
from dagwright.compiler.types import INT, list_of

__all__ = ["SHAPES", "build_chain", "build_fan", "join", "start", "step"]


def start() -> int:
    """The source of both shapes."""
    return 0


def step(x: int) -> int:
    """One link of the chain, or one parallel branch of the fan."""
    return x + 1


def join(values: list[int]) -> int:
    """The fan's join: what the collect node's binding computes."""
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


_JOIN_NODE = Node(
    "join",
    "function",
    (Port("values", list_of(INT), collect=True),),
    (Port("total", INT),),
    FrozenDict({"function": f"{__name__}:join"}),
)


def build_fan(n: int) -> Flow:
    """One source, ``n - 2`` parallel nodes, one join with a collect input: ``n`` nodes."""
    if n < 3:
        raise ValueError("a fan needs at least 3 nodes")
    flow = Flow(f"fan{n}")
    flow.add_function("src", start)
    for i in range(n - 2):
        flow.add_function(f"w{i}", step)
        flow.connect("src.output", f"w{i}.x")
    flow.add_node(_JOIN_NODE, join)
    for i in range(n - 2):
        flow.connect(f"w{i}.output", "join.values")
    flow.output("total", "join.total")
    return flow


SHAPES: dict[str, Callable[[int], Flow]] = {"chain": build_chain, "fan": build_fan}
