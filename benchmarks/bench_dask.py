"""The Dask back end: per-task overhead beside hand-written Dask, and 1 000 agent calls beside the built-in scheduler.

1. **Per-task overhead**, measured first, on fresh workers: a fan of *n* async function nodes (each its
   own task: async functions are never fused) run through the lowering, beside a hand-written
   ``dask.delayed`` graph of the same shape whose results are all gathered too (a run returns every
   node's record). The hand-written tasks call a plain sync function, so the lowering's figure also
   carries each node's event-loop step. Target: ours <= 1.2x. A chain of *n* sync functions is shown as
   well: the lowering fuses it into one task.
2. **Agent calls**: one flow of 1 000 independent agents (``topic: str -> summary: str``) against
   ``dagwright.testing.OpenAITestServer`` with 50 ms latency per response, in its own process so its
   request handling does not share the client's GIL; wall time of ``flow.run()`` on the built-in
   scheduler and of ``flow.run(backend="dask", client=...)`` on a ``LocalCluster`` (2 worker processes
   x 64 threads, started once, its start timed apart), beside a raw floor: the same 1 000 requests as
   ``AsyncOpenAI`` calls under one ``asyncio.gather``, what one process does with no framework at all.

Every figure is the median of the samples. Run alone: ``.venv/bin/python benchmarks/bench_dask.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import dask
from distributed import Client, LocalCluster

from dagwright import Flow, Kaizen

WORKERS = 2
THREADS = 64


def _median_time(run: Callable[[], Any], samples: int) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


_SERVE = """
import sys
from dagwright.testing import OpenAITestServer
with OpenAITestServer(latency=float(sys.argv[1])) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def server_process(latency: float) -> Iterator[str]:
    """An ``OpenAITestServer`` in a child process (stopped when stdin closes); yields its base URL."""
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def raw_calls(n: int, base_url: str) -> None:
    """The floor: ``n`` chat completions through one ``AsyncOpenAI`` client under one ``asyncio.gather``."""
    from openai import AsyncOpenAI

    async def go() -> None:
        async with AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0) as client:
            messages: Any = [{"role": "user", "content": "topic: tides"}]
            await asyncio.gather(
                *(client.chat.completions.create(model="gpt-4o-mini", messages=messages) for _ in range(n))
            )

    asyncio.run(go())


def agent_flow(n: int, base_url: str) -> Flow:
    kaizen = Kaizen()
    config = {"base_url": base_url, "api_key": "test-key", "model": "gpt-4o-mini"}
    flow = Flow("agents")
    for i in range(n):
        flow.add_agent(f"a{i}", kaizen.create_agent(f"a{i}", signature="topic: str -> summary: str", config=config))
    flow.input("topic")
    return flow


async def astep(x: int) -> int:
    return x + 1


def step(x: int) -> int:
    return x + 1


def source() -> int:
    return 1


def fan_flow(n: int) -> Flow:
    flow = Flow("fan")
    flow.add_function("src", source)
    for i in range(n):
        flow.add_function(f"s{i}", astep)
        flow.connect("src.output", f"s{i}.x")
    return flow


def chain_flow(n: int) -> Flow:
    flow = Flow("chain")
    flow.add_function("s0", source)
    for i in range(1, n):
        flow.add_function(f"s{i}", step)
        flow.connect(f"s{i - 1}.output", f"s{i}.x")
    return flow


def delayed_fan(client: Client, n: int) -> list[int]:
    root = dask.delayed(source)()
    return list(client.gather(client.compute([dask.delayed(step)(root) for _ in range(n)])))


def delayed_chain(client: Client, n: int) -> list[int]:
    values = [dask.delayed(source)()]
    for _ in range(1, n):
        values.append(dask.delayed(step)(values[-1]))
    return list(client.gather(client.compute(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and samples")
    args = parser.parse_args()
    calls, tasks, samples = (200, 100, 3) if args.quick else (1000, 300, 5)
    print(f"# Dask back end ({os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, dask {dask.__version__})\n")
    started = time.perf_counter()
    cluster = LocalCluster(
        n_workers=WORKERS,
        threads_per_worker=THREADS,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # a free port: never collide with a cluster already running
        silence_logs=logging.ERROR,
    )
    client = Client(cluster, set_as_default=False)
    print(f"LocalCluster start ({WORKERS} workers x {THREADS} threads): {time.perf_counter() - started:.2f} s\n")
    try:
        print(f"## per-task overhead, {tasks} tasks ({2 * samples - 1} samples, median)\n")
        print("| graph | dagwright lowering | hand-written dask.delayed | ratio |\n|---|---:|---:|---:|")
        fan = fan_flow(tasks)
        chain = chain_flow(tasks)
        for make, hand, label in ((fan, delayed_fan, "fan (1 task per node)"), (chain, delayed_chain, "chain")):
            make.run(backend="dask", client=client)
            hand(client, tasks)
            # Alternated, so a burst of load on a shared machine hits both sides alike.
            pairs = [
                (
                    _median_time(lambda make=make: make.run(backend="dask", client=client), 1),
                    _median_time(lambda hand=hand: hand(client, tasks), 1),
                )
                for _ in range(2 * samples - 1)
            ]
            ours = statistics.median(p[0] for p in pairs)
            theirs = statistics.median(p[1] for p in pairs)
            print(
                f"| {label} | {ours / tasks * 1e6:.0f} µs/node | {theirs / tasks * 1e6:.0f} µs/node "
                f"| {ours / theirs:.2f}x |"
            )
        print("\n(the chain is fused into one task by the lowering; dask.delayed runs one task per step)\n")
        with server_process(latency=0.05) as base_url:
            flow = agent_flow(calls, base_url)
            for backend in ("builtin", "dask"):  # warm both: LLM clients, executors on the workers
                result = flow.run(topic="tides", backend=backend, client=client if backend == "dask" else None)
                assert result.success, result.error
            raw_calls(calls, base_url)
            floor = _median_time(lambda: raw_calls(calls, base_url), samples)
            builtin = _median_time(lambda: flow.run(topic="tides"), samples)
            on_dask = _median_time(lambda: flow.run(topic="tides", backend="dask", client=client), samples)
        bound = calls * 0.05 / (WORKERS * THREADS)
        print(f"## {calls} agent calls, 50 ms latency ({samples} samples, median)\n")
        print("| back end | wall | calls/s |\n|---|---:|---:|")
        print(f"| raw AsyncOpenAI + asyncio.gather (floor) | {floor:.2f} s | {calls / floor:.0f} |")
        print(f"| built-in scheduler | {builtin:.2f} s | {calls / builtin:.0f} |")
        print(f"| Dask LocalCluster | {on_dask:.2f} s | {calls / on_dask:.0f} |")
        print(f"\nlatency bound on the cluster: {bound:.2f} s ({WORKERS * THREADS} threads)")
    finally:
        client.close()
        cluster.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
