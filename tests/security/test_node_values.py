"""Values between nodes: each consumer gets its own copy, and a function's outputs fit their declared types.

Every case runs on the three back ends (the built-in scheduler, Dask on an in-process cluster,
Kailash's ``LocalRuntime``), since each gathers and hands over values its own way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict

import pytest
from distributed import Client, LocalCluster
from pydantic import BaseModel

from dagwright import Flow, Node, Port
from dagwright.compiler.ir import FrozenDict
from dagwright.compiler.types import (
    ANY,
    BOOL,
    BYTES,
    FLOAT,
    INT,
    NONE,
    STR,
    TypeExpr,
    exact_fits,
    from_python,
    list_of,
    optional,
    value_misfit,
)
from dagwright.execution.events import RunResult
from dagwright.execution.policy import RetryPolicy
from dagwright.execution.steps import json_copy, own_inputs

BACKENDS = ("builtin", "dask", "kailash")


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    # Threads, not processes: values handed between tasks on one worker are the very same objects.
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    with cluster, Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(params=BACKENDS)
def run(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., RunResult]:
    """Runs a flow on one back end: ``run(flow, **inputs)``."""
    backend = request.param
    if backend == "dask":
        client = request.getfixturevalue("dask_client")
        return lambda flow, **inputs: flow.run(inputs, backend="dask", client=client)
    if backend == "kailash":
        monkeypatch.setenv("HOME", str(tmp_path))  # Kailash may write tracking files under ~
        logging.getLogger("kailash").setLevel(logging.CRITICAL)
        return lambda flow, **inputs: flow.run_kailash(inputs)
    return lambda flow, **inputs: flow.run(inputs)


# ----------------------------------------------------------------------------- each consumer its own value


def make_rows() -> dict[str, list[list[int]]]:
    return {"rows": [[1, 2], [3]]}


def grow(table: dict[str, list[list[int]]]) -> int:
    # Mutates its input at every level: the dict, a list in it, and a list in that.
    table["rows"][0].append(99)
    table["rows"].append([7])
    table["extra"] = [[0]]
    return len(table["rows"])


def look(table: dict[str, list[list[int]]], n: int) -> dict[str, list[list[int]]]:
    # Runs after grow (it needs grow's n), so it sees whatever grow did to a shared value.
    return table


def test_a_node_mutating_its_input_changes_neither_its_sibling_nor_the_producer(
    run: Callable[..., RunResult],
) -> None:
    flow = Flow("siblings")
    flow.add_function("make", make_rows)
    flow.add_function("grow", grow)
    flow.add_function("look", look)
    flow.connect("make.output", "grow.table")
    flow.connect("make.output", "look.table")
    flow.connect("grow.output", "look.n")
    flow.output("seen", "look.output")
    flow.output("made", "make.output")

    result = run(flow)

    assert result.success, result.error
    assert result.nodes["grow"].outputs == {"output": 3}
    assert result.outputs["seen"] == {"rows": [[1, 2], [3]]}
    assert result.outputs["made"] == {"rows": [[1, 2], [3]]}
    assert result.nodes["make"].outputs == {"output": {"rows": [[1, 2], [3]]}}


def make_list() -> list[int]:
    return [1]


def append_all(values: list[list[int]]) -> list[list[int]]:
    for items in values:
        items.append(0)
    return values


def test_a_collect_port_receives_copies_of_what_it_gathers(run: Callable[..., RunResult]) -> None:
    flow = Flow("collect")
    flow.add_function("a", make_list)
    flow.add_node(
        Node(
            "join",
            "function",
            (Port("values", list_of(list_of(INT)), collect=True),),
            (Port("output", list_of(list_of(INT))),),
            FrozenDict({"function": f"{__name__}:append_all"}),
        ),
        append_all,
    )
    # One value gathered twice: the two items must not be one list either.
    flow.connect("a.output", "join.values")
    flow.connect("a.output", "join.values")
    flow.output("joined", "join.output")

    result = run(flow)

    assert result.success, result.error
    assert result.outputs["joined"] == [[1, 0], [1, 0]]
    assert result.nodes["a"].outputs == {"output": [1]}


def pop_first(items: list[int]) -> int:
    return items.pop(0)


def test_a_node_does_not_change_the_callers_input(run: Callable[..., RunResult]) -> None:
    flow = Flow("caller")
    flow.add_function("pop", pop_first)
    flow.input("items")
    flow.output("first", "pop.output")
    given = [5, 6]

    result = run(flow, items=given)

    assert result.success, result.error
    assert result.outputs["first"] == 5
    assert given == [5, 6]


def half_done() -> Callable[[list[int]], int]:
    calls: list[list[int]] = []

    def step(items: list[int]) -> int:
        calls.append(list(items))
        items.append(len(calls))  # what the first attempt leaves behind...
        if len(calls) == 1:
            raise ConnectionError("transient")
        return len(items)  # ...the retry must not see

    return step


def test_each_attempt_of_a_retried_node_gets_the_original_input(run: Callable[..., RunResult]) -> None:
    flow = Flow("retry")
    flow.add_function("make", make_list)
    flow.add_function("step", half_done())
    flow.connect("make.output", "step.items")
    flow.configure("step", retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=False))

    result = run(flow)

    assert result.success, result.error
    assert result.nodes["step"].attempts == 2
    assert result.nodes["step"].outputs == {"output": 2}
    assert result.nodes["make"].outputs == {"output": [1]}


def test_json_copy_copies_json_containers_all_the_way_down_and_nothing_else() -> None:
    shared = [1]
    model = Finding(claim="c", score=1.0)
    value: dict[str, Any] = {
        "a": [shared, shared],
        "t": (1, [2]),
        "m": [model],
        "o": OrderedDict(k=[3]),
        "d": defaultdict(list),
    }
    copied = json_copy(value)
    assert copied == value
    assert copied["a"][0] is not shared and copied["a"][0] is not copied["a"][1]  # as JSON would carry it
    assert copied["t"][1] is not value["t"][1]
    assert copied["m"] is not value["m"] and copied["m"][0] is model  # not JSON data: handed over as it is
    assert copied["o"]["k"] is not value["o"]["k"] and type(copied["o"]) is OrderedDict
    assert type(copied["d"]) is defaultdict
    scalars = {"x": 1, "s": "t", "n": None}
    assert own_inputs(scalars) is scalars  # nothing to copy: nothing built


class _Locked(dict[str, Any]):
    """A dict that cannot be copied (it holds a lock)."""


def test_an_input_that_cannot_be_copied_fails_its_node_instead_of_hanging_the_run() -> None:
    def make() -> Any:
        locked = _Locked()
        locked["lock"] = threading.Lock()
        return locked

    def use(value: Any) -> int:
        return 1

    flow = Flow("locked")
    flow.add_function("make", make)
    flow.add_function("use", use)
    flow.connect("make.output", "use.value")

    async def main() -> RunResult:
        return await asyncio.wait_for(flow.arun(), 10)

    result = asyncio.run(main())
    assert not result.success
    assert (result.nodes["use"].status, result.nodes["use"].error_type) == ("failed", "TypeError")


# ----------------------------------------------------------------------------- outputs fit their declared types


def seven() -> int:
    return "7"  # type: ignore[return-value]  # the defect under test


async def seven_async() -> int:
    return "7"  # type: ignore[return-value]


def inc(x: int) -> int:
    return x + 1


@pytest.mark.parametrize("fn", [seven, seven_async], ids=["sync", "async"])
def test_a_function_returning_the_wrong_type_fails_at_its_own_boundary(
    run: Callable[..., RunResult], fn: Callable[[], Any]
) -> None:
    flow = Flow("mistyped")
    flow.add_function("bad", fn)
    flow.add_function("use", inc)
    flow.connect("bad.output", "use.x")
    flow.output("y", "use.output")

    result = run(flow)

    assert not result.success
    bad = result.nodes["bad"]
    assert (bad.status, bad.error_type) == ("failed", "TypeError")
    assert bad.error is not None
    for part in ("'bad'", "output 'output'", "declared int", "'7' (str)"):
        assert part in bad.error, bad.error
    assert result.nodes["use"].status in ("skipped", "cancelled")
    assert result.nodes["use"].outputs == {}


class Parts(TypedDict):
    count: int
    names: list[str]


def parts() -> Parts:
    return {"count": 2, "names": ["a", 3]}  # type: ignore[list-item]


def test_each_output_of_a_typeddict_function_is_checked(run: Callable[..., RunResult]) -> None:
    flow = Flow("parts")
    flow.add_function("parts", parts)
    flow.output("names", "parts.names")

    result = run(flow)

    record = result.nodes["parts"]
    assert (record.status, record.error_type) == ("failed", "TypeError")
    assert record.error is not None
    assert "output 'names'" in record.error and "list[str]" in record.error and "item 1" in record.error


class Finding(BaseModel):
    claim: str
    score: float


def finding() -> Finding:
    return Finding(claim="tides", score=1)


def whole() -> float:
    return 3  # an int is a float


def nothing() -> int | None:
    return None


def anything() -> Any:
    return object()


def numbers() -> list[int]:
    return [1, 2, 3]


@pytest.mark.parametrize("fn", [finding, whole, nothing, numbers])
def test_outputs_that_fit_their_types_pass(run: Callable[..., RunResult], fn: Callable[[], Any]) -> None:
    flow = Flow("fits")
    flow.add_function("f", fn)
    flow.output("out", "f.output")
    result = run(flow)
    assert result.success, result.error


def test_an_any_output_takes_any_value() -> None:
    # Not JSON data, so only the built-in back end (nothing to serialize) carries it out of the run.
    flow = Flow("any")
    flow.add_function("f", anything)
    flow.output("out", "f.output")
    result = flow.run()
    assert result.success, result.error


def test_the_error_of_a_huge_wrong_value_stays_short() -> None:
    def many() -> list[int]:
        return ["x" * 1000] * 10_000  # type: ignore[list-item]

    flow = Flow("huge")
    flow.add_function("many", many)
    result = flow.run()
    error = result.nodes["many"].error
    assert error is not None and "list[int]" in error and len(error) < 1000


# ----------------------------------------------------------------------------- the fast path agrees with value_misfit


SAMPLES: list[object] = [0, 1, -3, 2.5, True, False, None, "", "x", b"b", bytearray(b"c"), [], [1], (1,), {}, {"a": 1}]
TYPES: list[TypeExpr] = [
    INT,
    FLOAT,
    STR,
    BOOL,
    BYTES,
    NONE,
    ANY,
    optional(INT),
    list_of(INT),
    list_of(ANY),
    from_python(dict[str, int]),
    from_python(dict[Any, Any]),
    from_python(tuple[Any, ...]),
    from_python(int | str),
    from_python(Literal["a", 1]),
]


@pytest.mark.parametrize("t", TYPES, ids=str)
def test_exact_fits_never_passes_a_value_value_misfit_rejects(t: TypeExpr) -> None:
    fits = exact_fits(t)
    for value in SAMPLES:
        if fits is None or type(value) in fits:
            assert value_misfit(value, t) is None, (value, t)
