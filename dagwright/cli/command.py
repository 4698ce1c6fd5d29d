"""The ``dagwright`` command: ``check``, ``export``, ``run`` and ``demo``.

Exit codes: 0 clean, 1 the flow has errors (or warnings with ``--strict``),
2 a usage problem (bad path, import error, unknown option), said plainly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dagwright._version import __version__
from dagwright.cli.loader import Target, TargetError, load_targets
from dagwright.compiler.diagnostics import Diagnostic, has_errors
from dagwright.compiler.ir import Graph
from dagwright.compiler.passes import validate
from dagwright.compiler.report import FORMATS, render

__all__ = ["main"]


def _version() -> str:
    return __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dagwright",
        description="Compile, check and export typed agent workflows.",
    )
    parser.add_argument("--version", action="version", version=f"dagwright {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="check flows for errors before anything runs",
        description="Check flows: FILE.py[:OBJ], package.module[:OBJ], or an IR .json file. "
        "Without :OBJ every Flow defined at module level is checked.",
    )
    check.add_argument("targets", nargs="+", metavar="TARGET")
    check.add_argument("--format", choices=FORMATS, default="text", help="report format (default: text)")
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.add_argument(
        "--allow-empty", action="store_true", help="a file that defines no Flow is not an error (pre-commit)"
    )
    check.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")

    export = sub.add_parser("export", help="export a checked flow's IR", description="Export a flow's IR.")
    export.add_argument("target", metavar="TARGET")
    export.add_argument(
        "--format",
        choices=("json", "kailash-yaml", "kailash-py"),
        default="json",
        help="json: the IR; kailash-yaml: the lowered Kailash workflow (Kailash's to_yaml); kailash-py: a "
        "standalone script that rebuilds and runs it (default: json)",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

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
        help="continue a run stored with --checkpoint; its finished nodes do not run again",
    )
    run.add_argument(
        "--rerun-changed",
        action="store_true",
        help="with --resume: re-run the nodes that changed since the run started, and their descendants",
    )

    _add_render_parser(sub)
    sub.add_parser("demo", help="compile, check and show a multi-agent research flow")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
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
        if args.command == "demo":
            from dagwright.cli.demo import run_demo

            return run_demo()
    except TargetError as exc:
        print(f"dagwright {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 1
    parser.error(f"unknown command {args.command!r}")
    return 2


def _diagnose(target: Target) -> tuple[Graph, list[Diagnostic]]:
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


def _check(args: argparse.Namespace) -> int:
    report: list[tuple[str, list[Diagnostic]]] = []
    for spec in args.targets:
        for target in load_targets(spec, allow_empty=args.allow_empty):
            _, diagnostics = _diagnose(target)
            report.append((target.name, diagnostics))
    _write(render(report, args.format, version=_version()), args.output)
    failed = any(has_errors(diags, strict=args.strict) for _, diags in report)
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    targets = load_targets(args.target)
    if len(targets) != 1:
        names = ", ".join(t.name for t in targets)
        raise TargetError(f"{args.target!r} holds {len(targets)} flows ({names}); name one with FILE:NAME")
    graph, diagnostics = _diagnose(targets[0])
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

    targets = load_targets(args.target)
    if len(targets) != 1 or targets[0].flow is None:
        names = ", ".join(t.name for t in targets)
        raise TargetError(f"{args.target!r} holds {len(targets)} flows ({names}); name one with FILE:NAME")
    flow = targets[0].flow
    try:
        graph = flow.compile()
    except CompileError as exc:
        print(render([(flow.name, exc.diagnostics)], "text"), file=sys.stderr)
        print("dagwright run: the flow does not compile; nothing ran", file=sys.stderr)
        return 1
    if args.resume is not None and (args.input or args.inputs_json is not None):
        raise TargetError("--resume uses the inputs stored with the run; do not pass --input or --inputs-json")
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


def _render(args: argparse.Namespace) -> int:
    from dagwright.visualize.render import IMAGE_FORMATS, RenderError, format_for, render, render_bytes

    targets = load_targets(args.target)
    if len(targets) != 1:
        names = ", ".join(t.name for t in targets)
        raise TargetError(f"{args.target!r} holds {len(targets)} flows ({names}); name one with FILE:NAME")
    graph, diagnostics = _diagnose(targets[0])
    drawn = diagnostics if args.check else None
    try:
        fmt = format_for(args.output, args.format)
        if args.output:
            render(graph, args.output, format=fmt, collapse=args.collapse, diagnostics=drawn)
        elif fmt in IMAGE_FORMATS:
            raise ValueError(f"{fmt.upper()} is binary; name the file to write with -o FILE")
        else:
            sys.stdout.write(render_bytes(graph, fmt, collapse=args.collapse, diagnostics=drawn).decode("utf-8"))
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
