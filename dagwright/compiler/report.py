"""Diagnostic reports in the formats people and machines read.

``text`` for terminals, ``json`` for scripts, ``sarif`` (2.1.0) for code-scanning
uploads, ``github`` for workflow-command annotations in GitHub Actions logs.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Literal

from dagwright.compiler.diagnostics import CODES, Diagnostic, count
from dagwright.compiler.ir import display_path

__all__ = ["FORMATS", "Report", "render"]

Format = Literal["text", "json", "sarif", "github"]
FORMATS: tuple[Format, ...] = ("text", "json", "sarif", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

# One (flow name, diagnostics) pair per checked flow.
Report = Sequence[tuple[str, Sequence[Diagnostic]]]

# The README heading whose table documents every code; a rule's helpUri links to it by GitHub's anchor for it.
CODES_HEADING = "Diagnostic codes"


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.lru_cache(maxsize=1)
def repository_url() -> str | None:
    """The repository the installed package names in its metadata (``[project.urls]``), if any.

    Only a URL the package declares is used: a guessed one could point at a page that does not exist.
    """
    try:
        urls: list[str] = metadata.metadata("dagwright").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for label in ("repository", "source", "source code", "homepage"):
        for entry in urls:
            name, _, url = entry.partition(",")
            if name.strip().lower() == label and url.strip().startswith("https://"):
                return url.strip().rstrip("/")
    return None


def codes_help_uri(repository: str) -> str:
    """Where the README's table of codes is read, in ``repository`` (a GitHub URL) on its main branch."""
    return f"{repository}/blob/main/README.md#{heading_anchor(CODES_HEADING)}"


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


# Codes about a whole file (it did not import): there is no node, and no flow to name in its place.
_FILE_CODES = frozenset({"DW019"})


def _file_level(d: Diagnostic) -> bool:
    return d.node is None and d.code in _FILE_CODES


def _shown(d: Diagnostic) -> str:
    text = str(d)
    return text.replace(f" {d.where}: ", " ", 1) if _file_level(d) else text


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
            lines.append("  " + _shown(d).replace("\n", "\n  "))
    return "\n".join(lines)


def _json(report: Report) -> str:
    flows = [
        {"flow": name, "summary": count(diags), "diagnostics": [d.to_dict() for d in diags]} for name, diags in report
    ]
    return json.dumps({"flows": flows}, indent=2, ensure_ascii=False)


def _uri(path: str) -> str:
    return display_path(path).replace(os.sep, "/")


def _sarif_rules(repository: str | None) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for info in CODES.values():
        rule: dict[str, Any] = {
            "id": info.code,
            "name": info.name,
            "shortDescription": {"text": info.summary},
            # Code scanning shows a rule's help beside each alert, so the table's row travels with the report.
            "help": {"text": f"{info.code} {info.name} ({info.severity}): {info.summary}"},
            "defaultConfiguration": {"level": _sarif_level(info.severity)},
        }
        if repository is not None:
            rule["helpUri"] = codes_help_uri(repository)
        rules.append(rule)
    return rules


def _sarif(report: Report, version: str) -> str:
    repository = repository_url()
    rules = _sarif_rules(repository)
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
            location: dict[str, Any] = {}
            if not _file_level(d):
                location["logicalLocations"] = [
                    {"name": d.where, "fullyQualifiedName": f"{name}/{d.where}", "kind": "member"}
                ]
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
                "tool": {"driver": _driver(version, repository, rules)},
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False)


def _driver(version: str, repository: str | None, rules: list[dict[str, Any]]) -> dict[str, Any]:
    driver: dict[str, Any] = {"name": "dagwright", "version": version}
    if repository is not None:
        driver["informationUri"] = repository
    driver["rules"] = rules
    return driver


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
            message = ("" if _file_level(d) else f"{d.where}: ") + d.message + (f" (hint: {d.hint})" if d.hint else "")
            lines.append(f"::{command} {','.join(props)}::{_escape_data(message)}")
    return "\n".join(lines)
