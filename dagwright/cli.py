"""The ``dagwright`` command: ``check``, ``export`` and ``demo``.

Exit codes: 0 clean, 1 the flow has errors (or warnings with ``--strict``),
2 a usage problem (bad path, import error, unknown option), said plainly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dagwright._loader import Target, TargetError, load_targets
from dagwright.compiler.diagnostics import Diagnostic, has_errors
from dagwright.compiler.ir import Graph
from dagwright.compiler.passes import validate
from dagwright.compiler.report import FORMATS, render

__all__ = ["main"]


def _version() -> str:
    from dagwright import __version__

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
    export.add_argument("--format", choices=("json",), default="json", help="export format (default: json)")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

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
        if args.command == "demo":
            from dagwright.demo import run_demo

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
    _write(graph.to_json(), args.output)
    return 0
