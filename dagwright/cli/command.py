"""The ``dagwright`` command: ``check``, ``export``, ``run``, ``render``, ``mcp serve`` and ``demo``.

Exit codes: 0 clean, 1 the flow has errors (or warnings with ``--strict``) or a checked
file does not import, 2 a usage problem (bad path, no flow where one was named, unknown
option), said plainly, 130 interrupted (Ctrl-C), said in one line.

Naming a Python file or module imports it, which runs its module-level code; an IR
``.json`` file is read as data and nothing it names is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from dagwright._version import __version__
from dagwright.cli.loader import (
    ImportFailed,
    ImportInterrupted,
    Target,
    TargetError,
    expand_target,
    ir_file,
    load_targets,
)
from dagwright.cli.mcp import add_mcp_parser, connected_diagnostics, run_mcp
from dagwright.cli.render import add_run_option, load_run
from dagwright.compiler.diagnostics import Diagnostic, has_errors
from dagwright.compiler.ir import Graph
from dagwright.compiler.passes import validate
from dagwright.compiler.report import FORMATS, render

__all__ = ["main"]


def _version() -> str:
    return __version__


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command line's parser, and its ``check`` sub-parser (parsed on its own, see :func:`_parse`)."""
    parser = argparse.ArgumentParser(
        prog="dagwright",
        description="Compile, check and export typed agent workflows.",
    )
    parser.add_argument("--version", action="version", version=f"dagwright {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = _add_check_parser(sub)

    _add_export_parser(sub)
    _add_run_parser(sub)
    _add_render_parser(sub)
    _add_demo_parser(sub)
    add_mcp_parser(sub)
    return parser, check


def _add_export_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = sub.add_parser("export", help="export a checked flow's IR", description="Export a flow's IR.")
    export.add_argument("target", metavar="TARGET")
    export.add_argument(
        "--format",
        choices=("json", "kailash-yaml", "kailash-py"),
        default="json",
        help="json: the IR; kailash-yaml: the lowered Kailash workflow (safe YAML of Kailash's to_dict); kailash-py: a "
        "standalone script that rebuilds and runs it (default: json)",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    export.add_argument(
        "--connect",
        action="store_true",
        help="connect to the agents' MCP servers first: the IR then lists their tools' schemas, and they are checked",
    )


def _add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run", help="run a flow (built-in scheduler, or a Dask cluster with --backend dask)", description="Run a flow."
    )
    run.add_argument("target", metavar="TARGET")
    run.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a flow input (text inputs as written, other types as JSON); repeatable",
    )
    run.add_argument("--inputs-json", metavar="JSON", help="flow inputs as one JSON object")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--no-progress", action="store_true", help="no progress display, even on a terminal")
    run.add_argument(
        "-v", "--verbose", action="store_true", help="print a line per node event, on any stream (not only a terminal)"
    )
    run.add_argument(
        "--backend",
        choices=("builtin", "dask"),
        default="builtin",
        help="where the flow runs: dagwright's scheduler (default) or a Dask cluster",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --backend dask: the Dask scheduler to use (tcp://host:8786); default: a local cluster",
    )
    run.add_argument(
        "--checkpoint", metavar="DB", help="store each finished node's outputs in this SQLite file (see --resume)"
    )
    run.add_argument(
        "--resume",
        metavar="RUN_ID",
        help=(
            "continue a run stored with --checkpoint; its finished nodes do not run again; its inputs come from "
            "the checkpoint, except secret-named ones, which are given again with --input"
        ),
    )
    run.add_argument(
        "--rerun-changed",
        action="store_true",
        help="with --resume: re-run the nodes that changed since the run started, and their descendants",
    )


def _add_check_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    check = sub.add_parser(
        "check",
        help="check flows for errors before anything runs",
        description="Check flows: FILE.py[:OBJ], package.module[:OBJ], an IR .json file, a directory (every *.py "
        "below it) or a quoted glob pattern ('flows/**/*.py'). Without :OBJ every Flow defined at module level is "
        "checked; files found in a directory or by a pattern that define none are skipped. A file that does not "
        "import is reported as DW019 and the other files are still checked. Options may follow the targets.",
        epilog="Checking a Python file or module imports it, which runs its module-level code (and calls the "
        "function that :OBJ names, if it names one), as python FILE.py would: check only code you would run. An IR "
        ".json file is read as data: nothing it names is imported or run.",
    )
    check.add_argument("targets", nargs="+", metavar="TARGET")
    check.add_argument("--format", choices=FORMATS, default="text", help="report format (default: text)")
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.add_argument(
        "--allow-empty",
        action="store_true",
        help="a named file that defines no Flow is skipped, with a note on stderr, instead of an error (pre-commit)",
    )
    check.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    check.add_argument(
        "--connect", action="store_true", help="also connect to the agents' MCP servers and check their tools"
    )
    return check


def _add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser(
        "demo",
        help="compile, check, draw and run a multi-agent research flow",
        description="Build a research flow (a researcher, a two-round debate, three reviewers voting), check it, "
        "draw it to demo.svg and demo.mmd in the current directory, run it on the offline model (or on the "
        "OpenAI-compatible server the environment configures), then show what the checker reports for the same "
        "kind of flow with three wiring mistakes.",
    )


def _parse(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse ``argv``; ``check`` takes its options anywhere among its targets (``check a.py --strict b.py``).

    argparse's intermixed parsing cannot run on a parser with sub-commands, so the
    words after ``check`` go to the check parser on its own. The top-level parser has
    no option that takes a value, so the first word is always the command.
    """
    parser, check = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] == "check":
        args = check.parse_intermixed_args(words[1:])
        args.command = "check"
        return parser, args
    return parser, parser.parse_args(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser, args = _parse(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "export":
            return _export(args)
        if args.command == "run":
            return _run(args)
        if args.command == "render":
            return _render(args)
        if args.command == "mcp":
            return run_mcp(args)
        if args.command == "demo":
            from dagwright.cli.demo import run_demo

            return run_demo()
    except TargetError as exc:
        print(f"dagwright {args.command}: {exc}", file=sys.stderr)
        return 2
    except ImportInterrupted as exc:
        print(f"dagwright {args.command}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        # `run` reports an interrupted run itself; this is Ctrl-C anywhere else (compiling, checking, writing).
        print(f"dagwright {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    parser.error(f"unknown command {args.command!r}")
    return 2


def _diagnose(target: Target, *, connect: bool = False) -> tuple[Graph, list[Diagnostic]]:
    if connect:
        return connected_diagnostics(target)
    if target.flow is not None:
        return target.flow.to_graph(), target.flow.validate()
    assert target.graph is not None
    return target.graph, validate(target.graph)


def _write(text: str, path: str | None) -> None:
    if path:
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except OSError as exc:
            raise TargetError(f"cannot write {path}: {exc.strerror}") from None
    else:
        sys.stdout.write(text + ("\n" if text else ""))


@dataclass
class _Checked:
    """What ``check`` found: the report, the usage problems, and the named files excused by --allow-empty."""

    report: list[tuple[str, list[Diagnostic]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


def _check(args: argparse.Namespace) -> int:
    checked = _Checked()
    for spec in args.targets:
        _check_spec(spec, checked, allow_empty=args.allow_empty, connect=args.connect)
    for problem in checked.problems:
        print(f"dagwright check: {problem}", file=sys.stderr)
    if checked.excused:
        # Said on stderr, so a machine-readable report on stdout stays what it is.
        print(
            f"dagwright check: --allow-empty: skipped {', '.join(checked.excused)} (no Flow defined at module level)",
            file=sys.stderr,
        )
    # The report is written whatever else happened: a CI step uploading it needs the file.
    _write(render(checked.report, args.format, version=_version()), args.output)
    if checked.problems:
        return 2
    return 1 if any(has_errors(diags, strict=args.strict) for _, diags in checked.report) else 0


def _check_spec(spec: str, checked: _Checked, *, allow_empty: bool, connect: bool = False) -> None:
    """Check what one command-line target stands for, into ``checked``."""
    try:
        items, explicit = expand_target(spec)
    except TargetError as exc:
        checked.problems.append(str(exc))
        return
    before, fresh = len(checked.report), 0
    for item in items:
        key = os.path.abspath(item)  # `check flows/ flows/a.py` checks a.py once
        if key in checked.seen:
            continue
        checked.seen.add(key)
        fresh += 1
        try:
            # Files a directory or pattern turned up may define no Flow (helpers, __init__.py).
            targets = load_targets(item, allow_empty=allow_empty or not explicit)
        except ImportFailed as exc:
            checked.report.append((item, [exc.diagnostic()]))
            continue
        except TargetError as exc:
            checked.problems.append(str(exc))
            continue
        if explicit and not targets:
            checked.excused.append(item)
        checked.report.extend((target.name, _diagnose(target, connect=connect)[1]) for target in targets)
    if not explicit and fresh and len(checked.report) == before:
        # A directory or pattern in which no file defines a Flow is most likely the wrong place.
        if allow_empty:
            checked.excused.append(spec)
        else:
            checked.problems.append(
                f"{spec!r}: no Flow is defined at module level in the {fresh} file{'s' if fresh != 1 else ''} it "
                "stands for; name one with FILE:NAME (a Flow, an agent, or a function returning one)"
            )


def _one_target(spec: str) -> Target:
    """The one flow ``spec`` names; a file holding several must be narrowed with FILE:NAME."""
    targets = load_targets(spec)
    if len(targets) != 1:
        names = ", ".join(t.name for t in targets)
        raise TargetError(f"{spec!r} holds {len(targets)} flows ({names}); name one with FILE:NAME")
    return targets[0]


def _export(args: argparse.Namespace) -> int:
    targets = [_one_target(args.target)]
    graph, diagnostics = _diagnose(targets[0], connect=args.connect)
    if has_errors(diagnostics):
        print(render([(targets[0].name, diagnostics)], "text"), file=sys.stderr)
        print("dagwright export: the flow does not compile; nothing exported", file=sys.stderr)
        return 1
    if args.format == "json":
        _write(graph.to_json(), args.output)
        return 0
    from dagwright.backends.kailash.export import to_kailash_script, to_kailash_yaml

    try:
        subject = targets[0].flow._kailash_lowering() if targets[0].flow is not None else graph
        if args.format == "kailash-yaml":
            text = to_kailash_yaml(subject).rstrip("\n")
        else:
            text = to_kailash_script(subject, script_path=args.output).rstrip("\n")
    except ValueError as exc:
        print(f"dagwright export: {exc}", file=sys.stderr)
        return 2
    _write(text, args.output)
    return 0


def _run(args: argparse.Namespace) -> int:
    from dagwright.cli.run import parse_inputs, run_flow
    from dagwright.compiler.diagnostics import CompileError

    ir = ir_file(args.target)
    if ir is not None:
        # An IR file names its functions (module:qualname) but never imports them, so it cannot run by itself.
        raise TargetError(
            f"{ir} is an exported IR, which names its functions without importing them; run the flow from its "
            "Python source instead (FILE.py:NAME or package.module:NAME)"
        )
    flow = _one_target(args.target).flow
    assert flow is not None  # only an IR file gives a target without a Flow
    try:
        graph = flow.compile()
    except CompileError as exc:
        print(render([(flow.name, exc.diagnostics)], "text"), file=sys.stderr)
        print("dagwright run: the flow does not compile; nothing ran", file=sys.stderr)
        return 1
    if args.rerun_changed and args.resume is None:
        raise TargetError("--rerun-changed applies to --resume only")
    inputs = parse_inputs(graph, args.input, args.inputs_json)
    progress = not args.no_progress and not args.json and sys.stderr.isatty()
    return run_flow(
        flow,
        inputs,
        as_json=args.json,
        progress=progress,
        target=args.target,
        checkpoint=args.checkpoint,
        resume=args.resume,
        rerun_changed=args.rerun_changed,
        backend=args.backend,
        scheduler_address=args.scheduler,
        verbose=args.verbose,
    )


# --------------------------------------------------------------------------- render


def _add_render_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    render = sub.add_parser(
        "render",
        help="draw a flow (SVG, PNG, PDF, DOT, Mermaid)",
        description="Draw a flow: FILE.py[:OBJ], package.module[:OBJ], or an IR .json file. The format comes "
        "from the output's suffix (.svg .png .pdf .dot .gv .mmd .md) unless --format is given. SVG, PNG and "
        "PDF need Graphviz's 'dot' program; DOT and Mermaid do not. Exit status 1 when --check finds errors "
        "(the drawing is written all the same).",
    )
    render.add_argument("target", metavar="TARGET")
    render.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: DOT or Mermaid to stdout)")
    render.add_argument("--format", choices=("dot", "mermaid", "svg", "png", "pdf"), help="output format")
    render.add_argument(
        "--collapse",
        action="append",
        default=[],
        metavar="GROUP",
        help="draw a group (e.g. debate, debate/round1) as one box; repeatable",
    )
    render.add_argument("--check", action="store_true", help="draw diagnostics: errors red, warnings orange")
    render.add_argument(
        "--connect", action="store_true", help="connect to the agents' MCP servers first: their tools are drawn"
    )
    add_run_option(render)


def _render(args: argparse.Namespace) -> int:
    from dagwright.visualize.render import IMAGE_FORMATS, RenderError, format_for, render, render_bytes

    targets = [_one_target(args.target)]
    graph, diagnostics = _diagnose(targets[0], connect=args.connect)
    drawn = diagnostics if args.check else None
    run = load_run(args.run, graph) if args.run else None
    try:
        fmt = format_for(args.output, args.format)
        if args.output:
            render(graph, args.output, format=fmt, collapse=args.collapse, diagnostics=drawn, run=run)
        elif fmt in IMAGE_FORMATS:
            raise ValueError(f"{fmt.upper()} is binary; name the file to write with -o FILE")
        else:
            drawing = render_bytes(graph, fmt, collapse=args.collapse, diagnostics=drawn, run=run)
            sys.stdout.write(drawing.decode("utf-8"))
    except (ValueError, RenderError) as exc:
        print(f"dagwright render: {exc}", file=sys.stderr)
        return 2
    if args.check and has_errors(diagnostics):
        errors = sum(1 for d in diagnostics if d.severity == "error")
        where = f" in {args.output}" if args.output else ""
        print(
            f"dagwright render: {targets[0].name} has {errors} error{'s' if errors != 1 else ''} (drawn in red{where})",
            file=sys.stderr,
        )
        return 1
    return 0
