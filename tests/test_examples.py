"""Every script in examples/ runs as documented, and passes `dagwright check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))
EXPECTED = {
    "pipeline.py": ["article: article for 'Heat pumps", "LLM calls: 3"],
    "debate.py": ["LLM calls: 7"],
    "consensus.py": ["- security:", "- finance:", "- operations:", "reason:"],
    "supervisor.py": ["plan: [{'subtask':", "answer:", "approved:"],
    "router.py": ["route: ", "response: response to 'I was charged twice"],
    "parallel_map.py": ["'Quarterly report ...': summary for", "'Roadmap draft ...': summary for"],
    "kailash_lowering.py": ["kailash run ", "verdict: "],
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}  # offline model
    env["PYTHONWARNINGS"] = "error::DeprecationWarning:__main__"
    return env


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES) == sorted(EXPECTED)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=_env(), cwd=script.parent.parent
    )
    assert result.returncode == 0, result.stderr
    for expected in EXPECTED[script.name]:
        assert expected in result.stdout, (expected, result.stdout)


def test_examples_pass_the_checker() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagwright", "check", "--strict", *map(str, EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok") + result.stdout.count(" info") >= len(EXAMPLES)
