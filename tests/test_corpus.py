"""The corpus of broken and good flows in ``tests/corpus``.

Each ``broken/*.py`` file is one realistic wiring mistake: it defines ``flow`` and
declares ``EXPECTED``, the exact set of ``(code, where)`` pairs of its errors and
warnings, and marks the line each one must point at with ``# expect: CODE where``.
Optional ``HINTS`` give exact hints. Each ``good/*.py`` file defines a ``flow``
that compiles with ``strict=True``. The whole corpus also goes once through the
real command line.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dagwright import CODES, CompileError, Diagnostic, Flow, Graph

ROOT = Path(__file__).parent.parent
CORPUS = Path(__file__).parent / "corpus"
BROKEN = sorted((CORPUS / "broken").glob("*.py"))
GOOD = sorted((CORPUS / "good").glob("*.py"))
MARKER = re.compile(r"#\s*expect:\s*(.+)$")

Expected = set[tuple[str, str]]


def load(path: Path) -> ModuleType:
    """Import one corpus file under a name of its own (files share class and function names)."""
    name = f"corpus_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def the_flow(module: ModuleType) -> Flow:
    flows = {name: value for name, value in vars(module).items() if isinstance(value, Flow)}
    assert list(flows) == ["flow"], f"a corpus file defines exactly one Flow, called 'flow'; found {list(flows)}"
    return flows["flow"]


def reported(diagnostics: list[Diagnostic]) -> Expected:
    """The (code, where) pairs of the errors and warnings (infos are advice, not findings)."""
    return {(d.code, d.where) for d in diagnostics if d.severity in ("error", "warning")}


def markers(path: Path) -> dict[tuple[str, str], int]:
    """``# expect: CODE where[; CODE where]`` comments -> the line they are on."""
    found: dict[tuple[str, str], int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = MARKER.search(line)
        if match is None:
            continue
        for item in match.group(1).split(";"):
            code, _, where = item.strip().partition(" ")
            assert (code, where) not in found, f"{path.name}:{lineno}: {code} {where} marked twice"
            found[(code, where)] = lineno
    return found


def test_corpus_is_large_enough() -> None:
    assert len(BROKEN) >= 24
    assert len(GOOD) >= 10


def test_broken_corpus_covers_every_finding_code() -> None:
    covered = set().union(*(load(path).EXPECTED for path in BROKEN))
    codes = {code for code, _ in covered}
    # DW013 is advice (severity info), DW019 is a file that does not import (tests/test_cli_gate.py),
    # DW200+ belong to the coordination patterns, and DW305 / DW306 need a live MCP server (tests/test_mcp.py).
    findings = {
        code
        for code, info in CODES.items()
        if info.severity != "info" and not code.startswith("DW2") and code not in ("DW019", "DW305", "DW306")
    }
    assert findings - codes == set()
    assert codes - set(CODES) == set()


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_flow_reports_exactly_its_mistakes(path: Path) -> None:
    module = load(path)
    expected: Expected = module.EXPECTED
    assert expected, "a broken flow expects at least one diagnostic"
    flow = the_flow(module)
    diagnostics = flow.validate()
    assert reported(diagnostics) == expected
    # Each finding is reported once, not once per pass that trips over it.
    findings = [(d.code, d.where) for d in diagnostics if d.severity != "info"]
    assert len(findings) == len(set(findings))

    strict = any(d.severity == "error" for d in diagnostics)
    with pytest.raises(CompileError) as caught:
        flow.compile(strict=not strict)
    assert reported(caught.value.diagnostics) == expected
    assert caught.value.flow_name == flow.name


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_flow_points_at_the_line_of_the_mistake(path: Path) -> None:
    module = load(path)
    lines = markers(path)
    assert set(lines) <= module.EXPECTED, "a marker names a diagnostic that EXPECTED does not list"
    for d in the_flow(module).validate():
        if d.severity == "info":
            continue
        if d.location is None:
            assert (d.code, d.where) not in lines
            continue
        assert Path(d.location.file).resolve() == path.resolve()
        assert d.location.line == lines.get((d.code, d.where)), f"{d.code} {d.where} points at line {d.location.line}"


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_flow_hints(path: Path) -> None:
    module = load(path)
    hints: dict[tuple[str, str], str] = getattr(module, "HINTS", {})
    by_where = {(d.code, d.where): d for d in the_flow(module).validate()}
    for key, hint in hints.items():
        assert by_where[key].hint == hint
    for d in by_where.values():
        # Every finding names the node it is about (a flow input or output by its own name).
        if d.node is not None:
            assert d.node.removeprefix("input:").removeprefix("output:") in d.message


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_flow_compiles_strictly(path: Path) -> None:
    flow = the_flow(load(path))
    graph = flow.compile(strict=True)
    assert [d for d in flow.validate() if d.severity != "info"] == []
    assert Graph.from_json(graph.to_json()) == graph
    assert graph.content_hash == Graph.from_json(graph.to_json()).content_hash
    assert graph.input_nodes and graph.output_nodes


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagwright", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def _relative(paths: list[Path]) -> list[str]:
    """Paths as a user in the repository root types them (reports show them that way)."""
    return [str(p.relative_to(ROOT)) for p in paths]


def test_whole_good_corpus_passes_the_command_line() -> None:
    result = _cli("check", "--strict", *_relative(GOOD))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"{path}:flow: ok" for path in _relative(GOOD)]
    assert result.stderr == ""


def test_whole_broken_corpus_fails_the_command_line_with_each_expected_finding() -> None:
    result = _cli("check", "--format", "json", *_relative(BROKEN))
    assert result.returncode == 1, result.stderr
    flows = json.loads(result.stdout)["flows"]
    assert [f["flow"] for f in flows] == [f"{path}:flow" for path in _relative(BROKEN)]
    for path, report in zip(BROKEN, flows, strict=True):
        got = {
            (d["code"], f"{d['node']}.{d['port']}" if d["port"] else d["node"] or "<flow>")
            for d in report["diagnostics"]
            if d["severity"] != "info"
        }
        assert got == load(path).EXPECTED, path.name


def test_one_broken_file_exits_1() -> None:
    path = "tests/corpus/broken/port_typo_output.py"
    result = _cli("check", path)
    assert result.returncode == 1
    assert "error DW004 [unknown-output] researcher.finding" in result.stdout
    assert f"{path}:9" in result.stdout
