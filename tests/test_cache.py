"""Result caching for agents and flow nodes: hits make no LLM request; failed or invalid results are never stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers_runtime import loopback_agent
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwright import BaseAgent, Flow
from dagwright.execution.errors import LLMRequestError, OutputParseError
from dagwright.ops.cache import MemoryCache, ResultCache, SqliteCache, cache_key, make_cache
from dagwright.testing import Fault, OpenAITestServer


def make_agent(server: OpenAITestServer, **config: Any) -> BaseAgent:
    return loopback_agent(server, "question: str -> answer: str, score: float", **config)


def outputs(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not k.startswith("_")}


# --------------------------------------------------------------------------- agents


def test_a_hit_makes_no_request(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    cache = agent.enable_cache()
    first = agent.run(question="What is ML?")
    assert server.request_count == 1
    second = agent.run(question="What is ML?")
    assert server.request_count == 1
    assert outputs(second) == outputs(first)
    assert first["_cache"] == "miss" and second["_cache"] == "hit"
    assert second["_tokens"] == {"prompt": 0, "completion": 0, "total": 0}
    assert second["_cost"] == 0.0
    assert second["_model"] == first["_model"] == "gpt-4o-mini"
    assert cache.stats() == {"backend": "memory", "hits": 1, "misses": 1, "stored": 1}
    metrics = agent.get_execution_monitor().metrics()
    assert metrics["cache"] == {"hits": 1, "misses": 1}
    second["answer"] = "changed by the caller"
    assert agent.run(question="What is ML?")["answer"] == first["answer"]


def test_the_key_covers_inputs_model_and_prompt(server: OpenAITestServer) -> None:
    shared = MemoryCache()
    base = make_agent(server)
    base.enable_cache(shared)
    base.run(question="q1")
    base.run(question="q2")
    assert server.request_count == 2
    for other in (
        make_agent(server, model="gpt-4o"),
        make_agent(server, system_prompt="Be terse."),
        make_agent(server, temperature=0.5),
        make_agent(server, structured_output="prompt"),
    ):
        other.enable_cache(shared)
        before = server.request_count
        assert other.run(question="q1")["_cache"] == "miss"
        assert server.request_count == before + 1
    twin = make_agent(server)
    twin.enable_cache(shared)
    assert twin.run(question="q1")["_cache"] == "hit"
    assert shared.stats()["hits"] == 1


def test_sqlite_cache_is_shared_and_persistent(server: OpenAITestServer, tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    first = make_agent(server)
    first.enable_cache("sqlite", path=path)
    answer = outputs(first.run(question="persist me"))
    restarted = make_agent(server)
    cache = restarted.enable_cache("sqlite", path=path)
    again = restarted.run(question="persist me")
    assert outputs(again) == answer and again["_cache"] == "hit"
    assert server.request_count == 1
    assert len(cache) == 1 and cache.stats() == {"backend": "sqlite", "hits": 1, "misses": 0, "stored": 0}
    cache.clear()
    assert len(cache) == 0
    assert restarted.run(question="persist me")["_cache"] == "miss"
    assert server.request_count == 2


def test_invalid_outputs_are_never_cached(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    cache = agent.enable_cache()
    server.enqueue(Fault(malformed=True), Fault(malformed=True))
    with pytest.raises(OutputParseError):
        agent.run(question="bad reply")
    assert cache.stats()["stored"] == 0 and len(cache) == 0
    server.enqueue(Fault(status=400))
    with pytest.raises(LLMRequestError):
        agent.run(question="bad reply")
    assert len(cache) == 0
    before = server.request_count
    good = agent.run(question="bad reply")
    assert good["_cache"] == "miss" and server.request_count == before + 1
    assert agent.run(question="bad reply")["_cache"] == "hit"


def test_a_cache_hit_keeps_the_session_memory(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    agent.enable_memory()
    agent.enable_cache()
    agent.run(question="hello", session_id="s1")
    hit = agent.run(question="hello", session_id="s2")
    assert hit["_cache"] == "hit"
    # s2 now has one turn, so the same question in s2 is a different prompt: a miss.
    assert agent.run(question="hello", session_id="s2")["_cache"] == "miss"


def test_disable_cache(server: OpenAITestServer) -> None:
    agent = make_agent(server)
    agent.enable_cache()
    agent.run(question="q")
    agent.disable_cache()
    assert agent.cache is None
    assert "_cache" not in agent.run(question="q")
    assert server.request_count == 2


def test_cache_choices_are_checked(tmp_path: Path) -> None:
    agent = BaseAgent(signature="q -> a", name="qa")
    with pytest.raises(ValueError, match="qa: unknown cache 'redis'; choose 'memory', 'sqlite'"):
        agent.enable_cache("redis")
    with pytest.raises(ValueError, match=r"qa: a sqlite cache needs path='cache.db'"):
        agent.enable_cache("sqlite")
    with pytest.raises(ValueError, match=r"cannot use .* as a result cache"):
        SqliteCache(tmp_path)  # a directory, not a file
    with pytest.raises(ValueError, match="max_entries must be at least 1"):
        MemoryCache(0)
    assert isinstance(make_cache(True), MemoryCache)


def test_memory_cache_drops_the_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2)
    cache.put("a", {"v": 1})
    cache.put("b", {"v": 2})
    assert cache.get("a") == {"v": 1}
    cache.put("c", {"v": 3})
    assert cache.get("b") is None
    assert cache.get("a") == {"v": 1} and cache.get("c") == {"v": 3}
    assert cache.stats() == {"backend": "memory", "hits": 3, "misses": 1, "stored": 3}


def test_values_that_are_not_plain_json_are_not_stored() -> None:
    cache = MemoryCache()
    assert cache.put("k", {"when": object()}) is False
    assert cache.put("k", {"pair": (1, 2)}) is False
    assert cache.put("k", {"n": float("nan")}) is False
    assert len(cache) == 0
    assert cache.put("k", {"xs": [1, 2.5, "s", None, {"d": True}]}) is True


@settings(max_examples=100)
@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=5))
def test_cache_key_is_stable_and_order_independent(parts: dict[str, Any]) -> None:
    reordered = dict(reversed(list(parts.items())))
    assert cache_key(inputs=parts) == cache_key(inputs=reordered)
    assert len(cache_key(inputs=parts)) == 64
    assert cache_key(inputs=parts) != cache_key(inputs=parts, model="other")


# --------------------------------------------------------------------------- flow nodes


def test_a_cached_agent_node_makes_no_request(server: OpenAITestServer) -> None:
    flow = Flow("cached")
    flow.add_agent("qa", make_agent(server))
    flow.input("question")
    flow.output("answer", "qa.answer")
    flow.configure("qa", cache=True)
    monitor = flow.monitor()
    first = flow.run(question="same")
    second = flow.run(question="same")
    assert server.request_count == 1
    assert second.outputs == first.outputs
    flow.run(question="different")
    assert server.request_count == 2
    assert monitor.metrics()["nodes"]["qa"]["cache"] == {"hits": 1, "misses": 2}


def test_a_cached_function_node_runs_once_per_input() -> None:
    calls: list[int] = []

    def square(x: int) -> int:
        calls.append(x)
        if x < 0:
            raise ValueError("negative")
        return x * x

    flow = Flow("squares")
    flow.add_function("square", square)
    flow.input("x")
    flow.output("y", "square.output")
    flow.configure("square", cache=True)
    assert [flow.run(x=v)["y"] for v in (3, 3, 4, 3)] == [9, 9, 16, 9]
    assert calls == [3, 4]
    assert not flow.run(x=-1).success
    assert not flow.run(x=-1).success
    assert calls == [3, 4, -1, -1]
    flow.configure("square", cache=False)
    flow.run(x=3)
    assert calls == [3, 4, -1, -1, 3]


def test_configure_cache_errors_name_the_node() -> None:
    flow = Flow("f")
    flow.add_function("square", lambda x: x)
    with pytest.raises(ValueError, match="flow 'f', node 'square': unknown cache 'disk'"):
        flow.configure("square", cache="disk")


class DictCache(ResultCache):
    """A storage of one's own: the four methods over a plain dict."""

    backend = "dict"

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, str] = {}

    def _load(self, key: str) -> str | None:
        return self.entries.get(key)

    def _store(self, key: str, text: str) -> None:
        self.entries[key] = text

    def _clear(self) -> None:
        self.entries.clear()

    def _size(self) -> int:
        return len(self.entries)


def test_a_storage_of_ones_own_serves_as_a_node_cache() -> None:
    calls: list[int] = []

    def triple(x: int) -> int:
        calls.append(x)
        return 3 * x

    cache = DictCache()
    flow = Flow("triples")
    flow.add_function("triple", triple)
    flow.input("x")
    flow.configure("triple", cache=cache)
    assert [flow.run(x=v).outputs for v in (2, 2, 5)] == [{"output": 6}, {"output": 6}, {"output": 15}]
    assert calls == [2, 5]
    assert cache.stats() == {"backend": "dict", "hits": 1, "misses": 2, "stored": 2} and len(cache) == 2


def test_a_cache_missing_part_of_the_interface_is_refused_when_made() -> None:
    class Half(ResultCache):
        def _load(self, key: str) -> str | None:
            return None

    with pytest.raises(TypeError, match="abstract methods _clear, _size, _store"):
        Half()  # type: ignore[abstract]
    with pytest.raises(TypeError, match="abstract"):
        ResultCache()  # type: ignore[abstract]
