"""What the command line is handed: JSON inputs, Ctrl-C during an import, run ids, node ids, and what ``check`` runs.

CLI defects are reproduced with real runs of ``python -m dagwright`` in a temporary
directory; the rules underneath (``RunOptions``, the DW002 pass) are also tested in process.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from cli_support import run_many

from dagwright import Flow
from dagwright.cli.loader import TargetError
from dagwright.cli.run import parse_inputs
from dagwright.compiler.ir import Graph, Node, Port
from dagwright.compiler.passes import validate
from dagwright.compiler.types import ANY
from dagwright.execution.policy import RunOptions

Result = subprocess.CompletedProcess[str]

FLOW = """
from dagwright import Flow


def shout(question: str, tags: list[str]) -> str:
    return question.upper() + "".join(tags)


flow = Flow("qa")
flow.add_function("shout", shout)
flow.input("question", str)
flow.input("tags", list[str], default=[])
flow.output("loud", "shout.output")
"""

# Ctrl-C arrives while the module is being imported. The handler is set first: a process started from
# a test runner may inherit SIGINT ignored, and a terminal's Ctrl-C reaches Python's default handler.
INTERRUPTED = """
import os
import signal
import time

signal.signal(signal.SIGINT, signal.default_int_handler)
os.kill(os.getpid(), signal.SIGINT)
time.sleep(30)
"""


def run(*args: str, cwd: Path) -> Result:
    (result,) = run_many([list(args)], cwd=cwd, script=False)
    return result


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return path


def usage_error(result: Result) -> str:
    """Assert a plain usage error (exit 2, nothing on stdout, one line, no traceback); return the line."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-2000:])
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr[-2000:]
    return result.stderr.rstrip("\n")


def one_line(result: Result) -> str:
    """Assert a one-line answer on stderr and nothing on stdout; return the line."""
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1, result.stderr[-2000:]
    return result.stderr.rstrip("\n")


# --------------------------------------------------------------------------- 1. JSON nested too deeply


def nested(depth: int, leaf: str = '"x"') -> str:
    return "[" * depth + leaf + "]" * depth


def test_inputs_json_nested_50000_deep_is_a_usage_error_not_a_recursion_error(tmp_path: Path) -> None:
    write(tmp_path, "flows.py", FLOW)
    deep = '{"question": "hi", "tags": ' + nested(50_000) + "}"
    as_input = "tags=" + nested(50_000)
    by_json, by_input = run_many(
        [
            ["run", "flows.py:flow", "--inputs-json", deep],
            ["run", "flows.py:flow", "-i", "question=hi", "-i", as_input],
        ],
        cwd=tmp_path,
        script=False,
    )
    assert usage_error(by_json) == (
        "dagwright run: --inputs-json is nested too deeply: level 101 of [ and { opens at column 127; JSON inputs "
        "may nest at most 100 levels"
    )
    assert usage_error(by_input) == (
        "dagwright run: --input tags: the value is nested too deeply: level 101 of [ and { opens at column 101; "
        "JSON inputs may nest at most 100 levels"
    )


def graph_with_inputs() -> Graph:
    return Graph(
        "g",
        (
            Node("input:data", "input", outputs=(Port("data", ANY),)),
            Node("input:text", "input", outputs=(Port("text", ANY),)),
        ),
    )


def test_json_inputs_may_nest_100_levels_and_brackets_inside_strings_do_not_count() -> None:
    g = graph_with_inputs()
    at_limit = nested(99)  # 100 levels with the object holding it
    assert parse_inputs(g, [], '{"data": ' + at_limit + "}") == {"data": eval(at_limit)}
    assert parse_inputs(g, ["data=" + nested(100)], None) == {"data": eval(nested(100))}
    # Brackets and escaped quotes inside strings are text, not nesting.
    text = '"' + '\\"[{' * 500 + '"'
    assert parse_inputs(g, [], '{"data": ' + text + "}") == {"data": '"[{' * 500}
    with pytest.raises(
        TargetError, match=r"^--inputs-json is nested too deeply: level 101 of \[ and \{ opens at column 109;"
    ):
        parse_inputs(g, [], '{"data": ' + nested(100) + "}")
    with pytest.raises(
        TargetError, match=r"^--input data: the value is nested too deeply: level 101 of \[ and \{ opens at column 101;"
    ):
        parse_inputs(g, ["data=" + nested(101)], None)
    # Invalid JSON is still reported as invalid JSON.
    with pytest.raises(TargetError, match=r"^--inputs-json is not valid JSON: "):
        parse_inputs(g, [], '{"data": [1, }')


# --------------------------------------------------------------------------- 2. Ctrl-C while importing


def test_ctrl_c_while_importing_the_users_file_exits_130_with_one_line(tmp_path: Path) -> None:
    write(tmp_path, "flows.py", FLOW)
    write(tmp_path, "slow.py", INTERRUPTED)
    write(tmp_path, "slowpkg/__init__.py", "")
    write(tmp_path, "slowpkg/flows.py", INTERRUPTED)
    results = run_many(
        [
            ["check", "slow.py"],
            ["check", "flows.py", "slow.py", "--format", "json"],
            ["run", "slow.py:flow"],
            ["export", "slow.py"],
            ["render", "slow.py:flow"],
            ["check", "slowpkg.flows:flow"],
        ],
        cwd=tmp_path,
        script=False,
    )
    lines = [one_line(r) for r in results]
    assert [r.returncode for r in results] == [130] * len(results)
    assert lines == [
        "dagwright check: interrupted while importing slow.py",
        "dagwright check: interrupted while importing slow.py",
        "dagwright run: interrupted while importing slow.py",
        "dagwright export: interrupted while importing slow.py",
        "dagwright render: interrupted while importing slow.py",
        "dagwright check: interrupted while importing slowpkg.flows",
    ]


# --------------------------------------------------------------------------- 3. run ids

RUN_ID_RULE = "a run id is 1 to 128 ASCII letters, digits, _, - and ., the first a letter, digit or _"


@pytest.mark.parametrize(
    "run_id",
    ["r", "r1", "r-1", "_x", "0", "nightly.2024-05-01", "4f1c0a9e8d7b6c5a4f3e2d1c0b9a8f7e", "a" * 128, "run.0.1"],
)
def test_run_ids_within_the_rule_are_accepted(run_id: str) -> None:
    assert RunOptions(run_id=run_id).run_id == run_id


@pytest.mark.parametrize(
    ("run_id", "shown"),
    [
        ("", "''"),
        (" ", "' '"),
        ("-r", "'-r'"),
        (".r", "'.r'"),
        ("a b", "'a b'"),
        ("a/b", "'a/b'"),
        ("ü", "'ü'"),
        ("r\n", "'r\\n'"),
        ("a" * 129, "'aaaaaaaaaaaaaaaaaaaaaaaa…' (129 characters)"),
        ("x" * 5000, "'xxxxxxxxxxxxxxxxxxxxxxxx…' (5000 characters)"),
    ],
)
def test_run_ids_outside_the_rule_are_refused_and_the_rule_said(run_id: str, shown: str) -> None:
    with pytest.raises(ValueError) as raised:
        RunOptions(run_id=run_id)
    assert str(raised.value) == f"run_id {shown} is not a valid run id: {RUN_ID_RULE}"


def test_a_run_id_must_be_text() -> None:
    with pytest.raises(TypeError, match=r"^run_id must be a string \(or None for a fresh id\), got int$"):
        RunOptions(run_id=5)  # type: ignore[arg-type]


def test_an_empty_run_id_is_refused_not_replaced_by_a_fresh_one() -> None:
    flow = Flow("f")
    flow.add_function("shout", lambda text: text.upper())
    flow.input("text", str)
    with pytest.raises(ValueError, match=r"^run_id '' is not a valid run id: "):
        flow.run(text="a", run_id="")
    assert flow.run(text="a", run_id="mine-1").run_id == "mine-1"


def test_resume_with_a_bad_run_id_says_the_rule(tmp_path: Path) -> None:
    write(tmp_path, "flows.py", FLOW)
    empty, long, dask = run_many(
        [
            ["run", "flows.py:flow", "--checkpoint", "runs.db", "--resume", ""],
            ["run", "flows.py:flow", "--checkpoint", "runs.db", "--resume", "x" * 5000],
            ["run", "flows.py:flow", "--backend", "dask", "--checkpoint", "runs.db", "--resume", ""],
        ],
        cwd=tmp_path,
        script=False,
    )
    assert usage_error(empty) == f"dagwright run: --resume: run_id '' is not a valid run id: {RUN_ID_RULE}"
    assert usage_error(long) == (
        f"dagwright run: --resume: run_id 'xxxxxxxxxxxxxxxxxxxxxxxx…' (5000 characters) is not a valid run id: "
        f"{RUN_ID_RULE}"
    )
    assert usage_error(dask) == usage_error(empty)
    assert not (tmp_path / "runs.db").exists()  # refused before anything was opened


# --------------------------------------------------------------------------- 4. node ids: the rule and its message

NODE_RULE = (
    "ASCII letters, digits, _ and -, in segments separated by single dots, each segment starting with a letter, "
    "digit or _"
)
IO_RULE = f"{NODE_RULE}, the first segment with a letter or _"


def dw002(nid: str, kind: str = "function") -> list[str]:
    return [d.message for d in validate(Graph("ids", (Node(nid, kind),))) if d.code == "DW002"]


@pytest.mark.parametrize("nid", ["a", "A", "_", "0", "0a", "a_b-c", "a-", "a.b", "a.0", "a._b", "a.b-c.d_"])
def test_node_ids_the_message_allows_are_accepted(nid: str) -> None:
    assert dw002(nid) == []


@pytest.mark.parametrize(
    "nid", ["", "-lead", "a.-b", ".a", "a.", "a..b", "a b", "a/b", "a:b", "ü", "café", "ａ", "a\n", "٣"]
)
def test_node_ids_the_message_refuses_are_refused_with_that_message(nid: str) -> None:
    assert dw002(nid) == [f"invalid function node id {nid!r}: expected {NODE_RULE}"]


@pytest.mark.parametrize(("name", "ok"), [("q", True), ("_q", True), ("q.a-1", True), ("q.0", True), ("1q", False)])
def test_flow_input_and_output_names_follow_their_message(name: str, ok: bool) -> None:
    for kind in ("input", "output"):
        expected = (
            [] if ok else [f"invalid {kind} node id '{kind}:{name}': expected '{kind}:NAME', NAME being {IO_RULE}"]
        )
        assert dw002(f"{kind}:{name}", kind) == expected


@pytest.mark.parametrize("name", ["-q", "q.-a", "ü", "q..a", "q.", ""])
def test_flow_input_names_outside_the_rule_are_refused(name: str) -> None:
    assert dw002(f"input:{name}", "input") == [
        f"invalid input node id 'input:{name}': expected 'input:NAME', NAME being {IO_RULE}"
    ]


# --------------------------------------------------------------------------- 5. what check runs

SIDE_EFFECT = """
from pathlib import Path

from pydantic import BaseModel

# Importing this module leaves a mark: the test tells from it whether anything imported the module.
Path(__file__).with_name("imported.marker").write_text("imported", encoding="utf-8")


class Finding(BaseModel):
    text: str


def shout(question: str) -> Finding:
    return Finding(text=question.upper())
"""

SIDE_EFFECT_FLOW = """
from dagwright import Flow
from sidefx import shout

flow = Flow("qa")
flow.add_function("shout", shout)
flow.input("question", str)
flow.output("loud", "shout.output")
"""


def test_check_of_an_ir_file_imports_nothing_it_names(tmp_path: Path) -> None:
    write(tmp_path, "sidefx.py", SIDE_EFFECT)
    write(tmp_path, "flows.py", SIDE_EFFECT_FLOW)
    marker = tmp_path / "imported.marker"
    exported = run("export", "flows.py:flow", "-o", "graph.json", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert marker.exists()  # exporting the Python source imported it: the mark works
    ir = (tmp_path / "graph.json").read_text(encoding="utf-8")
    assert '"sidefx:shout"' in ir and "sidefx" in ir.replace('"sidefx:shout"', "")  # the function and the model
    marker.unlink()

    results = run_many(
        [
            ["check", "graph.json"],
            ["check", "--strict", "--format", "sarif", "graph.json:qa"],
            ["check", "*.json"],
            ["render", "graph.json", "--check"],
            ["export", "graph.json"],
        ],
        cwd=tmp_path,
        script=False,
    )
    assert [r.returncode for r in results] == [0] * len(results), [r.stderr for r in results]
    assert results[0].stdout == "qa: ok\n"
    assert not marker.exists(), "checking an IR file imported a module it names"

    # Checking the Python source does import it, and says so in its help.
    assert run("check", "flows.py", cwd=tmp_path).returncode == 0
    assert marker.exists()


def test_check_help_says_a_python_target_is_imported_and_runs(tmp_path: Path) -> None:
    shown = " ".join(run("check", "--help", cwd=tmp_path).stdout.split())
    assert (
        "Checking a Python file or module imports it, which runs its module-level code (and calls the function "
        "that :OBJ names, if it names one), as python FILE.py would: check only code you would run. An IR .json "
        "file is read as data: nothing it names is imported or run."
    ) in shown


def test_every_back_end_checks_a_given_run_id() -> None:
    from dagwright.backends.dask.client import run_on_dask

    flow = Flow("f")
    flow.add_function("shout", shout_text)
    flow.input("text", str)
    for run in (
        lambda: flow.run_kailash(text="a", run_id="-lead"),
        lambda: run_on_dask(flow, {"text": "a"}, run_id="-lead"),
    ):
        with pytest.raises(ValueError, match=r"^run_id '-lead' is not a valid run id: "):
            run()


def test_a_map_item_run_id_stays_within_the_limit() -> None:
    from dagwright.execution.policy import MAX_RUN_ID_LENGTH, child_run_id
    from dagwright.patterns.parallel_map import parallel_map

    step = Flow("step")
    step.add_function("shout", shout_text)
    step.input("text", str)
    step.output("shouted", "shout.output")
    mapped = parallel_map(step, over="text")
    longest = "r" * MAX_RUN_ID_LENGTH
    result = mapped.run(text=["a", "b"], run_id=longest)
    assert result.success, result.error
    assert result.outputs == {"shouted": ["A", "B"]}
    children = [child_run_id(longest, i) for i in range(12)]
    assert all(len(c) <= MAX_RUN_ID_LENGTH and RunOptions(run_id=c).run_id == c for c in children)
    assert len(set(children)) == 12 and child_run_id("r" * 127, 1) != child_run_id("r" * 128, 1)
    assert child_run_id("short", 3) == "short.3"


def shout_text(text: str) -> str:
    return text.upper()
