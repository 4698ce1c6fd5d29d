"""Flow input and output nodes: where values enter and leave a run.

They are resolved by the scheduler itself, without a task each: an input node
yields the value given to the run (or its declared default), an output node
passes its one input through as a flow output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagwright.compiler.ir import INPUT_KIND, Node, thaw_json
from dagwright.compiler.signature import MISSING
from dagwright.compiler.types import value_misfit

__all__ = ["check_input_types", "input_default", "input_name", "output_name"]


def input_name(node: Node) -> str:
    """The flow-level name of an input node."""
    name = node.config.get("name")
    return name if isinstance(name, str) else node.outputs[0].name


def output_name(node: Node) -> str:
    """The flow-level name of an output node."""
    name = node.config.get("name")
    return name if isinstance(name, str) else node.inputs[0].name


def input_default(node: Node) -> Any:
    """The declared default of an input node (plain JSON data, a fresh copy each call), or MISSING."""
    return thaw_json(node.config["default"]) if "default" in node.config else MISSING


def check_input_types(flow: str, nodes: Iterable[Node], values: Mapping[str, Any]) -> None:
    """Raise a ValueError naming every value given to a flow input that is not of the input's type.

    Checked before anything runs, on every back end: a wrong value would otherwise
    fail inside the node it reaches (or, for a function, not fail at all).
    """
    problems = []
    for node in nodes:
        if node.kind != INPUT_KIND or not node.outputs:
            continue
        name = input_name(node)
        if name in values:
            why = value_misfit(values[name], node.outputs[0].type)
            if why is not None:
                problems.append(f"{name!r} is typed {node.outputs[0].type}, and {why}")
    if problems:
        raise ValueError(f"flow {flow!r}: input {'; input '.join(problems)}")
