"""add_function(..., collect=[...]): a fan-in of function results into one list parameter."""

from __future__ import annotations

import pytest

from dagwright import CompileError
from dagwright.flow import Flow


def source() -> int:
    return 2


def double(x: int) -> int:
    return 2 * x


def total(values: list[int], bonus: int = 0) -> int:
    return sum(values) + bonus


def fan(width: int) -> Flow:
    flow = Flow("fan-in")
    flow.add_function("src", source)
    flow.add_function("join", total, collect=["values"])
    for i in range(width):
        flow.add_function(f"w{i}", double)
        flow.connect("src.output", f"w{i}.x")
        flow.connect(f"w{i}.output", "join.values")
    flow.output("total", "join.output")
    return flow


def test_a_collect_parameter_receives_every_connected_value_in_connection_order() -> None:
    flow = fan(5)
    port = next(p for p in flow.compile().node("join").inputs if p.name == "values")
    assert port.collect and str(port.type) == "list[int]"
    result = flow.run()
    assert result.success and result.outputs == {"total": 20}
    assert result.nodes["join"].outputs == {"output": 20}


def test_a_collect_parameter_with_no_connection_receives_an_empty_list() -> None:
    flow = Flow("empty")
    flow.add_function("join", total, collect=["values"])
    flow.output("total", "join.output")
    assert flow.run().outputs == {"total": 0}


def test_collect_names_that_are_not_parameters_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match=r"add_function\('join'\): collect names unknown input\(s\) 'value'"):
        Flow("f").add_function("join", total, collect=["value"])
    with pytest.raises(TypeError, match=r"add_function\('join'\): collect takes a list of input names"):
        Flow("f").add_function("join", total, collect="values")


def test_a_collect_parameter_not_typed_as_a_list_fails_to_compile() -> None:
    flow = Flow("f")
    flow.add_function("src", source)
    flow.add_function("join", double, collect=["x"])
    flow.connect("src.output", "join.x")
    with pytest.raises(CompileError, match="DW014"):
        flow.compile()
