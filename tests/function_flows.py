"""Random flows of small integer functions, for checking one back end's results against another's.

Sources, unary steps (sync, and async when asked), binary steps and collect joins, wired to
earlier outputs or to flow inputs. Sources are picked with replacement, so one output often
feeds two inputs of one node and a join often receives one value twice; flow inputs feed
ordinary and collect ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from dagwright import Flow, Node, Port
from dagwright.compiler.ir import FrozenDict
from dagwright.compiler.types import INT, list_of


def source(value: int) -> Callable[[], int]:
    def source() -> int:
        return value

    return source


def unary(salt: int) -> Callable[[int], int]:
    def unary(x: int) -> int:
        return x * 3 + salt

    return unary


def async_unary(salt: int) -> Callable[[int], Any]:
    async def unary(x: int) -> int:
        await asyncio.sleep(0)
        return x * 7 - salt

    return unary


def binary(salt: int) -> Callable[[int, int], int]:
    def binary(a: int, b: int) -> int:
        return a * 31 - b + salt

    return binary


def join(values: list[int]) -> list[int]:
    return list(values)


def join_node(node_id: str) -> Node:
    """A function node gathering ints through a collect port (bind it to :func:`join`)."""
    return Node(
        node_id,
        "function",
        (Port("values", list_of(INT), collect=True),),
        (Port("output", list_of(INT)),),
        FrozenDict({"function": f"{__name__}:join"}),
    )


@st.composite
def random_function_flows(
    draw: st.DrawFn, *, max_nodes: int = 7, max_join: int = 4, async_steps: bool = False
) -> tuple[Flow, dict[str, int]]:
    """A flow of 1 to ``max_nodes`` function nodes and the values of its inputs.

    With ``async_steps``, unary steps may be async and mostly read the newest value: long
    chains that mix sync and async functions (what a back end that fuses chains must cut).
    """
    flow = Flow("random")
    n_inputs = draw(st.integers(0, 2))
    available: list[tuple[str, str]] = [(f"input:in{j}", f"in{j}") for j in range(n_inputs)]
    targets: dict[str, list[str]] = {f"in{j}": [] for j in range(n_inputs)}

    def wire(end: tuple[str, str], target: str) -> None:
        node, port = end
        if node.startswith("input:"):
            targets[port].append(target)
        else:
            flow.connect(f"{node}.{port}", target)

    shapes = ["source", "unary", "binary", "join"] + (["async"] if async_steps else [])
    for i in range(draw(st.integers(1, max_nodes))):
        node_id = f"n{i}"
        shape = draw(st.sampled_from(shapes if available else ["source"]))
        if shape == "source":
            flow.add_function(node_id, source(draw(st.integers(-5, 5))))
        elif shape in ("unary", "async"):
            flow.add_function(node_id, unary(i) if shape == "unary" else async_unary(i))
            newest = async_steps and draw(st.booleans())
            wire(available[-1] if newest else draw(st.sampled_from(available)), f"{node_id}.x")
        elif shape == "binary":
            flow.add_function(node_id, binary(i))
            wire(draw(st.sampled_from(available)), f"{node_id}.a")
            wire(draw(st.sampled_from(available)), f"{node_id}.b")
        else:
            flow.add_node(join_node(node_id), join)
            for end in draw(st.lists(st.sampled_from(available), min_size=1, max_size=max_join)):
                wire(end, f"{node_id}.values")
        if shape != "join":
            available.append((node_id, "output"))
    values: dict[str, int] = {}
    for name, ends in targets.items():
        if ends:
            flow.input(name, int, to=ends)
            values[name] = draw(st.integers(-100, 100))
    return flow, values
