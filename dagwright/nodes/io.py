"""Flow input and output nodes: where values enter and leave a run.

They are resolved by the scheduler itself, without a task each: an input node
yields the value given to the run (or its declared default), an output node
passes its one input through as a flow output.
"""

from __future__ import annotations

from typing import Any

from dagwright.compiler.ir import Node, thaw_json
from dagwright.compiler.signature import MISSING

__all__ = ["input_default", "input_name", "output_name"]


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
