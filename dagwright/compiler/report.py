"""Diagnostic reports in the formats people and machines read.

``text`` for terminals, ``json`` for scripts, ``sarif`` (2.1.0) for code-scanning
uploads, ``github`` for workflow-command annotations in GitHub Actions logs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Literal

from dagwright.compiler.diagnostics import CODES, Diagnostic, count
from dagwright.compiler.ir import display_path

__all__ = ["FORMATS", "Report", "render"]

Format = Literal["text", "json", "sarif", "github"]
FORMATS: tuple[Format, ...] = ("text", "json", "sarif", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

# One (flow name, diagnostics) pair per checked flow.
Report = Sequence[tuple[str, Sequence[Diagnostic]]]


def render(report: Report, fmt: Format, *, version: str = "0") -> str:
    """Render the diagnostics of one or more flows in ``fmt``."""
    if fmt == "text":
        return _text(report)
    if fmt == "json":
        return _json(report)
    if fmt == "sarif":
        return _sarif(report, version)
    if fmt == "github":
        return _github(report)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _text(report: Report) -> str:
    lines: list[str] = []
    for name, diagnostics in report:
        c = count(diagnostics)
        if not diagnostics:
            lines.append(f"{name}: ok")
            continue
        summary = ", ".join(_plural(c[s], s) for s in ("error", "warning", "info") if c[s])
        lines.append(f"{name}: {summary}")
        for d in diagnostics:
            lines.append("  " + str(d).replace("\n", "\n  "))
    return "\n".join(lines)


def _json(report: Report) -> str:
    flows = [
        {"flow": name, "summary": count(diags), "diagnostics": [d.to_dict() for d in diags]} for name, diags in report
    ]
    return json.dumps({"flows": flows}, indent=2, ensure_ascii=False)


def _uri(path: str) -> str:
    return display_path(path).replace(os.sep, "/")


def _sarif(report: Report, version: str) -> str:
    rules = [
        {
            "id": info.code,
            "name": info.name,
            "shortDescription": {"text": info.summary},
            "defaultConfiguration": {"level": _sarif_level(info.severity)},
            "helpUri": f"https://pypi.org/project/dagwright/#{info.code.lower()}",
        }
        for info in CODES.values()
    ]
    rule_index = {code: i for i, code in enumerate(CODES)}
    results: list[dict[str, Any]] = []
    for name, diagnostics in report:
        for d in diagnostics:
            result: dict[str, Any] = {
                "ruleId": d.code,
                "level": _sarif_level(d.severity),
                "message": {"text": d.message + (f" Hint: {d.hint}" if d.hint else "")},
                "properties": {"flow": name},
            }
            if d.code in rule_index:
                result["ruleIndex"] = rule_index[d.code]
            logical = {"name": d.where, "fullyQualifiedName": f"{name}/{d.where}", "kind": "member"}
            location: dict[str, Any] = {"logicalLocations": [logical]}
            if d.location is not None:
                location["physicalLocation"] = {
                    "artifactLocation": {"uri": _uri(d.location.file)},
                    "region": {"startLine": d.location.line},
                }
            result["locations"] = [location]
            results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "dagwright",
                        "version": version,
                        "informationUri": "https://pypi.org/project/dagwright/",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False)


def _sarif_level(severity: str) -> str:
    return {"error": "error", "warning": "warning"}.get(severity, "note")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(report: Report) -> str:
    lines: list[str] = []
    for name, diagnostics in report:
        for d in diagnostics:
            command = {"error": "error", "warning": "warning"}.get(d.severity, "notice")
            props = []
            if d.location is not None:
                props.append(f"file={_escape_property(_uri(d.location.file))}")
                props.append(f"line={d.location.line}")
            props.append(f"title={_escape_property(f'{d.code} {d.name} ({name})')}")
            message = f"{d.where}: {d.message}" + (f" (hint: {d.hint})" if d.hint else "")
            lines.append(f"::{command} {','.join(props)}::{_escape_data(message)}")
    return "\n".join(lines)
