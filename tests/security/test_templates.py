"""Prompt templates are untrusted code: each defect found in them, reproduced and held fixed.

Each is shown twice: through a real agent on the offline model, and directly through ``user_message``.
Before the fixes, ``{{ 'a' * 2000000000 }}`` raised a bare ``MemoryError``, nested ``range(99999)`` loops
ran for hours, ``{% include %}`` raised a bare ``TypeError`` and a template could change the inputs the
rest of the run saw (the audit log recorded ``["x", "EVIL"]``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dagwright import BaseAgent
from dagwright.compiler.signature import parse_signature
from dagwright.llm import prompt
from dagwright.llm.prompt import DEFAULT_TEMPLATE, MAX_TEMPLATE_OUTPUT, PromptError, user_message

SPEC = parse_signature("question: str -> answer: str")
RENDER_FAILED = "qa: the prompt template failed to render: "


def agent(template: str, signature: str = "question -> answer") -> BaseAgent:
    return BaseAgent(signature=signature, config={"provider": "offline", "prompt_template": template}, name="qa")


def render(template: str, **inputs: Any) -> str:
    return user_message(SPEC, inputs or {"question": "q"}, template, "qa")


def audited(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- 1. size: refused before it is made


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'a' * 2000000000 }}",
        "{{ 2000000000 * 'a' }}",
        "{{ ['a'] * 2000000000 }}",
        "{{ 'a' * 999999 + 'b' * 999999 }}",
        "{{ '%2000000000s' % 'a' }}",
        "{{ '%*s' % (2000000000, 'a') }}",
        "{{ '%2000000000s' | format('a') }}",
        "{{ '{:>2000000000}'.format('a') }}",
        "{{ '{:>{}}'.format('a', 2000000000) }}",
        "{{ 'a' | center(2000000000) }}",
        "{{ 'a'.ljust(2000000000) }}",
        "{{ ('a' * 999999).replace('a', 'bbbbbbbb') }}",
        "{{ ('\n' * 999999) | indent(999) }}",
        "{{ (['x' * 999999] * 3) | join }}",
        "{{ ','.join(['x' * 999999] * 3) }}",
        "{{ [1] | batch(2000000000, 'x') | list }}",
        "{% set ns = namespace(s='x' * 999999) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set s %}{% for i in range(100000) %}{{ 'x' * 999 }}{% endfor %}{% endset %}{{ s | length }}",
        "{% for i in range(100000) %}" + "x" * 100 + "{% endfor %}",
    ],
)
def test_what_a_template_makes_is_bounded(template: str) -> None:
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}.*MAX_TEMPLATE_OUTPUT"):
        render(template)


def test_the_size_bound_through_an_agent() -> None:
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}a repetition \('\*'\) would have length 2000000000"):
        agent("{{ 'a' * 2000000000 }}").run(question="q")


def test_the_bound_is_the_documented_constant() -> None:
    assert len(render(f"{{{{ 'a' * {MAX_TEMPLATE_OUTPUT} }}}}")) == MAX_TEMPLATE_OUTPUT
    with pytest.raises(PromptError, match="MAX_TEMPLATE_OUTPUT"):
        render(f"{{{{ 'a' * {MAX_TEMPLATE_OUTPUT + 1} }}}}")
    with pytest.raises(PromptError, match=rf"^qa: the prompt template is {MAX_TEMPLATE_OUTPUT + 1} characters long"):
        render("x" * (MAX_TEMPLATE_OUTPUT + 1))


def test_the_output_bound_is_read_when_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompt, "MAX_TEMPLATE_OUTPUT", 100)
    assert render("{% for i in range(30) %}abc{% endfor %}") == "abc" * 30
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}the rendered message would have length 102"):
        render("{% for i in range(40) %}abc{% endfor %}")


@pytest.mark.parametrize("template", ["{{ 9 ** 999999999 }}", "{{ (2 ** 60000) * (2 ** 60000) }}"])
def test_huge_numbers_are_refused(template: str) -> None:
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}a (power|product) of more than 65536 bits"):
        render(template)


# --------------------------------------------------------------------------- 2. work: ranges, steps, time


NESTED = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"


@pytest.mark.parametrize(
    "template",
    [
        NESTED,
        "{% for i in range(99999) %}{% for j in range(99999) if false %}{% endfor %}{% endfor %}",
        "{% set l = range(99999) | list %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% for i in range(99999) %}{% endfor %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    ],
)
def test_nested_loops_stop_at_the_step_budget(template: str) -> None:
    started = time.monotonic()
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}it takes more than 1000000 steps"):
        render(template)
    assert time.monotonic() - started < 20  # unbounded, this ran for hours


def test_the_step_budget_through_an_agent() -> None:
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}.*MAX_TEMPLATE_STEPS"):
        agent(NESTED).run(question="q")


@pytest.mark.parametrize("template", ["{{ range(100001) }}", "{{ range(10 ** 30) }}"])
def test_ranges_are_bounded(template: str) -> None:
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}range\(\) of more than 100000 items"):
        render(template)


def test_the_budget_counts_loops_and_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompt, "MAX_TEMPLATE_STEPS", 1000)
    assert render("{% for i in range(100) %}{{ i }}{% endfor %}").startswith("0123")
    with pytest.raises(PromptError, match="it takes more than 1000 steps"):
        render("{% for i in range(2000) %}{% endfor %}")
    with pytest.raises(PromptError, match="it takes more than 1000 steps"):
        render("{% for i in range(400) %}{{ 'a'.upper() }}{{ 'b'|upper }}{% endfor %}")


def test_the_wall_clock_is_a_second_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompt, "MAX_TEMPLATE_SECONDS", 0.0)
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}it runs longer than 0.0 seconds"):
        render("{% for i in range(10) %}{% endfor %}")


# --------------------------------------------------------------------------- 3. no loading of other templates


@pytest.mark.parametrize(
    ("template", "tag"),
    [
        ("{% import 'other.txt' as other %}", "import"),
        ("{% from 'other.txt' import f %}", "import"),
        ("{% include 'other.txt' %}", "include"),
        ("{% extends 'base.txt' %}", "extends"),
        ("text\n{% if question %}{% include question %}{% endif %}", "include"),
    ],
)
def test_templates_cannot_load_templates(template: str, tag: str) -> None:
    message = rf"^qa: a prompt template cannot load other templates \({{% {tag} %}} on line \d\)"
    with pytest.raises(PromptError, match=message):
        render(template)
    with pytest.raises(PromptError, match=message):
        agent(template).run(question="q")


# --------------------------------------------------------------------------- 4. the inputs stay as they were


def test_a_template_cannot_change_the_inputs_the_run_sees(tmp_path: Path) -> None:
    for template, denied in [
        ("{{ items.append('EVIL') }}{{ items }}", "append"),
        ("{{ inputs.update({'items': ['EVIL']}) }}{{ inputs['items'] }}", "update"),
        ("{{ fields[0].value.clear() }}", "clear"),
    ]:
        path = tmp_path / f"{denied}.jsonl"
        qa = agent(template, "items: list[str] -> answer")
        qa.enable_audit_logging(path, policy="full")
        items = ["x"]
        with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}access to attribute '{denied}' .* is unsafe"):
            qa.run(items=items)
        [entry] = audited(path)
        assert entry["inputs"] == {"items": ["x"]} and entry["success"] is False
        assert items == ["x"]


class Box:
    """An input whose own method changes it: the sandbox allows the call, so only a copy protects it."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, item: str) -> str:
        self.items.append(item)
        return ""

    def __str__(self) -> str:
        return f"Box{self.items}"


def test_a_template_gets_a_copy_of_the_inputs(tmp_path: Path) -> None:
    box = Box()
    inputs = {"question": "q", "box": box}
    spec = parse_signature("question: str, box: Any -> answer: str")
    assert user_message(spec, inputs, "{{ box.add('EVIL') }}{{ box }}", "qa") == "Box['EVIL']"
    assert user_message(spec, inputs, "{{ box }}", "qa") == "Box[]"
    assert box.items == [] and inputs == {"question": "q", "box": box}

    qa = agent("{{ box.add('EVIL') }}{{ box }}", "box: Any -> answer")
    qa.enable_audit_logging(tmp_path / "audit.jsonl", policy="full")
    out = qa.run(box=box)
    assert "Box['EVIL']" in out["answer"]  # what the template rendered from its own copy...
    [entry] = audited(tmp_path / "audit.jsonl")
    assert entry["inputs"] == {"box": "Box[]"} and entry["success"] is True  # ...and what the run recorded
    assert box.items == []


def test_inputs_named_like_the_template_variables() -> None:
    spec = parse_signature("fields: str, inputs: str -> answer: str")
    values = {"fields": "f", "inputs": "i"}
    # This raised a bare TypeError (two values for the keyword `fields`).
    text = user_message(spec, values, "{{ fields[0].name }}={{ inputs.fields }} {{ inputs['inputs'] }}", "qa")
    assert text == "fields=f i"


# --------------------------------------------------------------------------- 5. every failure is a PromptError


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ 1 + 'a' }}", "TypeError: unsupported operand"),
        ("{{ nothing }}", "'nothing' is undefined"),
        ("{{ question.missing() }}", "has no attribute 'missing'"),
        ("{{ (10 ** 4000) * (10 ** 4000) }}", "ValueError: Exceeds the limit"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "RecursionError"),
        ("{% for x in [1] recursive %}{{ loop([1, 2]) }}{% endfor %}", "RecursionError"),
        ("{{ '{0.__class__}'.format(question) }}", "is unsafe"),
    ],
)
def test_render_failures_are_prompt_errors_naming_the_agent(template: str, reason: str) -> None:
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}.*{reason}"):
        render(template)
    with pytest.raises(PromptError, match=rf"^{RENDER_FAILED}.*{reason}"):
        agent(template).run(question="q")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 9" + "9" * 5000 + " }}", "ValueError: Exceeds the limit"),
        ("{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}", "RecursionError"),
        ("{% for %}", "Expected an expression"),
    ],
)
def test_parse_failures_are_prompt_errors_naming_the_agent(template: str, reason: str) -> None:
    with pytest.raises(PromptError, match=rf"^qa: the prompt template does not parse: .*{reason}"):
        render(template)


# --------------------------------------------------------------------------- what still works


def test_ordinary_templates_render_as_before() -> None:
    spec = parse_signature("question: str, tags: list[str] -> answer: str")
    values = {"question": "What is ML?", "tags": ["ai", "ml"]}
    template = (
        "{% set ns = namespace(n=0) %}{% for t in tags %}{% set ns.n = ns.n + 1 %}{% endfor %}"
        "{{ question | upper }} [{{ tags | join(', ') }}] {{ ns.n }} {{ '%-4s|' % 'ab' }} {{ '{:>3}'.format(7) }}"
        " {{ 'x' * 3 }} {{ tags[0] ~ '!' }} {{ 'ab' | center(6) }}|{{ range(3) | list }}"
    )
    assert user_message(spec, values, template, "qa") == "WHAT IS ML? [ai, ml] 2 ab  |   7 xxx ai!   ab  |[0, 1, 2]"
    assert user_message(spec, values, DEFAULT_TEMPLATE, "qa") == user_message(spec, values, None, "qa")


def test_the_default_message_does_not_go_through_jinja2(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_jinja(source: str) -> Any:
        raise AssertionError("the default message went through jinja2")

    monkeypatch.setattr(prompt, "_template", no_jinja)
    assert user_message(SPEC, {"question": "q"}, None, "qa") == "question:\nq"
