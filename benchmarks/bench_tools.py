"""Tool-loop benchmark: what one round of tool calls costs an agent beyond the model's own time.

The loopback ``OpenAITestServer`` runs in a child process; an agent with one async tool asks the
offline model, which asks for the tool once, gets its result and answers: two requests and one tool
round per ``await agent.arun()``. Beside it, the raw floor replays the very two request bodies the
agent sent with a bare ``AsyncOpenAI().chat.completions.create`` and awaits the tool function itself
between them. ``round overhead`` is the agent's time minus that floor, less the overhead of the same
agent without tools over its one raw request (measured in the same run): what the tool loop adds per
round (schema, parsing the calls, running them, the transcript). Target: under 1 ms per round.

Run alone: ``python benchmarks/bench_tools.py [--quick] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from _util import Table, machine_note, write_json

TARGET_ROUND_MS = 1.0

_SERVER_CHILD = """
import sys
from dagwright.testing import OpenAITestServer
with OpenAITestServer() as server:
    print(server.base_url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
"""

QUESTION = "What is the weather in Paris? Use lookup."


async def lookup(city: str) -> str:
    """Look the weather of a city up."""
    return f"sunny in {city}"


def _bodies(settings: dict[str, Any], tools: bool) -> list[dict[str, Any]]:
    """The request bodies an agent sends for QUESTION, captured from an in-process server."""
    from dagwright.agent import BaseAgent
    from dagwright.testing import OpenAITestServer

    with OpenAITestServer() as capture:
        agent = BaseAgent(
            config={**settings, "base_url": capture.base_url},
            signature="question: str -> answer: str",
            tools=[lookup] if tools else None,
        )
        agent.run(question=QUESTION)
        return [dict(body) for body in capture.requests]


async def _sample(calls: dict[str, Callable[[], Awaitable[Any]]], samples: int) -> dict[str, list[float]]:
    for call in calls.values():  # warm-up: clients, connections, pydantic models
        await call()
        await call()
    wall: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(samples):
        for name, call in calls.items():  # interleaved: drift hits every subject alike
            started = time.perf_counter()
            await call()
            wall[name].append(time.perf_counter() - started)
    return wall


def measure(samples: int) -> dict[str, float]:
    import openai

    from dagwright.agent import BaseAgent

    settings = {"provider": "openai", "api_key": "test", "model": "gpt-4o-mini"}
    with_tools, without = _bodies(settings, True), _bodies(settings, False)
    assert len(with_tools) == 2 and len(without) == 1, (len(with_tools), len(without))
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVER_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        base_url = child.stdout.readline().strip()
        config = {**settings, "base_url": base_url}
        tooled = BaseAgent(config=config, signature="question: str -> answer: str", tools=[lookup])
        plain = BaseAgent(config=config, signature="question: str -> answer: str")

        async def main() -> dict[str, list[float]]:
            client = openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)

            async def raw(body: dict[str, Any]) -> None:
                reply = await client.chat.completions.create(**body)
                if body.get("stream"):  # the agent streams its requests, tool rounds too: read each to its end
                    [chunk async for chunk in reply]

            async def raw_tools() -> None:
                await raw(with_tools[0])
                await lookup("Paris")
                await raw(with_tools[1])

            async def raw_plain() -> None:
                await raw(without[0])

            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "raw_tools": raw_tools,
                "agent_tools": lambda: tooled.arun(question=QUESTION),
                "raw_plain": raw_plain,
                "agent_plain": lambda: plain.arun(question=QUESTION),
            }
            try:
                return await _sample(calls, samples)
            finally:
                await client.close()

        wall = asyncio.run(main())
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    return {name: statistics.median(values) * 1e3 for name, values in wall.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    samples = 60 if args.quick else 300
    print(machine_note())
    p50 = measure(samples)
    round_ms = (p50["agent_tools"] - p50["raw_tools"]) - (p50["agent_plain"] - p50["raw_plain"])
    table = Table(
        f"one tool round over the raw client, OpenAITestServer in a child process ({samples} samples each)",
        ["call", "wall p50 ms", "over its raw floor ms"],
    )
    table.add("raw: 2 creates + the tool", f"{p50['raw_tools']:.3f}", "-")
    over = p50["agent_tools"] - p50["raw_tools"]
    table.add("agent with a tool (1 round)", f"{p50['agent_tools']:.3f}", f"{over:.3f}")
    table.add("raw: 1 create", f"{p50['raw_plain']:.3f}", "-")
    table.add("agent without tools", f"{p50['agent_plain']:.3f}", f"{p50['agent_plain'] - p50['raw_plain']:.3f}")
    table.print()
    verdict = "meets" if round_ms <= TARGET_ROUND_MS else "MISSES"
    print(f"  tool round overhead {round_ms:.3f} ms {verdict} the target of <= {TARGET_ROUND_MS:g} ms\n")
    if args.json:
        write_json(args.json, {"wall_p50_ms": p50, "round_overhead_ms": round_ms})
    return 0


if __name__ == "__main__":
    sys.exit(main())
