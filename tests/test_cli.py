"""The ``dagwright`` command line, run as a real subprocess (``python -m dagwright`` and the console script).

Each test writes small flow files into a temporary directory and checks exit
codes, the exact reports, and that every usage problem is said plainly (exit 2,
one line on stderr, never a traceback).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import dagwright
from dagwright import CODES, Graph

ROOT = Path(__file__).parent.parent
SCRIPT = Path(sys.executable).with_name("dagwright")

GOOD = """
from dagwright import Flow


def shout(answer: str) -> str:
    return answer.upper()


flow = Flow("qa")
flow.input("question", str)
flow.add_agent("qa", "question: str -> answer: str")
flow.add_function("shout", shout)
flow.connect("qa.answer", "shout.answer")
flow.output("loud", "shout.output")
"""

BROKEN = """
from dagwright import Flow

flow = Flow("summary")
flow.input("document", str)
flow.add_agent("extract", "document: str -> bullets: list[str]")
flow.add_agent("polish", "text: str, style: str -> summary: str")
flow.connect("extract.bullets", "polish.text")
flow.output("summary", "polish.summary")
"""

WARNS = """
from dagwright import Flow

flow = Flow("support")
flow.input("ticket", str)
flow.add_agent("sentiment", "ticket: str -> mood: str")
flow.add_agent("responder", "ticket: str -> reply: str")
flow.output("reply", "responder.reply")
"""


def run(
    *args: str | Path, cwd: Path, script: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (result,) = run_many([args], cwd=cwd, script=script, env=env)
    return result


def run_many(
    commands: list[tuple[str | Path, ...]], *, cwd: Path, script: bool = False, env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Run independent command lines side by side (each one starts a Python process)."""
    prefix = [str(SCRIPT)] if script else [sys.executable, "-m", "dagwright"]
    procs = [
        (
            argv,
            subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=cwd,
                env={**os.environ, **(env or {})},
            ),
        )
        for argv in ([*prefix, *map(str, args)] for args in commands)
    ]
    results = []
    for argv, proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return results


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    """The 1-based line holding ``needle`` (which must occur once)."""
    lines = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line]
    assert len(lines) == 1, f"{needle!r} occurs on lines {lines}"
    return lines[0]


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """Assert a plain usage error (exit 2, nothing on stdout, one line, no traceback); return it."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    return result.stderr


# --------------------------------------------------------------------------- what a target can be


def test_check_a_flow_object(tmp_path: Path) -> None:
    write(tmp_path, "flows.py", GOOD)
    result = run("check", "flows.py:flow", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "flows.py:flow: ok\n", "")


def test_check_an_agent_object_checks_it_as_a_one_node_flow(tmp_path: Path) -> None:
    write(
        tmp_path,
        "agents.py",
        """
        class Agent:
            def __init__(self, signature: str) -> None:
                self.signature = signature
                self.config = {"model": "gpt-4o-mini"}


        qa = Agent("question: str, context: str = '' -> answer: str, confidence: float")
        """,
    )
    result = run("check", "agents.py:qa", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "agents.py:qa: ok\n")
    exported = run("export", "agents.py:qa", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    graph = Graph.from_json(exported.stdout)
    assert [n.id for n in graph.input_nodes] == ["input:question", "input:context"]
    assert graph.node("input:context").config["default"] == ""
    assert [n.id for n in graph.output_nodes] == ["output:answer", "output:confidence"]
    assert graph.node("qa").config["agent"] == {"model": "gpt-4o-mini"}


def test_check_a_zero_argument_callable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "factory.py",
        """
        from dagwright import Flow


        def build():
            flow = Flow("built")
            flow.input("document", str)
            flow.add_agent("extract", "document: str -> bullets: list[str]")
            flow.add_agent("polish", "text: str -> summary: str")
            flow.connect("extract.bullets", "polish.text")
            return flow


        class Agent:
            signature = "question: str -> answer: str"


        def make_agent():
            return Agent()
        """,
    )
    result = run("check", "factory.py:build", cwd=tmp_path)
    assert result.returncode == 1
    line = line_of(path, 'flow.connect("extract.bullets", "polish.text")')
    assert result.stdout.splitlines()[:2] == [
        "factory.py:build: 1 error",
        "  error DW007 [type-mismatch] polish.text: extract.bullets (list[str]) cannot flow into polish.text (str): "
        f"list[str] is not assignable to str: a container is not text (factory.py:{line})",
    ]
    agent = run("check", "factory.py:make_agent", cwd=tmp_path)
    assert (agent.returncode, agent.stdout) == (0, "factory.py:make_agent: ok\n")


def test_check_a_file_checks_every_module_level_flow(tmp_path: Path) -> None:
    extra = """
    broken = Flow("summary")
    broken.add_agent("polish", "text: str, style: str -> summary: str")
    broken.output("summary", "polish.summary")
    """
    write(tmp_path, "two.py", GOOD + textwrap.dedent(extra))
    result = run("check", "--format", "json", "two.py", cwd=tmp_path)
    assert result.returncode == 1
    flows = json.loads(result.stdout)["flows"]
    assert [(f["flow"], f["summary"]["error"]) for f in flows] == [("two.py:flow", 0), ("two.py:broken", 2)]


def test_check_package_module_attr_on_pythonpath(tmp_path: Path) -> None:
    write(tmp_path / "src", "teamflows/__init__.py", "")
    module = write(tmp_path / "src", "teamflows/research.py", BROKEN)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(tmp_path / "src")}
    result = run("check", "--format", "json", "teamflows.research:flow", cwd=elsewhere, env=env)
    assert result.returncode == 1, result.stderr
    (report,) = json.loads(result.stdout)["flows"]
    assert report["flow"] == "teamflows.research:flow"
    by_code = {d["code"]: d for d in report["diagnostics"]}
    assert sorted(by_code) == ["DW007", "DW009"]
    assert by_code["DW007"]["location"] == {
        "file": str(module),
        "line": line_of(module, 'flow.connect("extract.bullets", "polish.text")'),
    }
    whole = run("check", "teamflows.research", cwd=elsewhere, env=env)
    assert whole.returncode == 1
    assert whole.stdout.startswith("teamflows.research:flow: 2 errors\n")
    missing = usage_error(run("check", "teamflows.nope:flow", cwd=elsewhere, env=env))
    assert missing == "dagwright check: 'teamflows.nope:flow': no file or module named 'teamflows.nope'\n"


def test_check_module_whose_own_import_fails_names_the_missing_dependency(tmp_path: Path) -> None:
    # The missing module's name ('agents') is a prefix of the target's ('agents_team.flows'): still,
    # what is missing is the dependency, not the target.
    path = write(tmp_path, "agents_team/flows.py", "from dagwright import Flow\nimport agents\n")
    write(tmp_path, "agents_team/__init__.py", "")
    err = usage_error(run("export", "agents_team.flows:flow", cwd=tmp_path))
    assert err == (
        "dagwright export: cannot import agents_team.flows: ModuleNotFoundError: "
        f"No module named 'agents' (at {path}:2)\n"
    )
    # check reports it as the file's DW019 (exit 1) and goes on with the other targets.
    checked = run("check", "--format", "json", "agents_team.flows:flow", cwd=tmp_path)
    assert checked.returncode == 1
    (report,) = json.loads(checked.stdout)["flows"]
    assert [(d["code"], d["location"]) for d in report["diagnostics"]] == [("DW019", {"file": str(path), "line": 2})]


def test_check_an_exported_ir_file(tmp_path: Path) -> None:
    write(tmp_path, "flows.py", GOOD)
    exported = run("export", "flows.py:flow", "-o", "graph.json", cwd=tmp_path)
    assert (exported.returncode, exported.stdout, exported.stderr) == (0, "", "")
    result = run("check", "graph.json", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "qa: ok\n")

    # A broken graph written as JSON is checked from the JSON alone (nothing is imported).
    path = write(tmp_path, "broken_src.py", BROKEN)
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    (tmp_path / "broken.json").write_text(namespace["flow"].to_graph().to_json(), encoding="utf-8")
    path.unlink()
    broken = run("check", "--format", "json", "broken.json", cwd=tmp_path)
    assert broken.returncode == 1
    (report,) = json.loads(broken.stdout)["flows"]
    assert [(d["code"], d["node"], d["port"]) for d in report["diagnostics"]] == [
        ("DW007", "polish", "text"),
        ("DW009", "polish", "style"),
    ]

    (tmp_path / "garbage.json").write_text("{not json", encoding="utf-8")
    err = usage_error(run("check", "garbage.json", cwd=tmp_path))
    assert err.startswith("dagwright check: garbage.json: not valid JSON: ")


# --------------------------------------------------------------------------- exit codes


def test_exit_codes_clean_errors_and_strict_warnings(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "broken.py", BROKEN)
    write(tmp_path, "warns.py", WARNS)
    good, good_strict, broken, warned, warned_strict, mixed = run_many(
        [
            ("check", "good.py"),
            ("check", "--strict", "good.py"),
            ("check", "broken.py"),
            ("check", "warns.py"),
            ("check", "--strict", "warns.py"),
            # One failing target fails the run, whatever its position.
            ("check", "good.py", "broken.py", "good.py"),
        ],
        cwd=tmp_path,
    )
    assert [r.returncode for r in (good, good_strict, broken, warned, warned_strict, mixed)] == [0, 0, 1, 0, 1, 1]
    assert warned.stdout.splitlines()[0] == "warns.py:flow: 1 warning"
    assert warned_strict.stdout == warned.stdout


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    err = usage_error(run("check", "nowhere/flows.py:flow", cwd=tmp_path))
    assert err == "dagwright check: 'nowhere/flows.py:flow': no such file 'nowhere/flows.py'\n"
    err = usage_error(run("check", "flows.py", cwd=tmp_path))
    assert err == "dagwright check: 'flows.py': no such file 'flows.py'\n"


def test_import_error_quotes_the_import_and_the_users_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flows.py",
        """
        from dagwright import Flow

        import nonexistent_helpers

        flow = Flow("x")
        """,
    )
    line = line_of(path, "import nonexistent_helpers")
    err = usage_error(run("export", "flows.py:flow", cwd=tmp_path))
    assert err == (
        "dagwright export: cannot import flows.py: ModuleNotFoundError: No module named 'nonexistent_helpers' "
        f"(at {path}:{line})\n"
    )
    checked = run("check", "flows.py:flow", cwd=tmp_path)
    assert (checked.returncode, checked.stderr) == (1, "")
    assert checked.stdout.splitlines()[:2] == [
        "flows.py:flow: 1 error",
        "  error DW019 [import-failed] cannot import flows.py: ModuleNotFoundError: No module named "
        f"'nonexistent_helpers' (flows.py:{line})",
    ]


def test_error_raised_in_a_helper_module_points_at_the_users_import_line(tmp_path: Path) -> None:
    write(tmp_path, "helpers.py", "LIMIT = int('ten')\n")
    path = write(tmp_path, "flows.py", "from dagwright import Flow\nfrom helpers import LIMIT\n")
    err = usage_error(run("render", "flows.py", cwd=tmp_path))
    assert err == (
        "dagwright render: cannot import flows.py: ValueError: invalid literal for int() with base 10: 'ten' "
        f"(at {path}:2)\n"
    )
    checked = run("check", "flows.py", cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[1] == (
        "  error DW019 [import-failed] cannot import flows.py: ValueError: invalid literal for int() with base 10: "
        "'ten' (flows.py:2)"
    )


def test_bad_signature_at_import_points_at_the_users_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "flows.py", 'from dagwright import Flow\n\nflow = Flow("x")\nflow.add_agent("a", "q -> a: strr")\n'
    )
    checked = run("check", "--format", "json", "flows.py", cwd=tmp_path)
    assert checked.returncode == 1
    (report,) = json.loads(checked.stdout)["flows"]
    (diagnostic,) = report["diagnostics"]
    assert diagnostic["code"] == "DW019"
    assert diagnostic["message"].startswith("cannot import flows.py: SignatureError: output field 'a': unknown type")
    assert "did you mean 'str'?" in diagnostic["message"]
    assert diagnostic["location"] == {"file": str(path), "line": 4}


def test_syntax_error_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "flows.py", 'from dagwright import Flow\n\nflow = Flow("x"\nflow.output("a")\n')
    err = usage_error(run("export", "flows.py:flow", cwd=tmp_path))
    assert err == f"dagwright export: cannot import flows.py: SyntaxError: '(' was never closed (at {path}:3)\n"
    checked = run("check", "flows.py:flow", cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stdout == (
        "flows.py:flow: 1 error\n  error DW019 [import-failed] cannot import flows.py: SyntaxError: '(' was never "
        "closed (flows.py:3)\n"
    )


def test_unknown_attribute_suggests_the_close_name(tmp_path: Path) -> None:
    write(tmp_path, "flows.py", GOOD.replace("flow = Flow", "research_flow = Flow").replace("flow.", "research_flow."))
    err = usage_error(run("check", "flows.py:reserch_flow", cwd=tmp_path))
    assert err == (
        "dagwright check: 'flows.py:reserch_flow': 'reserch_flow' is not defined there; did you mean 'research_flow'?\n"
    )
    err = usage_error(run("check", "flows.py:", cwd=tmp_path))
    assert err == "dagwright check: 'flows.py:': nothing after ':'; write FILE:OBJECT or MODULE:OBJECT\n"


def test_objects_of_the_wrong_kind(tmp_path: Path) -> None:
    write(
        tmp_path,
        "things.py",
        """
        LIMIT = 42
        NAME = "research"


        class Agent:
            signature = "question: str -> answer: str"


        class Broken:
            signature = 17


        def needs(topic):
            return topic


        def returns_text():
            return "not a flow"


        broken_agent = Broken()
        """,
    )
    cases = {
        "LIMIT": "LIMIT is an int, not a Flow, an agent or a function",
        "NAME": "NAME is a str, not a Flow, an agent or a function",
        "Agent": "Agent is an agent class; name an instance of it, or a function returning one",
        "needs": "needs() needs arguments (topic); name a function that takes none",
        "returns_text": "returns_text() returned str, not a Flow or an agent",
        "broken_agent": "broken_agent has a 'signature' but is not a usable agent: a signature must be a Signature "
        "subclass, an instance of one, or a string like 'question: str -> answer: str'; got int",
    }
    results = run_many([("check", f"things.py:{name}") for name in cases], cwd=tmp_path)
    for (name, message), result in zip(cases.items(), results, strict=True):
        assert usage_error(result) == f"dagwright check: things.py:{name}: {message}\n"


def test_callable_that_raises_names_the_error_and_the_users_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "factory.py",
        """
        from dagwright import Flow


        def build():
            raise RuntimeError("model registry unavailable")


        def build_wrongly():
            flow = Flow("x")
            flow.add_function("step", 42)
            return flow
        """,
    )
    err = usage_error(run("check", "factory.py:build", cwd=tmp_path))
    line = line_of(path, "raise RuntimeError")
    assert err == (
        "dagwright check: factory.py:build: build() raised RuntimeError: model registry unavailable "
        f"(at {path}:{line})\n"
    )
    # A TypeError inside the function is the function's own error, not a complaint about its arguments.
    err = usage_error(run("check", "factory.py:build_wrongly", cwd=tmp_path))
    line = line_of(path, 'flow.add_function("step", 42)')
    assert err == (
        "dagwright check: factory.py:build_wrongly: build_wrongly() raised TypeError: "
        f"add_function('step') takes a callable, got int (at {path}:{line})\n"
    )


def test_file_without_flows(tmp_path: Path) -> None:
    write(tmp_path, "util.py", "def helper() -> int:\n    return 1\n")
    err = usage_error(run("check", "util.py", cwd=tmp_path))
    assert err == (
        "dagwright check: 'util.py' defines no Flow at module level; name one with util.py:NAME "
        "(a Flow, an agent, or a function returning one)\n"
    )
    allowed = run("check", "--allow-empty", "util.py", cwd=tmp_path)
    assert (allowed.returncode, allowed.stdout) == (0, "")
    assert allowed.stderr == "dagwright check: --allow-empty: skipped util.py (no Flow defined at module level)\n"


# --------------------------------------------------------------------------- report formats


def test_json_report_holds_every_diagnostic(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", BROKEN)
    result = run("check", "--format", "json", "broken.py", cwd=tmp_path)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    (report,) = data["flows"]
    assert report["flow"] == "broken.py:flow"
    assert report["summary"] == {"error": 2, "warning": 0, "info": 0}
    rows = [(d["code"], d["name"], d["severity"], d["node"], d["port"]) for d in report["diagnostics"]]
    assert rows == [
        ("DW007", "type-mismatch", "error", "polish", "text"),
        ("DW009", "missing-input", "error", "polish", "style"),
    ]
    dw007, dw009 = report["diagnostics"]
    assert dw007["location"] == {"file": str(path), "line": line_of(path, 'flow.connect("extract.bullets"')}
    assert dw007["edge"] == {"source": "extract", "source_port": "bullets", "target": "polish", "target_port": "text"}
    assert dw009["location"] == {"file": str(path), "line": line_of(path, 'flow.add_agent("polish"')}
    assert dw009["hint"] == "connect an output to it, or declare flow.input('style')"


def _sarif(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    path = write(tmp_path, "broken.py", BROKEN)
    result = run("check", "--format", "sarif", "broken.py", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    return json.loads(result.stdout), path


def test_sarif_report_structure(tmp_path: Path) -> None:
    log, path = _sarif(tmp_path)
    assert log["version"] == "2.1.0"
    (run_,) = log["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "dagwright"
    assert driver["version"] == dagwright.__version__
    assert [rule["id"] for rule in driver["rules"]] == list(CODES)
    assert [rule["name"] for rule in driver["rules"]] == [info.name for info in CODES.values()]
    results = run_["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("DW007", "error"), ("DW009", "error")]
    for r in results:
        assert driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
        assert r["message"]["text"]
    connect_line = line_of(path, 'flow.connect("extract.bullets", "polish.text")')
    add_line = line_of(path, 'flow.add_agent("polish"')
    physical = [r["locations"][0]["physicalLocation"] for r in results]
    assert physical == [
        {"artifactLocation": {"uri": "broken.py"}, "region": {"startLine": connect_line}},
        {"artifactLocation": {"uri": "broken.py"}, "region": {"startLine": add_line}},
    ]
    assert results[1]["message"]["text"] == (
        "required input polish.style (str) is not connected Hint: connect an output to it, or declare "
        "flow.input('style')"
    )


def test_sarif_levels_cover_warnings_and_notes(tmp_path: Path) -> None:
    write(tmp_path, "warns.py", WARNS)
    write(
        tmp_path,
        "notes.py",
        """
        from dagwright import Flow

        flow = Flow("notes")
        flow.input("q", str)
        flow.add_agent("a", "q: str -> answer: str, trace: list[str]")
        flow.output("answer", "a.answer")
        """,
    )
    result = run("check", "--format", "sarif", "warns.py", "notes.py", cwd=tmp_path)
    assert result.returncode == 0
    results = json.loads(result.stdout)["runs"][0]["results"]
    assert [(r["ruleId"], r["level"], r["properties"]["flow"]) for r in results] == [
        ("DW012", "warning", "warns.py:flow"),
        ("DW013", "note", "notes.py:flow"),
    ]


# A hand-written schema of the SARIF 2.1.0 parts the report relies on (the full
# schema is large and lives online; the tests run offline).
SARIF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "$schema": {"type": "string", "format": "uri"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool", "results"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name", "rules"],
                                "properties": {
                                    "name": {"type": "string", "minLength": 1},
                                    "version": {"type": "string"},
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id", "shortDescription"],
                                            "properties": {
                                                "id": {"type": "string", "pattern": "^DW[0-9]{3}$"},
                                                "shortDescription": {
                                                    "type": "object",
                                                    "required": ["text"],
                                                    "properties": {"text": {"type": "string", "minLength": 1}},
                                                },
                                                "defaultConfiguration": {
                                                    "type": "object",
                                                    "properties": {"level": {"enum": ["error", "warning", "note"]}},
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["ruleId", "level", "message", "locations"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": 0},
                                "level": {"enum": ["error", "warning", "note"]},
                                "message": {
                                    "type": "object",
                                    "required": ["text"],
                                    "properties": {"text": {"type": "string", "minLength": 1}},
                                },
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation", "region"],
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "required": ["uri"],
                                                        "properties": {"uri": {"type": "string", "minLength": 1}},
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "required": ["startLine"],
                                                        "properties": {"startLine": {"type": "integer", "minimum": 1}},
                                                    },
                                                },
                                            }
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_sarif_report_validates_against_schema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    log, _ = _sarif(tmp_path)
    jsonschema.validate(log, SARIF_SCHEMA)
    log["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, SARIF_SCHEMA)


_GITHUB = re.compile(r"^::(error|warning|notice) ([^:]*)::(.*)$")


def _unescape(text: str) -> str:
    for escaped, raw in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, raw)
    return text


def _github_lines(stdout: str) -> list[tuple[str, dict[str, str], str]]:
    parsed = []
    for line in stdout.splitlines():
        match = _GITHUB.match(line)
        assert match is not None, line
        props = dict(item.split("=", 1) for item in match.group(2).split(","))
        parsed.append((match.group(1), {k: _unescape(v) for k, v in props.items()}, _unescape(match.group(3))))
    return parsed


def test_github_annotations_point_at_the_connect_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", BROKEN)
    result = run("check", "--format", "github", "broken.py", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        f"::error file=broken.py,line={line_of(path, 'flow.connect(')},title=DW007 type-mismatch (broken.py%3Aflow)::"
        "polish.text: extract.bullets (list[str]) cannot flow into polish.text (str): list[str] is not assignable "
        "to str: a container is not text"
    )
    (_, second) = _github_lines(result.stdout)
    assert second[0] == "error"
    assert second[1] == {
        "file": "broken.py",
        "line": str(line_of(path, 'flow.add_agent("polish"')),
        "title": "DW009 missing-input (broken.py:flow)",
    }


def test_github_annotations_escape_properties_and_data(tmp_path: Path) -> None:
    # A directory name holding every character that must be escaped in a property.
    odd = "team,a:b 100%\nflows"
    path = write(
        tmp_path / odd,
        "gate.py",
        """
        from dagwright import Flow

        flow = Flow("gate")
        flow.input("draft", str)
        flow.add_agent("reviewer", "draft: str -> verdict: Literal['100%', 'no']")
        flow.add_agent("publisher", "draft: str, go: Literal['yes', 'no'] -> url: str")
        flow.connect("reviewer.verdict", "publisher.go")
        flow.output("url", "publisher.url")
        """,
    )
    target = f"{odd}/gate.py"
    result = run("check", "--format", "github", target, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    (raw,) = result.stdout.splitlines()
    assert raw.startswith("::error file=team%2Ca%3Ab 100%25%0Aflows/gate.py,line=")
    ((command, props, message),) = _github_lines(result.stdout)
    assert command == "error"
    assert props == {
        "file": target,
        "line": str(line_of(path, "flow.connect(")),
        "title": f"DW007 type-mismatch ({target}:flow)",
    }
    assert "'100%'" in message
    assert "%" not in raw.split("::", 2)[2].replace("%25", "")


def test_output_file(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", BROKEN)
    to_stdout = run("check", "--format", "sarif", "broken.py", cwd=tmp_path)
    to_file = run("check", "--format", "sarif", "-o", "report.sarif", "broken.py", cwd=tmp_path)
    assert (to_file.returncode, to_file.stdout, to_file.stderr) == (1, "", "")
    assert (tmp_path / "report.sarif").read_text(encoding="utf-8") == to_stdout.stdout
    err = usage_error(run("check", "-o", "no/such/dir/report.txt", "broken.py", cwd=tmp_path))
    assert err == "dagwright check: cannot write no/such/dir/report.txt: No such file or directory\n"


# --------------------------------------------------------------------------- export


def test_export_prints_ir_equal_to_the_compiled_flow(tmp_path: Path) -> None:
    path = write(tmp_path, "qa_pipeline.py", GOOD)
    result = run("export", "qa_pipeline.py:flow", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    exported = Graph.from_json(result.stdout)

    # The same file compiled here, imported under the name the command line gives it.
    namespace: dict[str, Any] = {"__name__": "qa_pipeline"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    compiled = namespace["flow"].compile()
    assert exported == compiled
    assert exported.content_hash == compiled.content_hash
    assert exported.node("shout").config["function"] == "qa_pipeline:shout"

    # Another process (another hash seed) exports the very same text.
    again = run("export", "qa_pipeline.py:flow", cwd=tmp_path, env={"PYTHONHASHSEED": "12345"})
    assert again.stdout == result.stdout


def test_export_of_a_broken_flow_fails_with_the_diagnostics_on_stderr(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", BROKEN)
    result = run("export", "broken.py:flow", "-o", "out.json", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "broken.py:flow: 2 errors"
    assert [line.split()[1] for line in lines if line.startswith("  error ")] == ["DW007", "DW009"]
    assert lines[-1] == "dagwright export: the flow does not compile; nothing exported"
    assert not (tmp_path / "out.json").exists()


def test_export_needs_one_flow(tmp_path: Path) -> None:
    write(tmp_path, "two.py", GOOD + "\nother = flow\n")
    err = usage_error(run("export", "two.py", cwd=tmp_path))
    assert err == "dagwright export: 'two.py' holds 2 flows (two.py:flow, two.py:other); name one with FILE:NAME\n"


# --------------------------------------------------------------------------- demo, version, entry points


def test_demo_shows_the_three_mistakes(tmp_path: Path) -> None:
    result = run("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\nflowchart LR\n" in (tmp_path / "demo.mmd").read_text()
    if shutil.which("dot") or os.environ.get("CI"):
        assert (tmp_path / "demo.svg").read_text().lstrip().startswith("<?xml")
        assert "debate.round2.skeptic" in (tmp_path / "demo-run.svg").read_text()
    broken = out[out.index("research-broken: ") :]
    errors = [line.split()[:4] for line in broken.splitlines() if line.startswith("  error ")]
    assert errors == [
        ["error", "DW004", "[unknown-output]", "researcher.finding:"],
        ["error", "DW007", "[type-mismatch]", "skeptic.topic:"],
        ["error", "DW009", "[missing-input]", "skeptic.findings:"],
    ]
    assert "research: 2 infos" in out  # the good flow: no error, no warning
    assert "reviewers' decision:" in out and "9 LLM calls answered by dagwright-offline" in out


def test_version_and_no_command(tmp_path: Path) -> None:
    version = run("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"dagwright {dagwright.__version__}\n")
    bare = run(cwd=tmp_path)
    assert bare.returncode == 2
    assert bare.stdout.startswith("usage: dagwright")
    for command in ("check", "export", "demo"):
        assert command in bare.stdout
    unknown = run("check", "--colour", "x.py", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "unrecognized arguments: --colour" in unknown.stderr


def test_console_script_equals_python_dash_m(tmp_path: Path) -> None:
    assert SCRIPT.is_file(), f"the console script is not installed next to {sys.executable}"
    write(tmp_path, "broken.py", BROKEN)
    commands: list[tuple[str | Path, ...]] = [("check", "broken.py"), ("check", "missing.py"), ()]
    modules = run_many(commands, cwd=tmp_path)
    scripts = run_many(commands, cwd=tmp_path, script=True)
    assert [r.returncode for r in modules] == [1, 2, 2]
    for module, script in zip(modules, scripts, strict=True):
        assert (script.returncode, script.stdout, script.stderr) == (module.returncode, module.stdout, module.stderr)


# --------------------------------------------------------------------------- pre-commit hook


def test_pre_commit_hook_definition_runs(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (hook,) = hooks
    assert hook["id"] == "dagwright-check"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True
    command = shlex.split(hook["entry"])
    assert command[0] == "dagwright"

    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "broken.py", BROKEN)
    write(tmp_path, "util.py", "VALUE = 1\n")
    env = {"PATH": f"{SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def hook_run(*files: str) -> subprocess.CompletedProcess[str]:
        # pre-commit runs the entry with the staged file names appended.
        return subprocess.run(
            [*command, *files],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, **env},
            timeout=120,
            check=False,
        )

    assert hook_run("good.py", "util.py").returncode == 0
    failed = hook_run("good.py", "broken.py", "util.py")
    assert failed.returncode == 1
    assert "broken.py:flow: 2 errors" in failed.stdout


# --------------------------------------------------------------------------- documentation


def test_readme_documents_every_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows: dict[str, list[str]] = {}
    for line in readme.splitlines():
        if re.match(r"^\|\s*`?DW\d{3}", line):
            cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    assert sorted(set(CODES) - set(rows)) == [], "codes missing from the README's table"
    assert sorted(set(rows) - set(CODES)) == [], "the README documents codes that do not exist"
    for code, info in CODES.items():
        # The table says what the code is called and how severe it is, as the checker does.
        assert info.name in rows[code], (code, rows[code])
        assert info.severity in rows[code], (code, rows[code])


def test_a_file_loaded_twice_in_one_process_gives_the_same_graph(tmp_path: Path) -> None:
    """A run and its resume in one process must see one graph: the file keeps its module name."""
    from dagwright.cli.loader import load_targets

    path = write(tmp_path, "twice_loaded.py", GOOD)
    first = load_targets(f"{path}:flow")[0].flow.compile()
    second = load_targets(f"{path}:flow")[0].flow.compile()
    assert second.content_hash == first.content_hash
    assert second.node("shout").config["function"] == "twice_loaded:shout"
