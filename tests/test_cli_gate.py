"""``dagwright check`` as a gate: many files, folders, patterns, pre-commit and CI reports.

Everything runs the real command (the console script, as pre-commit and CI run it,
or ``python -m dagwright``) on real files in a temporary directory: a file that
does not import is a diagnostic of that file and the others are still checked,
the report is written in every format whatever happens, a folder or a pattern
finds the flows in it, and the advice given by ``run``, the demo and the docs is
the advice that works.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cli_support import run_many

from dagwright import CODES
from dagwright.cli.demo import build_research_flow
from dagwright.compiler.ir import INPUT_KIND, OUTPUT_KIND
from dagwright.compiler.report import CODES_HEADING, codes_help_uri, heading_anchor, repository_url

ROOT = Path(__file__).resolve().parent.parent
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
flow.add_agent("polish", "text: str -> summary: str")
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

MISSING_MODULE = """
from dagwright import Flow

import nonexistent_helpers

flow = Flow("never")
"""

SYNTAX_ERROR = """
from dagwright import Flow

flow = Flow("x"
flow.output("a")
"""

RAISES = """
from dagwright import Flow

LIMIT = 3
raise RuntimeError("model registry unavailable")
"""

HELPER = """
def clean(text: str) -> str:
    return text.strip()
"""

Result = subprocess.CompletedProcess[str]


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    lines = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line]
    assert len(lines) == 1, f"{needle!r} occurs on lines {lines}"
    return lines[0]


def run(*args: str, cwd: Path, script: bool = True) -> Result:
    (result,) = run_many([list(args)], cwd=cwd, script=script)
    return result


def flows_of(result: Result) -> dict[str, list[dict[str, Any]]]:
    """``{flow name: diagnostics}`` from a JSON report."""
    return {f["flow"]: f["diagnostics"] for f in json.loads(result.stdout)["flows"]}


# --------------------------------------------------------------------------- 1. a file that does not import


def test_import_failed_is_a_documented_error_code() -> None:
    info = CODES["DW019"]
    assert (info.name, info.severity) == ("import-failed", "error")


def _import_failures(tmp_path: Path) -> dict[str, Path]:
    return {
        "missing.py": write(tmp_path, "missing.py", MISSING_MODULE),
        "good.py": write(tmp_path, "good.py", GOOD),
        "syntax.py": write(tmp_path, "syntax.py", SYNTAX_ERROR),
        "raises.py": write(tmp_path, "raises.py", RAISES),
        "broken.py": write(tmp_path, "broken.py", BROKEN),
    }


def test_every_file_is_checked_and_each_import_failure_is_reported_where_it_happened(tmp_path: Path) -> None:
    paths = _import_failures(tmp_path)
    text, as_json = run_many([["check", *paths], ["check", "--format", "json", *paths]], cwd=tmp_path)
    assert (text.returncode, as_json.returncode) == (1, 1)
    assert "Traceback" not in text.stderr + as_json.stderr
    missing_line = line_of(paths["missing.py"], "import nonexistent_helpers")
    lines = text.stdout.splitlines()
    assert lines[:3] == [
        "missing.py: 1 error",
        "  error DW019 [import-failed] cannot import missing.py: ModuleNotFoundError: No module named "
        f"'nonexistent_helpers' (missing.py:{missing_line})",
        "      hint: install the package where dagwright runs (a pre-commit hook: additional_dependencies), or run "
        "dagwright from the directory your imports are relative to (the repository root)",
    ]
    # Every file after the failures is checked all the same.
    assert "good.py:flow: ok" in lines
    assert "broken.py:flow: 1 error" in lines

    found = flows_of(as_json)
    assert list(found) == ["missing.py", "good.py:flow", "syntax.py", "raises.py", "broken.py:flow"]
    where = {name: diags[0]["location"] for name, diags in found.items() if diags and diags[0]["code"] == "DW019"}
    assert where == {
        "missing.py": {"file": str(paths["missing.py"]), "line": missing_line},
        "syntax.py": {"file": str(paths["syntax.py"]), "line": line_of(paths["syntax.py"], 'Flow("x"')},
        "raises.py": {"file": str(paths["raises.py"]), "line": line_of(paths["raises.py"], "raise RuntimeError")},
    }
    messages = {name: diags[0]["message"] for name, diags in found.items() if name in where}
    assert messages["syntax.py"] == "cannot import syntax.py: SyntaxError: '(' was never closed"
    assert messages["raises.py"] == "cannot import raises.py: RuntimeError: model registry unavailable"
    assert [d["code"] for d in found["broken.py:flow"]] == ["DW007"]


def test_sarif_file_and_github_annotations_are_written_whatever_fails(tmp_path: Path) -> None:
    paths = _import_failures(tmp_path)
    sarif, github = run_many(
        [
            ["check", "--format", "sarif", "-o", "report.sarif", *paths],
            ["check", "--format", "github", *paths],
        ],
        cwd=tmp_path,
    )
    assert (sarif.returncode, sarif.stdout) == (1, "")
    log = json.loads((tmp_path / "report.sarif").read_text(encoding="utf-8"))
    (run_,) = log["runs"]
    rules = run_["tool"]["driver"]["rules"]
    results = [
        (r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], r["level"])
        for r in run_["results"]
    ]
    assert results == [
        ("DW019", "missing.py", "error"),
        ("DW019", "syntax.py", "error"),
        ("DW019", "raises.py", "error"),
        ("DW007", "broken.py", "error"),
    ]
    for r in run_["results"]:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
    assert "logicalLocations" not in run_["results"][0]["locations"][0]  # a file, not a node of a flow

    assert github.returncode == 1
    annotations = [line for line in github.stdout.splitlines() if line.startswith("::error ")]
    assert [re.search(r"file=([^,]+),line=(\d+)", a).groups() for a in annotations] == [  # type: ignore[union-attr]
        ("missing.py", str(line_of(paths["missing.py"], "import nonexistent_helpers"))),
        ("syntax.py", str(line_of(paths["syntax.py"], 'Flow("x"'))),
        ("raises.py", str(line_of(paths["raises.py"], "raise RuntimeError"))),
        ("broken.py", str(line_of(paths["broken.py"], "flow.connect("))),
    ]
    assert annotations[2].endswith("::cannot import raises.py: RuntimeError: model registry unavailable")


def test_a_failure_inside_a_helper_points_at_the_users_import_line(tmp_path: Path) -> None:
    write(tmp_path, "helpers.py", "LIMIT = int('ten')\n")
    write(tmp_path, "broken_syntax.py", "VALUE = (\n")
    flows = write(tmp_path, "flows.py", "from dagwright import Flow\nfrom helpers import LIMIT\n")
    other = write(tmp_path, "other.py", "from dagwright import Flow\n\nimport broken_syntax\n")
    result = run("check", "--format", "json", "flows.py", "other.py", cwd=tmp_path)
    assert result.returncode == 1
    found = flows_of(result)
    (at_helper,) = found["flows.py"]
    assert at_helper["location"] == {"file": str(flows), "line": 2}
    assert at_helper["message"] == "cannot import flows.py: ValueError: invalid literal for int() with base 10: 'ten'"
    (at_syntax,) = found["other.py"]
    assert at_syntax["location"] == {"file": str(other), "line": 3}
    # The syntax error is in another file: its message keeps that file and line.
    assert at_syntax["message"].startswith(
        "cannot import other.py: SyntaxError: '(' was never closed (broken_syntax.py"
    )


def test_a_module_target_that_fails_to_import_is_reported_in_its_file(tmp_path: Path) -> None:
    write(tmp_path, "team/__init__.py", "")
    module = write(tmp_path, "team/research.py", MISSING_MODULE)
    write(tmp_path, "good.py", GOOD)
    result = run("check", "--format", "json", "team.research:flow", "good.py", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    found = flows_of(result)
    assert list(found) == ["team.research:flow", "good.py:flow"]
    (diag,) = found["team.research:flow"]
    assert (diag["code"], diag["location"]) == (
        "DW019",
        {"file": str(module), "line": line_of(module, "import nonexistent_helpers")},
    )


def test_the_report_is_written_next_to_a_usage_problem(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", BROKEN)
    result = run("check", "--format", "sarif", "-o", "report.sarif", "broken.py", "nowhere.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "dagwright check: 'nowhere.py': no such file 'nowhere.py'\n"
    results = json.loads((tmp_path / "report.sarif").read_text(encoding="utf-8"))["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["DW007"]


# --------------------------------------------------------------------------- 2. folders and patterns


def _tree(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    write(flows, "good.py", GOOD)
    write(flows, "helpers.py", HELPER)  # no flow: skipped, as a folder holds helpers too
    write(flows, "__init__.py", "")
    write(flows, "team/broken.py", BROKEN)
    # None of these is user code to check: each would fail to import if it were.
    for skipped in (".hidden/x.py", "__pycache__/x.py", ".venv/lib/x.py", "env/lib/x.py", "node_modules/x.py"):
        write(flows, skipped, "this is not python (\n")
    (flows / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    return flows


def test_a_directory_checks_every_python_file_below_it(tmp_path: Path) -> None:
    _tree(tmp_path)
    slash, bare, recursive, shallow, root = run_many(
        [
            ["check", "flows/"],
            ["check", "--format", "json", "flows"],
            ["check", "--format", "json", "flows/**/*.py"],
            ["check", "flows/*.py"],
            ["check", "--format", "json", "."],
        ],
        cwd=tmp_path,
    )
    assert (slash.returncode, slash.stderr) == (1, "")
    assert slash.stdout.splitlines()[0] == "flows/good.py:flow: ok"
    assert "flows/team/broken.py:flow: 1 error" in slash.stdout
    assert list(flows_of(bare)) == ["flows/good.py:flow", "flows/team/broken.py:flow"]
    assert list(flows_of(recursive)) == ["flows/good.py:flow", "flows/team/broken.py:flow"]
    assert list(flows_of(root)) == ["flows/good.py:flow", "flows/team/broken.py:flow"]
    # A pattern means what it matches: flows/*.py does not go below flows/.
    assert (shallow.returncode, shallow.stdout, shallow.stderr) == (0, "flows/good.py:flow: ok\n", "")


def test_a_folder_without_any_flow_or_a_pattern_matching_nothing_says_so(tmp_path: Path) -> None:
    write(tmp_path, "helpers/util.py", HELPER)
    (tmp_path / "empty").mkdir()
    no_flow, allowed, nothing, empty = run_many(
        [
            ["check", "helpers"],
            ["check", "--allow-empty", "helpers"],
            ["check", "flows/*.py"],
            ["check", "empty"],
        ],
        cwd=tmp_path,
    )
    assert no_flow.returncode == 2
    assert no_flow.stderr.startswith("dagwright check: 'helpers': no Flow is defined at module level in the 1 file ")
    assert (allowed.returncode, allowed.stdout) == (0, "")
    assert "skipped helpers" in allowed.stderr
    assert (nothing.returncode, nothing.stderr) == (2, "dagwright check: 'flows/*.py' matches no .py or .json file\n")
    assert (empty.returncode, empty.stderr) == (2, "dagwright check: 'empty': no .py file below this directory\n")


def test_a_file_named_twice_is_checked_once(tmp_path: Path) -> None:
    _tree(tmp_path)
    result = run("check", "--format", "json", "flows", "flows/good.py", cwd=tmp_path)
    assert list(flows_of(result)) == ["flows/good.py:flow", "flows/team/broken.py:flow"]


# --------------------------------------------------------------------------- 3. options after targets


def test_options_may_follow_the_targets(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "warns.py", WARNS)
    strict, lenient, report = run_many(
        [
            ["check", "good.py", "--strict", "warns.py"],
            ["check", "good.py", "warns.py"],
            ["check", "good.py", "--format", "json", "warns.py", "-o", "out.json"],
        ],
        cwd=tmp_path,
    )
    assert (strict.returncode, lenient.returncode) == (1, 0), strict.stderr
    assert strict.stdout == lenient.stdout
    assert (report.returncode, report.stdout, report.stderr) == (0, "", "")
    written = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert [f["flow"] for f in written["flows"]] == ["good.py:flow", "warns.py:flow"]


def test_options_after_targets_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagwright.cli import main

    write(tmp_path, "warns_in_process.py", WARNS)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "warns_in_process.py", "--strict", "-o", "out.txt"]) == 1
    assert (tmp_path / "out.txt").read_text(encoding="utf-8").startswith("warns_in_process.py:flow: 1 warning\n")


# --------------------------------------------------------------------------- 4. --allow-empty says what it did


def test_allow_empty_names_the_files_it_skipped(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "util.py", HELPER)
    write(tmp_path, "more.py", "VALUE = 1\n")
    allowed, refused = run_many(
        [["check", "--allow-empty", "util.py", "good.py", "more.py"], ["check", "util.py", "good.py"]], cwd=tmp_path
    )
    assert (allowed.returncode, allowed.stdout) == (0, "good.py:flow: ok\n")
    assert allowed.stderr == (
        "dagwright check: --allow-empty: skipped util.py, more.py (no Flow defined at module level)\n"
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("dagwright check: 'util.py' defines no Flow at module level")
    assert refused.stdout == "good.py:flow: ok\n"  # the files that could be checked still are


# --------------------------------------------------------------------------- 5. SARIF links that exist


def test_sarif_help_links_to_the_readme_table_of_codes(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"\n## {CODES_HEADING}\n" in readme
    assert heading_anchor(CODES_HEADING) == "diagnostic-codes"
    assert codes_help_uri("https://github.com/acme/dagwright") == (
        "https://github.com/acme/dagwright/blob/main/README.md#diagnostic-codes"
    )
    write(tmp_path, "broken.py", BROKEN)
    result = run("check", "--format", "sarif", "broken.py", cwd=tmp_path)
    driver = json.loads(result.stdout)["runs"][0]["tool"]["driver"]
    repository = repository_url()
    for rule in driver["rules"]:
        assert rule["help"]["text"].startswith(f"{rule['id']} {rule['name']} (")
        # A link only to a page that exists: the installed package's own repository, or none.
        if repository is None:
            assert "helpUri" not in rule
        else:
            assert rule["helpUri"] == codes_help_uri(repository)
    assert "pypi.org" not in result.stdout


# --------------------------------------------------------------------------- 6. pre-commit


def _hook_command() -> list[str]:
    yaml = pytest.importorskip("yaml")
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    command: list[str] = shlex.split(hook["entry"])
    assert command[:2] == ["dagwright", "check"]
    return command


def test_pre_commit_hook_imports_the_repositorys_own_packages(tmp_path: Path) -> None:
    command = _hook_command()
    repo = tmp_path / "repo"
    write(repo, "flows/__init__.py", "")
    write(repo, "flows/steps.py", HELPER)
    pipeline = write(
        repo,
        "flows/pipeline.py",
        """
        from dagwright import Flow
        from flows.steps import clean

        flow = Flow("cleaning")
        flow.input("text", str)
        flow.add_function("clean", clean)
        flow.add_agent("count", "text: str -> words: int")
        flow.connect("clean.output", "count.text")
        flow.output("words", "count.words")
        """,
    )
    write(repo, "flows/vendor.py", "from dagwright import Flow\nimport some_vendor_sdk\n")
    staged = ["flows/steps.py", "flows/pipeline.py"]
    # pre-commit runs the entry from the repository root, with the staged files appended.
    ok, wrong_dir, third_party = run_many(
        [command[1:] + staged, [*command[1:], "repo/flows/pipeline.py"], [*command[1:], "flows/vendor.py"]],
        cwd=repo,
    )
    assert (ok.returncode, ok.stdout) == (0, "flows/pipeline.py:flow: ok\n"), ok.stderr
    assert "skipped flows/steps.py" in ok.stderr
    assert wrong_dir.returncode == 2  # no such file from here: said, not crashed
    assert third_party.returncode == 1
    assert "ModuleNotFoundError: No module named 'some_vendor_sdk' (flows/vendor.py:2)" in third_party.stdout
    assert "additional_dependencies" in third_party.stdout

    # The same repository with a mistake in the pipeline fails the commit, at the line.
    pipeline.write_text(pipeline.read_text().replace('"text: str -> words: int"', '"text: int -> words: int"'))
    failed = run(*command[1:], *staged, cwd=repo)
    assert failed.returncode == 1
    line = line_of(pipeline, 'flow.connect("clean.output"')
    assert f"(flows/pipeline.py:{line})" in failed.stdout


def test_readme_documents_a_rev_that_can_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The command line") : readme.index("## Diagnostic codes")]
    assert "rev: v0.1.0" not in readme
    assert "rev: <commit SHA>" in section
    assert "pre-commit autoupdate" in section and "git ls-remote" in section
    assert "additional_dependencies" in section
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    assert "v0.1.0" not in hooks


# --------------------------------------------------------------------------- 7. run and an exported IR


def test_run_of_an_ir_file_gives_one_piece_of_advice_and_it_works(tmp_path: Path) -> None:
    write(tmp_path, "flows.py", GOOD)
    exported = run("export", "flows.py:flow", "-o", "graph.json", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    whole, named, check_named, check_wrong = run_many(
        [
            ["run", "graph.json", "-i", "question=hi"],
            ["run", "graph.json:qa", "-i", "question=hi"],
            ["check", "graph.json:qa"],
            ["check", "graph.json:flow"],
        ],
        cwd=tmp_path,
    )
    advice = (
        "dagwright run: graph.json is an exported IR, which names its functions without importing them; run the "
        "flow from its Python source instead (FILE.py:NAME or package.module:NAME)\n"
    )
    assert (whole.returncode, whole.stderr) == (2, advice)
    assert (named.returncode, named.stderr) == (2, advice)
    assert (check_named.returncode, check_named.stdout) == (0, "qa: ok\n")
    assert check_wrong.returncode == 2
    assert check_wrong.stderr == (
        "dagwright check: graph.json:flow: graph.json is an exported IR holding one flow, 'qa', not 'flow'; name "
        "the file alone (graph.json)\n"
    )
    # Following the advice runs the flow.
    followed = run("run", "flows.py:flow", "-i", "question=hi", "--json", cwd=tmp_path)
    assert followed.returncode == 0, followed.stderr


# --------------------------------------------------------------------------- 8. the demo and the examples


def test_demo_points_at_its_own_source_and_counts_one_way(tmp_path: Path) -> None:
    result = run("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "site-packages" not in out
    assert str(ROOT) not in out
    demo_source = (ROOT / "dagwright" / "cli" / "demo.py").read_text(encoding="utf-8").splitlines()
    cited = re.findall(r"\(([^()\s]*demo\.py):(\d+)\)\n(?:      hint: .*\n)?      (\d+) \| (.*)", out)
    assert len(cited) == 5  # two infos on the good flow, three errors on the broken one
    for path, line, quoted_line, code in cited:
        assert path == "dagwright/cli/demo.py"
        assert line == quoted_line
        assert demo_source[int(line) - 1].strip() == code

    graph = build_research_flow().compile()
    steps = [n for n in graph.nodes if n.kind not in (INPUT_KIND, OUTPUT_KIND)]
    inputs = sum(n.kind == INPUT_KIND for n in graph.nodes)
    outputs = sum(n.kind == OUTPUT_KIND for n in graph.nodes)
    assert (len(steps), len(graph.nodes), inputs, outputs) == (11, 18, 1, 6)
    assert f"flow 'research': 11 steps (18 nodes with its 1 input and 6 outputs), {len(graph.edges)} edges\n" in out
    assert re.search(r"\b\d+ nodes, \d+ edges", out) is None  # the old count, without saying what it counted


def test_demo_help_says_what_it_does(tmp_path: Path) -> None:
    result = run("demo", "--help", cwd=tmp_path)
    assert result.returncode == 0
    description = result.stdout.split("\n\n")[1]
    assert "research flow" in description and "demo.svg" in description


def test_example_docstrings_name_files_that_exist() -> None:
    for example in sorted((ROOT / "examples").glob("*.py")):
        for named in re.findall(r"python (examples/\S+\.py)", example.read_text(encoding="utf-8")):
            assert (ROOT / named).is_file(), f"{example.name} names {named}, which does not exist"
    assert "python examples/kailash_lowering.py" in (ROOT / "examples" / "kailash_lowering.py").read_text()
