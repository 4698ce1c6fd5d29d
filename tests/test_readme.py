"""The README's runnable examples run as written, and say what the README says they do."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def run_block(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(README.parent)}  # no OPENAI_* variables: offline
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_every_python_block_runs_as_written(index: int, tmp_path: Path) -> None:
    block = python_blocks()[index]
    result = run_block(block, tmp_path)
    first = block.strip().splitlines()[0]
    assert result.returncode == 0, f"README python block {index} ({first!r}) failed:\n{result.stderr[-3000:]}"


def test_the_thirty_second_example_runs(tmp_path: Path) -> None:
    block = next(b for b in python_blocks() if 'Flow("research")' in b)
    result = run_block(block, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "finding 1 for 'Four-day weeks'" in result.stdout


def test_the_thirty_second_example_fails_as_shown(tmp_path: Path) -> None:
    block = next(b for b in python_blocks() if 'Flow("research")' in b)
    broken = block.replace(
        "graph = flow.compile()",
        'flow.connect("researcher.findings", "summary.limit")\ngraph = flow.compile()',
    )
    result = run_block(broken, tmp_path)
    assert result.returncode == 1
    shown = (
        "error DW007 [type-mismatch] summary.limit: researcher.findings (list[str]) "
        "cannot flow into summary.limit (int)"
    )
    assert shown in result.stderr
    assert shown.split(" (list")[0] in README.read_text(encoding="utf-8")


@pytest.mark.parametrize("marker", ["kaizen.create_signature(", "class QAAgent(BaseAgent)"])
def test_the_agent_examples_run(tmp_path: Path, marker: str) -> None:
    block = next(b for b in python_blocks() if marker in b)
    result = run_block(block, tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_quickstart_names_the_ci_command() -> None:
    text = README.read_text(encoding="utf-8")
    assert "bash .ci/run" in text
    assert "dagwright demo" in text
