"""``dagwright render``: formats, --check, --collapse, IR files, and a PATH without `dot`.

Most cases call the command's ``main()`` in this process (the same code path,
without paying the interpreter start-up per case); the console entry point is
run as a real subprocess for the image formats and for a PATH that lacks `dot`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from visualize_support import build_broken_flow, build_research_flow, check_mermaid, require_dot, svg_texts

from dagwright.cli import main

FLOWS = textwrap.dedent(
    f"""
    import sys

    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from visualize_support import build_broken_flow, build_research_flow

    research = build_research_flow()
    broken = build_broken_flow()
    """
)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("render", ...)`` runs ``dagwright`` in-process, in ``tmp_path``, with flows.py written there."""
    flows_file(tmp_path)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Result:
        code = main(list(args))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def dagwright(*args: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess (``PATH`` replaced when given)."""
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "dagwright", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def flows_file(tmp_path: Path) -> Path:
    path = tmp_path / "flows.py"
    path.write_text(FLOWS, encoding="utf-8")
    return path


def test_render_svg_png_pdf_from_the_suffix(cli: Callable[..., Result], tmp_path: Path) -> None:
    require_dot()
    result = dagwright("render", "flows.py:research", "-o", "out.svg", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    texts = svg_texts((tmp_path / "out.svg").read_text(encoding="utf-8"))
    assert {n.id for n in build_research_flow().to_graph().nodes} <= set(texts)
    for name, magic in (("out.png", b"\x89PNG"), ("out.pdf", b"%PDF-")):
        assert cli("render", "flows.py:research", "-o", name) == Result(0, "", "")
        assert (tmp_path / name).read_bytes().startswith(magic)


def test_render_text_formats_to_stdout_and_files(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli("render", "flows.py:research")
    assert (result.returncode, result.stdout, result.stderr) == (0, build_research_flow().to_dot(), "")
    result = cli("render", "flows.py:research", "--format", "mermaid")
    assert result.returncode == 0 and result.stdout == build_research_flow().to_mermaid()
    check_mermaid(result.stdout)
    assert cli("render", "flows.py:research", "-o", "flow.mmd").returncode == 0
    assert (tmp_path / "flow.mmd").read_text(encoding="utf-8") == build_research_flow().to_mermaid()
    assert cli("render", "flows.py:research", "-o", "flow.txt", "--format", "dot").returncode == 0
    assert (tmp_path / "flow.txt").read_text(encoding="utf-8") == build_research_flow().to_dot()


def test_render_check_draws_diagnostics_and_exits_1(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli("render", "flows.py:broken", "--check", "-o", "broken.dot")
    assert result.returncode == 1
    assert result.stderr == "dagwright render: flows.py:broken has 3 errors (drawn in red in broken.dot)\n"
    flow = build_broken_flow()
    assert (tmp_path / "broken.dot").read_text(encoding="utf-8") == flow.to_dot(diagnostics=True)
    # Without --check the same flow is drawn plain, and drawing it is not a failure.
    result = cli("render", "flows.py:broken", "-o", "plain.dot")
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / "plain.dot").read_text(encoding="utf-8") == flow.to_dot()


def test_render_collapse(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli("render", "flows.py:research", "--collapse", "debate")
    assert result.returncode == 0
    assert result.stdout == build_research_flow().to_dot(collapse=["debate"])
    assert '"group:debate" [' in result.stdout
    result = cli("render", "flows.py:research", "--collapse", "judges")
    assert result.returncode == 2
    assert result.stderr == ("dagwright render: collapse: flow 'research' has no group 'judges' (groups: 'debate')\n")


def test_render_an_ir_json_file(cli: Callable[..., Result], tmp_path: Path) -> None:
    path = tmp_path / "research.json"
    path.write_text(build_research_flow().compile().to_json(), encoding="utf-8")
    result = cli("render", "research.json", "--check")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == build_research_flow().to_dot(diagnostics=True)


def test_render_usage_problems_are_one_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    cases = {
        (
            "flows.py",
        ): "dagwright render: 'flows.py' holds 2 flows (flows.py:research, flows.py:broken); name one with FILE:NAME\n",
        (
            "flows.py:research",
            "--format",
            "png",
        ): "dagwright render: PNG is binary; name the file to write with -o FILE\n",
        ("flows.py:research", "-o", "x.jpeg"): (
            "dagwright render: cannot tell the drawing format of 'x.jpeg' from its suffix '.jpeg'; use one of "
            ".dot, .gv, .mmd, .mermaid, .md, .svg, .png, .pdf, or pass the format (dot, mermaid, svg, png, pdf)\n"
        ),
        ("nothere.py",): "dagwright render: 'nothere.py': no such file 'nothere.py'\n",
    }
    for args, message in cases.items():
        result = cli("render", *args)
        assert (result.returncode, result.stdout, result.stderr) == (2, "", message), args


def test_render_without_dot_on_path(cli: Callable[..., Result], tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = dagwright("render", "flows.py:research", "-o", "out.svg", cwd=tmp_path, path=str(empty))
    assert result.returncode == 2
    assert result.stderr.startswith("dagwright render: rendering SVG needs Graphviz's 'dot' program")
    assert "apt-get install graphviz" in result.stderr and "brew install graphviz" in result.stderr
    assert "DOT and Mermaid output work without it" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out.svg").exists()
    result = dagwright("render", "flows.py:research", "-o", "out.mmd", cwd=tmp_path, path=str(empty))
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / "out.mmd").read_text(encoding="utf-8") == build_research_flow().to_mermaid()


def test_render_dot_without_dot_on_path(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli("render", "flows.py:research", "-o", "out.dot") == Result(0, "", "")
    assert (tmp_path / "out.dot").read_text(encoding="utf-8") == build_research_flow().to_dot()
    result = cli("render", "flows.py:research", "-o", "out.pdf")
    assert result.returncode == 2 and "rendering PDF needs Graphviz's 'dot' program" in result.stderr
