"""``dagwright render --run RUN.json``: a saved run read back and checked against the flow it is drawn on.

A run is saved with ``RunResult.to_json()`` (``result.to_json(outputs=False)`` when its
outputs are not plain JSON). The overlay matches records to nodes by id, so a run of
another flow, or of an older version of this one, could draw silently wrong or not at
all: a run that shares no node with the flow is refused, and one whose graph hash
differs is drawn with a warning.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from dagwright.cli.loader import TargetError
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND, Graph
from dagwright.execution.events import RunResult

__all__ = ["RUN_HELP", "add_run_option", "load_run"]

RUN_HELP = (
    "draw a saved run on the flow: status, time, tokens and cost per node (a file written with RunResult.to_json())"
)


def add_run_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--run RUN.json`` to the ``render`` subcommand's parser."""
    parser.add_argument("--run", metavar="RUN.json", help=RUN_HELP)


def _read(path: str | os.PathLike[str]) -> RunResult:
    shown = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise TargetError(f"cannot read run file {shown}: {exc.strerror or exc}") from None
    try:
        return RunResult.from_json(data)
    except ValueError as exc:
        raise TargetError(f"{shown}: {exc}") from None


def load_run(path: str | os.PathLike[str], graph: Graph, *, warn: TextIO | None = None) -> RunResult:
    """The run saved in ``path``, to be drawn on ``graph``.

    Raises :class:`TargetError` (exit status 2) when the file cannot be read, is not a saved run,
    or names no node of ``graph``; warns on ``warn`` (default stderr) when it was a run of another
    version of the flow, or of a flow by another name.
    """
    run = _read(path)
    out = warn if warn is not None else sys.stderr
    ids = {node.id for node in graph.nodes}
    # Flows share input and output ids ("input:topic") by name alone: a match must be a node that works.
    working = {node.id for node in graph.nodes if node.kind not in (INPUT_KIND, OUTPUT_KIND)}
    shared = [node_id for node_id in run.nodes if node_id in ids]
    if not working.intersection(run.nodes):
        raise TargetError(
            f"run {run.run_id} in {os.fspath(path)} (flow {run.flow!r}) has no node of flow {graph.name!r}: "
            "was it saved from another flow?"
        )
    about = f"dagwright render: run {run.run_id}"
    if run.flow != graph.name:
        out.write(f"{about} is of flow {run.flow!r}; drawn on {graph.name!r} where the node ids match\n")
    elif run.graph_hash and run.graph_hash != graph.content_hash:
        # The hash covers every node's config and every edge: any edit since the run changes it.
        out.write(f"{about} was of another version of flow {graph.name!r}; drawn where the node ids match\n")
    missing = len(run.nodes) - len(shared)
    if missing:
        out.write(f"{about}: {missing} of its nodes are not in the flow and are not drawn\n")
    return run
