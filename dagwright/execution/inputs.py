"""Flow input and output nodes: where values enter and leave a run.

Every back end resolves them itself, without a task each: an input node yields the
value given to the run (or its declared default), an output node passes its one
input through as a flow output. :func:`run_values` is the one check of the values
given to a run, before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagwright.compiler.ir import INPUT_KIND, Node, thaw_json
from dagwright.compiler.signature import MISSING
from dagwright.compiler.suggest import suggest
from dagwright.compiler.types import value_misfit

__all__ = ["check_input_types", "input_default", "input_name", "output_name", "run_values"]


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


def run_values(flow: str, nodes: Iterable[Node], given: Mapping[str, Any]) -> dict[str, Any]:
    """The value of every flow input of a run, by name: given, or the input's default.

    Raises a ValueError naming unknown inputs (with a close match), required inputs not
    given, and values of the wrong type, before anything runs.
    """
    inputs = {input_name(node): node for node in nodes if node.kind == INPUT_KIND}
    unknown = [k for k in given if k not in inputs]
    if unknown:
        parts = []
        for name in unknown:
            close = suggest(name, inputs)
            parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"flow {flow!r} has no input {', '.join(parts)}; its inputs are: {', '.join(inputs) or 'none'}"
        )
    values: dict[str, Any] = {}
    absent = []
    for name, node in inputs.items():
        if name in given:
            values[name] = given[name]
            continue
        default = input_default(node)
        if default is MISSING:
            absent.append(name)
        else:
            values[name] = default
    if absent:
        raise ValueError(f"flow {flow!r} needs input(s) {', '.join(map(repr, absent))}")
    check_input_types(flow, inputs.values(), given)
    return values
