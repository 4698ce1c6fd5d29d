"""Secrets in agent configs, URLs, headers and inputs: used by the process, shown by nothing.

The IR takes from an agent's config only what is known to be safe (an allow-list, see
:mod:`dagwright.compiler.redact`); the caller's full config stays in the node's binding
and is what the agent runs with. First each defect of the old deny-list, reproduced;
then the rule itself; then the study: ten kinds of secrets planted in a small flow
that runs against the test server, and every artifact searched for them: the IR, every
export (Python and CLI), the drawings, the reprs, the run results and their errors, the
monitor, the checkpoint database, the audit log, and the prompts the model received.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagwright.agent import BaseAgent
from dagwright.backends.builtin.plan import build_plan
from dagwright.backends.builtin.scheduler import Scheduler
from dagwright.backends.kailash.export import to_kailash_script, to_kailash_yaml
from dagwright.cli.command import main as cli
from dagwright.compiler.ir import Graph
from dagwright.compiler.redact import (
    REDACTED,
    AgentBinding,
    has_secret_word,
    is_secret_like,
    looks_like_credential,
    prompt_context,
    safe_settings,
    scrub_urls,
    strip_url,
)
from dagwright.execution.errors import RunFailedError
from dagwright.execution.events import RunResult
from dagwright.flow import Flow
from dagwright.testing import Fault, OpenAITestServer

# --------------------------------------------------------------------------- the ten planted secrets

API_KEY = "sk-live-PLANTED01apikeyQ7w9Rt"
BEARER = "PLANTED02bearerZx81LmQ0"
USERINFO_PASSWORD = "PLANTED03userinfoPw55"
QUERY_TOKEN = "PLANTED04queryTokenK2"
AUTH_HEADER = "PLANTED05authHeaderJ7"
PASSPHRASE = "PLANTED06 correct horse battery staple"
SESSION_COOKIE = "PLANTED07sessionCookieV3"
CONTEXT_SECRET = "acct_live_PLANTED08ctx9f8e7d6c"
INPUT_SECRET = "svc-PLANTED09runtimeInputT4"
ENV_KEY = "sk-env-PLANTED10otherAccountM1"
SECRETS = {
    "api_key": API_KEY,
    "bearer token in default_headers": BEARER,
    "password in a URL's userinfo": USERINFO_PASSWORD,
    "token in a URL query string": QUERY_TOKEN,
    "auth_header": AUTH_HEADER,
    "passphrase": PASSPHRASE,
    "session_cookie_value": SESSION_COOKIE,
    "secret in role context": CONTEXT_SECRET,
    "secret-named flow input": INPUT_SECRET,
    "OPENAI_API_KEY": ENV_KEY,
}
MARK = "PLANTED"  # in every secret: a part of one that leaks is found too


def leaked(text: str) -> list[str]:
    """The kinds of planted secret that appear in ``text``."""
    found = [kind for kind, value in SECRETS.items() if value in text]
    if MARK in text and not found:
        found.append(f"part of a secret: ...{text[max(text.index(MARK) - 20, 0) : text.index(MARK) + 30]}...")
    return found


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAITestServer]:
    """The test server, accepting only the planted api_key; the environment holds another account's key."""
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("DAGWRIGHT_PROVIDER", raising=False)
    with OpenAITestServer(api_key=API_KEY) as running:
        yield running


def _compiled_and_exported(flow: Flow) -> dict[str, str]:
    return {
        "IR JSON": flow.compile().to_json(),
        "Kailash YAML": to_kailash_yaml(flow),
        "Kailash script": to_kailash_script(flow),
        "repr(flow)": repr(flow),
        "repr(flow.build())": repr(flow.build()),
        "flow.build().to_dict()": str(flow.build().to_dict()),
        "repr(flow.to_kailash())": repr(flow.to_kailash()),
    }


def _run_artifacts(label: str, result: RunResult) -> dict[str, str]:
    found = {f"{label} repr": repr(result), f"{label} to_json": result.to_json(), f"{label} error": str(result.error)}
    found.update({f"{label} {nid} error": str(r.error) for nid, r in result.nodes.items()})
    if not result.success:
        with pytest.raises(RunFailedError) as raised:
            result.raise_for_failure()
        found[f"{label} RunFailedError"] = str(raised.value)
    return found


# --------------------------------------------------------------------------- the defects, reproduced

LEAKS = {
    "query string of base_url": ({"base_url": f"https://llm.example/v1?api-key={QUERY_TOKEN}"}, QUERY_TOKEN),
    "userinfo of base_url": ({"base_url": f"https://svc:{USERINFO_PASSWORD}@llm.example/v1"}, USERINFO_PASSWORD),
    "auth_header": ({"auth_header": f"Basic {AUTH_HEADER}"}, AUTH_HEADER),
    "passphrase": ({"passphrase": PASSPHRASE}, PASSPHRASE),
    "session_cookie_value": ({"session_cookie_value": SESSION_COOKIE}, SESSION_COOKIE),
    "default_headers": ({"default_headers": {"Authorization": f"Bearer {BEARER}"}}, BEARER),
    "role context": ({"account_ref": CONTEXT_SECRET}, CONTEXT_SECRET),
}


@pytest.mark.parametrize("as_object", [False, True], ids=["signature and config", "agent object"])
@pytest.mark.parametrize("config, secret", LEAKS.values(), ids=list(LEAKS))
def test_a_config_secret_reaches_no_ir_export_or_repr(config: dict[str, Any], secret: str, as_object: bool) -> None:
    # Before: only key names on a deny-list were dropped, so these values reached the IR and every export.
    flow = Flow("leak")
    flow.input("question", str)
    settings = {"model": "gpt-4o-mini", **config}
    if as_object:
        flow.add_agent("qa", BaseAgent(config=settings, signature="question -> answer"))
    else:
        flow.add_agent("qa", "question -> answer", config=settings)
    flow.output("answer", "qa.answer")
    for artifact, text in _compiled_and_exported(flow).items():
        assert secret not in text, artifact
    assert flow.compile().node("qa").config["agent"]["model"] == "gpt-4o-mini"


def test_a_signature_agent_uses_the_api_key_and_base_url_of_its_config(server: OpenAITestServer) -> None:
    # Before: api_key was dropped on the way into the IR, and the agent was built from the IR: the
    # server answered 401, or the environment's key (another account) was used.
    flow = Flow("keyed")
    flow.input("question", str)
    flow.add_agent(
        "qa", "question -> answer", config={"provider": "openai", "base_url": server.base_url, "api_key": API_KEY}
    )
    flow.output("answer", "qa.answer")
    result = flow.run(question="is the key used?")
    assert result.success, result.error
    assert server.request_count == 1
    assert flow.run_kailash(question="and on Kailash?").success


def test_the_config_key_is_used_with_no_key_in_the_environment(
    server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    flow = Flow("keyed")
    flow.input("question", str)
    flow.add_agent("qa", "question -> answer", config={"base_url": server.base_url, "api_key": API_KEY})
    assert flow.run(question="q").success


def test_a_graph_loaded_from_json_takes_its_key_from_the_environment(
    server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = Flow("keyed")
    flow.input("question", str)
    flow.add_agent(
        "qa", "question -> answer", config={"provider": "openai", "base_url": server.base_url, "api_key": API_KEY}
    )
    graph = Graph.from_json(flow.compile().to_json())
    assert graph.node("qa").config["agent"]["base_url"] == server.base_url

    def run() -> RunResult:
        return asyncio.run(Scheduler(build_plan(graph)).run({"question": "q"}))

    refused = run()  # the environment's key belongs to another account
    assert not refused.success and "HTTP 401" in (refused.error or "")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    assert run().success


def test_a_refused_call_does_not_quote_the_credentials_of_its_base_url(server: OpenAITestServer) -> None:
    # httpx sends a base URL's userinfo as Basic auth, so the server refuses: the error names the server
    # (dagwright.llm.client strips the URL), never the password or the query token.
    url = server.base_url.replace("http://", f"http://svc:{USERINFO_PASSWORD}@") + f"?api-key={QUERY_TOKEN}"
    flow = Flow("refused")
    flow.input("question", str)
    flow.add_agent("qa", "question -> answer", config={"base_url": url, "api_key": API_KEY, "max_retries": 0})
    result = flow.run(question="q")
    assert not result.success and server.address[0] in (result.error or "")
    texts = {**_run_artifacts("run", result), **_compiled_and_exported(flow), "drawing": flow.to_dot(run=result)}
    assert {artifact: kinds for artifact, text in texts.items() if (kinds := leaked(text))} == {}


# --------------------------------------------------------------------------- the rule


def test_safe_settings_keep_known_settings_and_plain_role_context() -> None:
    config = {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 300,
        "timeout": 30.0,
        "structured_output": "json_object",
        "system_prompt": "Cite https://u:pw@docs.example/a?sig=x as the source.",
        "base_url": "http://u:pw@[::1]:8080/v1?api-version=2024#frag",
        "api_key": "sk-x",
        "tone": "terse",
        "stop": ["END", "STOP"],
        "max_sources": 5,
        "strict": True,
        "nested": {"a": 1},
        "objects": [object()],
        "mixed": [["a"]],
        "nothing": None,
        "handle": object(),
    }
    assert safe_settings(config) == {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 300,
        "timeout": 30.0,
        "structured_output": "json_object",
        "system_prompt": "Cite https://docs.example/a as the source.",
        "base_url": "http://[::1]:8080/v1",
        "tone": "terse",
        "stop": ["END", "STOP"],
        "max_sources": 5,
        "strict": True,
        "nothing": None,
    }


@pytest.mark.parametrize(
    "name",
    ["api_key", "apiKey", "X-Api-Key", "passphrase", "auth_header", "session_cookie_value", "sessionId", "db_pwd",
     "client_secret", "refresh_token", "private_key_pem", "tls_cert", "default_headers", "pin", "user_PIN", ""],
)  # fmt: skip
def test_secret_like_names(name: str) -> None:
    assert is_secret_like(name)
    assert safe_settings({name: "plain"}) == {}


@pytest.mark.parametrize("name", ["tone", "source", "region", "max_sources", "language", "mapping", "shipping"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_like(name)


@pytest.mark.parametrize(
    "value",
    [
        CONTEXT_SECRET,
        "sk-proj-abcdefgh12345678",
        "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
        "see AKIAIOSFODNN7EXAMPLE for access",
        "Bearer abc.def.ghi",
        "basic dXNlcjpwYXNz",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
        "-----BEGIN PRIVATE KEY-----\nMIIE",
        "4111111111111111",
    ],
)
def test_values_shaped_like_credentials_are_left_out(value: str) -> None:
    assert looks_like_credential(value)
    assert safe_settings({"note": value, "notes": [value]}) == {}


@pytest.mark.parametrize(
    "value", ["friendly", "gpt-4o-mini-2024-07-18", "eu-west-1", "2024-07-18", "A basic summary, please.", ""]
)
def test_plain_values_are_kept(value: str) -> None:
    assert not looks_like_credential(value)
    assert safe_settings({"note": value}) == {"note": value}


@pytest.mark.parametrize(
    ("url", "stripped"),
    [
        ("https://alice:hunter2@llm.example/v1", "https://llm.example/v1"),
        ("https://llm.example/v1?api-key=k&x=1", "https://llm.example/v1"),
        ("https://llm.example:8443/v1#access_token=t", "https://llm.example:8443/v1"),
        ("https://a:b@c@llm.example/v1", "https://llm.example/v1"),
        ("http://u:p@host:notaport/x?y", "http://host:notaport/x"),
        ("HTTP://llm.example", "HTTP://llm.example"),
        ("not a url", "not a url"),
    ],
)
def test_urls_lose_userinfo_query_and_fragment(url: str, stripped: str) -> None:
    assert strip_url(url) == stripped
    assert scrub_urls(f"see ({url}) now") == f"see ({stripped}) now"


def test_safe_keys_vouch_for_more_but_never_for_api_key() -> None:
    config = {
        "api_key": "sk-x",
        "author": "Ada",
        "headers_doc": {"X-Trace": "on", "see": "https://u:p@h.example/?t=1"},
        "handle": object(),
    }
    assert safe_settings(config) == {}  # "author" holds "auth", "headers_doc" "header"
    assert safe_settings(config, ["author", "headers_doc", "handle"]) == {
        "author": "Ada",
        "headers_doc": {"X-Trace": "on", "see": "https://h.example/"},
        "handle": {"$object": "builtins.object"},
    }
    flow = Flow("vouched")
    flow.add_agent("qa", "question -> answer", config=config, safe_keys=["author"])
    assert flow.to_graph().node("qa").config["agent"] == {"author": "Ada"}
    with pytest.raises(ValueError, match="safe_keys cannot vouch for 'api_key'"):
        flow.add_agent("qb", "question -> answer", config=config, safe_keys=["api_key"])
    with pytest.raises(TypeError, match="not the string 'author'"):
        flow.add_agent("qc", "question -> answer", config=config, safe_keys="author")


def test_the_binding_holds_the_full_config_and_shows_none_of_its_secrets() -> None:
    config = {"model": "m", "api_key": API_KEY, "base_url": f"https://svc:{USERINFO_PASSWORD}@h.example/v1"}
    flow = Flow("bound")
    flow.add_agent("qa", "question -> answer", config=config)
    binding = flow.binding("qa")
    assert isinstance(binding, AgentBinding)
    assert binding.config == config
    assert repr(binding) == (
        "AgentBinding('question: str -> answer: str', config={'model': 'm', 'api_key': "
        f"'{REDACTED}', 'base_url': 'https://h.example/v1'}})"
    )
    config["model"] = "changed"  # the caller's dict is copied: the binding stays what was added
    assert binding.config["model"] == "m"


@pytest.mark.parametrize(
    "name", ["passphrase", "auth_header", "session_cookie_value", "default_headers", "api_key", "X-Api-Key", "db_pwd"]
)
def test_secret_words_keep_a_key_out_of_the_prompt(name: str) -> None:
    assert has_secret_word(name)
    assert prompt_context({name: "plain", "tone": "terse"}) == ({"tone": "terse"}, [name])


@pytest.mark.parametrize("name", ["keywords", "passage", "author", "tone", "monkey_business", "tokenizer_notes"])
def test_ordinary_words_reach_the_prompt(name: str) -> None:
    # The IR's rule (fragments) hides some of these; a prompt's rule (whole words) does not.
    assert not has_secret_word(name)
    assert prompt_context({name: "plain"}) == ({name: "plain"}, [])


def test_prompt_context_values() -> None:
    shown, left_out = prompt_context(
        {
            "source": "see https://u:pw@kb.example/a?sig=x",
            "account_ref": CONTEXT_SECRET,
            "limits": {"max": 3, "unit": "pages"},
            "extra_headers_doc": {"X-Api-Key": "k"},
            "steps": ["plan", "write"],
            "leaky": ["fine", f"Bearer {BEARER}"],
        }
    )
    assert shown == {
        "source": "see https://kb.example/a",
        "limits": {"max": 3, "unit": "pages"},
        "steps": ["plan", "write"],
    }
    assert left_out == ["account_ref", "extra_headers_doc", "leaky"]


def test_a_left_out_context_key_is_said_once(server: OpenAITestServer, caplog: pytest.LogCaptureFixture) -> None:
    agent = BaseAgent(
        config={"base_url": server.base_url, "api_key": API_KEY, "passphrase": PASSPHRASE, "tone": "terse"},
        signature="question -> answer",
        name="context_probe",
    )
    with caplog.at_level("WARNING", logger="dagwright.llm.prompt"):
        agent.run(question="q")
        agent.run(question="q again")
    said = [r.getMessage() for r in caplog.records if "not sent to the model" in r.getMessage()]
    assert said == [
        "context_probe: config key(s) 'passphrase' look like secrets and are not sent to the model as role context"
    ]
    system = server.requests[0]["messages"][0]["content"]
    assert "Context: tone=terse" in system and MARK not in json.dumps(server.requests)


# --------------------------------------------------------------------------- the secret study


def _publish(verdict: str, service_token: str) -> str:
    # Uses the secret input without returning it, as a real publishing step would.
    if service_token != INPUT_SECRET:
        raise PermissionError("wrong service token")
    return f"published a verdict of {len(verdict)} characters"


def study_flow(base_url: str) -> Flow:
    """Two agents and a function, with nine of the ten secrets planted (the tenth is the environment)."""
    flow = Flow("secret-study")
    flow.input("question", str, to="research.question")
    flow.input("service_token", str, to="publish.service_token")
    flow.add_agent(
        "research",
        "question: str -> findings: str",
        config={
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": base_url,
            "api_key": API_KEY,
            "max_retries": 0,
            "temperature": 0.2,
            "default_headers": {"Authorization": f"Bearer {BEARER}"},
            "knowledge_base": f"https://svc:{USERINFO_PASSWORD}@kb.example/search",
            "callback_url": f"https://hooks.example/done?api-key={QUERY_TOKEN}",
            "tone": "terse",
        },
    )
    flow.add_agent(
        "review",
        "findings: str -> verdict: str",
        config={
            "provider": "openai",
            "base_url": base_url,
            "api_key": API_KEY,
            "max_retries": 0,
            "auth_header": f"Basic {AUTH_HEADER}",
            "passphrase": PASSPHRASE,
            "session_cookie_value": SESSION_COOKIE,
            "account_ref": CONTEXT_SECRET,
        },
    )
    flow.add_function("publish", _publish)
    flow.connect("research.findings", "review.findings")
    flow.connect("review.verdict", "publish.verdict")
    flow.output("verdict", "review.verdict")
    flow.output("published", "publish.output")
    return flow


def _audited_run(tmp_path: Path, base_url: str) -> str:
    """The audit log (policy "full") of an agent object with the review step's planted config."""
    audited = BaseAgent(
        config={
            "provider": "openai",
            "base_url": base_url.replace("http://", f"http://svc:{USERINFO_PASSWORD}@") + f"?api-key={QUERY_TOKEN}",
            "api_key": API_KEY,
            "max_retries": 0,
            "passphrase": PASSPHRASE,
            "account_ref": CONTEXT_SECRET,
        },
        signature="findings: str -> verdict: str",
        name="audited",
    )
    log = tmp_path / "audit.jsonl"
    audited.enable_audit_logging(str(log), policy="full")
    failed = audited.execute(findings=f"quoting {API_KEY} by mistake")  # refused: the URL's userinfo is Basic auth
    assert not failed.success
    audited.config.base_url = base_url
    assert audited.execute(findings="DAGs help").success
    return log.read_text(encoding="utf-8")


def _cli_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """``dagwright export`` of the study flow, in every format, from a file the CLI loads."""
    module = tmp_path / "secret_study_cli.py"
    module.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_secrets import study_flow\n"
        "flow = study_flow('http://127.0.0.1:9/v1')\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    exports = {}
    for fmt in ("json", "kailash-yaml", "kailash-py"):
        assert cli(["export", f"{module.name}:flow", "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert out.strip(), err
        exports[f"dagwright export --format {fmt}"] = out + err
    return exports


def test_the_secret_study(
    server: OpenAITestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = study_flow(server.base_url)
    monitor = flow.monitor()
    # The server accepts only the planted api_key (the environment holds another): success means it was used.
    checkpoint = tmp_path / "runs.db"
    result = flow.run(question="Are DAGs useful?", service_token=INPUT_SECRET, checkpoint=str(checkpoint))
    assert result.success, result.error
    assert result["published"].startswith("published a verdict")
    on_kailash = flow.run_kailash(question="Are DAGs useful?", service_token=INPUT_SECRET)
    assert on_kailash.success, on_kailash.error
    assert server.request_count == 4
    server.enqueue(Fault(status=401))
    refused = flow.run(question="Refused?", service_token=INPUT_SECRET)
    assert not refused.success and "HTTP 401" in (refused.error or "")

    artifacts = _compiled_and_exported(flow)
    artifacts.update(_cli_exports(tmp_path, monkeypatch, capsys))
    artifacts.update(
        {
            "flow.to_dot()": flow.to_dot(diagnostics=True, run=refused),
            "flow.to_mermaid()": flow.to_mermaid(diagnostics=True, run=refused),
            "repr(lowering)": repr(flow._kailash_lowering()),
            "bindings": " ".join(repr(flow.binding(n)) for n in ("research", "review")),
            "flow.monitor().metrics()": json.dumps(monitor.metrics(), default=str),
        }
    )
    artifacts["prompts the model received"] = json.dumps(server.requests)
    artifacts["checkpoint database"] = b"".join(
        f.read_bytes() for f in (checkpoint, Path(f"{checkpoint}-wal")) if f.exists()
    ).decode("latin-1")
    artifacts["audit log"] = _audited_run(tmp_path, server.base_url)
    artifacts.update(_run_artifacts("run", result))
    artifacts.update(_run_artifacts("Kailash run", on_kailash))
    artifacts.update(_run_artifacts("refused run", refused))
    leaks = {artifact: kinds for artifact, text in artifacts.items() if (kinds := leaked(text))}
    assert not leaks
    # What is safe still shows: the exports are useful without the secrets.
    agent = flow.compile().node("research").config["agent"]
    assert agent == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": server.base_url,
        "max_retries": 0,
        "temperature": 0.2,
        "knowledge_base": "https://kb.example/search",
        "callback_url": "https://hooks.example/done",
        "tone": "terse",
    }
