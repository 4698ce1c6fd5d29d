"""The shared LLM transport: one client per loop, base URL and key, at most N requests on the wire at once."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
import weakref
from typing import Any

import pytest

from dagwright import BaseAgent
from dagwright.llm import transport
from dagwright.testing import OpenAITestServer


@pytest.fixture
def slow_server() -> Any:
    with OpenAITestServer(latency=0.05) as server:
        yield server


def _agent(server: OpenAITestServer) -> BaseAgent:
    return BaseAgent(
        signature="question: str -> answer: str",
        config={"provider": "openai", "base_url": server.base_url, "api_key": "sk-test", "max_retries": 0},
    )


def test_requests_beyond_the_bound_wait_their_turn(slow_server: OpenAITestServer, monkeypatch: Any) -> None:
    monkeypatch.setenv(transport.MAX_CONNECTIONS_ENV, "3")
    agent = _agent(slow_server)

    async def many() -> list[Any]:
        return await asyncio.gather(*(agent.arun(question=f"q{i}") for i in range(12)))

    replies = asyncio.run(many())
    assert len(replies) == 12 and all(r["answer"] for r in replies)
    assert slow_server.request_count == 12
    # 12 requests of 50 ms, 3 at a time: at least four rounds of the server's latency.
    assert max(r["_timing"] for r in replies) >= 4 * 50 * 0.9


def test_one_client_per_loop_and_endpoint(slow_server: OpenAITestServer) -> None:
    async def clients() -> tuple[Any, Any, Any]:
        a = transport.shared_client(slow_server.base_url, "k1")
        b = transport.shared_client(slow_server.base_url, "k1")
        c = transport.shared_client(slow_server.base_url, "k2")
        await a.close()
        await c.close()
        return a, b, c

    a, b, c = asyncio.run(clients())
    assert a is b and a is not c


def test_a_released_slot_survives_a_failed_request(monkeypatch: Any) -> None:
    # Nothing listens on this port: every attempt fails to connect, and must give its slot back.
    monkeypatch.setenv(transport.MAX_CONNECTIONS_ENV, "1")
    agent = BaseAgent(
        signature="question: str -> answer: str",
        config={"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk", "max_retries": 0},
    )

    async def twice() -> list[BaseException | dict[str, Any]]:
        return await asyncio.wait_for(
            asyncio.gather(agent.arun(question="a"), agent.arun(question="b"), return_exceptions=True), 20
        )

    outcomes = asyncio.run(twice())
    assert len(outcomes) == 2 and all(isinstance(o, Exception) and "cannot reach" in str(o) for o in outcomes)


@pytest.mark.parametrize("raw", ["0", "-2", "many"])
def test_a_bad_bound_is_refused_naming_the_variable(raw: str, monkeypatch: Any) -> None:
    monkeypatch.setenv(transport.MAX_CONNECTIONS_ENV, raw)
    with pytest.raises(ValueError, match=transport.MAX_CONNECTIONS_ENV):
        transport.max_connections()


@pytest.mark.parametrize("stream", [True, False])
def test_calls_in_turn_reuse_one_connection(stream: bool) -> None:
    # A streamed reply is read past its [DONE] to the body's end, so its connection goes back to the pool
    # (leaving it half-read closes it, and every call would then open a new one: a TLS handshake on HTTPS).
    with OpenAITestServer() as server:
        agent = BaseAgent(
            signature="question: str -> answer: str",
            config={"provider": "openai", "base_url": server.base_url, "api_key": "sk", "stream": stream},
        )

        async def in_turn() -> list[Any]:
            return [await agent.arun(question=f"q{i}") for i in range(5)]

        replies = asyncio.run(in_turn())
        assert all(r["answer"] for r in replies)
        assert [bool(body.get("stream")) for body in server.requests] == [stream] * 5
        assert server.connections_opened == 1


def test_a_stream_that_stays_open_after_its_end_still_answers() -> None:
    # A server that sends [DONE] and then holds the body open: the reply is taken, the connection dropped.
    with OpenAITestServer(holds_after_done=30.0) as server:
        agent = BaseAgent(
            signature="question: str -> answer: str",
            config={"provider": "openai", "base_url": server.base_url, "api_key": "sk", "timeout": 10},
        )
        reply = agent.run(question="q")
        assert reply["answer"] and reply["_timing"] < 5_000


def _wait_for(condition: Any, seconds: float = 5.0) -> bool:
    # The server's handler thread sees the client's close a moment after it happens.
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_loop_shutting_down_closes_its_clients_connections(slow_server: OpenAITestServer) -> None:
    agent = _agent(slow_server)

    async def some() -> None:
        await asyncio.gather(*(agent.arun(question=f"q{i}") for i in range(4)))
        assert slow_server.connections_open == 4  # kept alive in the pool while the loop runs

    asyncio.run(some())
    assert _wait_for(lambda: slow_server.connections_open == 0)

    with asyncio.Runner() as runner:
        runner.run(some())
        runner.run(agent.arun(question="again"))  # the same loop: the same client and its pool
        assert slow_server.connections_open >= 1
    assert _wait_for(lambda: slow_server.connections_open == 0)


def test_a_loop_closed_without_a_shutdown_lets_its_connections_go_quietly(
    slow_server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without shutdown_asyncgens nothing can close the clients on their loop any more: the next loop to make a
    # client drops them, so the closed loop and its sockets can go, and what would have closed them goes
    # without a word.
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    agent = _agent(slow_server)
    closed: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    for _ in range(3):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(agent.arun(question="q"))
        finally:
            loop.close()
        closed.append(weakref.ref(loop))
    del loop
    gc.collect()
    assert closed[-1]() is not None  # kept with its clients until another loop makes a client
    asyncio.run(agent.arun(question="q"))
    gc.collect()
    assert [ref() for ref in closed] == [None, None, None]
    assert _wait_for(lambda: slow_server.connections_open == 0)
    assert [(u.exc_type, u.object, u.err_msg) for u in unraisable] == []


def test_the_connections_of_a_finished_threads_sync_calls_go_when_another_loop_makes_a_client(
    slow_server: OpenAITestServer,
) -> None:
    agent = _agent(slow_server)
    worker = threading.Thread(target=lambda: [agent.run(question="from a worker") for _ in range(2)])
    worker.start()
    worker.join()
    gc.collect()
    assert slow_server.connections_open == 1  # the worker's loop, idle, still holds its pool
    asyncio.run(agent.arun(question="from here"))
    gc.collect()
    assert _wait_for(lambda: slow_server.connections_open == 0)


_SCRIPT = """
import asyncio, gc, sys
from dagwright import BaseAgent
agent = BaseAgent(signature="question: str -> answer: str",
                  config={"provider": "openai", "base_url": sys.argv[1], "api_key": "sk-test"})
agent.run(question="sync")
agent.run(question="sync again")
asyncio.run(agent.arun(question="async"))
asyncio.run(agent.arun(question="async again"))
gc.collect()
print("ran")
"""


def test_a_script_using_agents_exits_with_every_connection_closed(slow_server: OpenAITestServer) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "-c", _SCRIPT, slow_server.base_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ran", done.stderr
    assert "ResourceWarning" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert _wait_for(lambda: slow_server.connections_open == 0)
