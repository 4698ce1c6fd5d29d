"""Untrusted input: IR documents, signature and type text, prompt templates.

Loaders and parsers raise only their documented errors on any input (fuzzed with
hypothesis; tests/test_ir.py and tests/test_signature.py fuzz structured variations,
these fuzz raw text, raw bytes and raw JSON); loading IR never imports the code it
names; templates render in jinja2's sandbox.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwright import Graph, IRFormatError, SignatureError, parse_signature
from dagwright.compiler.types import TypeSyntaxError, parse_type
from dagwright.llm.prompt import PromptError, user_message

json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
ir_words = st.sampled_from(
    ["schema_version", "nodes", "edges", "id", "kind", "inputs", "outputs", "name", "type", "config", "source"]
)
ir_like = st.fixed_dictionaries(
    {"schema_version": st.sampled_from([1, 2, "1", None]), "name": json_data},
    optional={
        "nodes": st.lists(st.dictionaries(ir_words, json_data, max_size=6), max_size=3) | json_data,
        "edges": st.lists(st.dictionaries(ir_words, json_data, max_size=5), max_size=3) | json_data,
    },
)


@settings(max_examples=300)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_load_or_raise_ir_format_error(raw: bytes) -> None:
    try:
        Graph.from_json(raw)
    except IRFormatError as err:
        assert str(err)


@settings(max_examples=300)
@given(json_data | ir_like)
def test_any_json_loads_or_raises_ir_format_error(doc: Any) -> None:
    try:
        graph = Graph.from_json(json.dumps(doc))
    except IRFormatError as err:
        assert str(err)
    else:
        assert Graph.from_json(graph.to_json()) == graph


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_format_error(depth: int) -> None:
    with pytest.raises(IRFormatError, match="nested too deeply"):
        Graph.from_json("[" * depth + "]" * depth)
    doc = {"schema_version": 1, "name": "g", "nodes": [], "edges": [], "x": json.loads("[" * 900 + "]" * 900)}
    try:
        Graph.from_json(json.dumps(doc))
    except IRFormatError as err:
        assert str(err)


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_any_unicode_signature_parses_or_raises_signature_error(text: str) -> None:
    try:
        parse_signature(text)
    except SignatureError as err:
        assert err.message


@settings(max_examples=300)
@given(
    st.text(max_size=80)
    | st.lists(st.sampled_from(["list[", "dict[", "]", ",", "|", "str", "Literal[", "'a'", "("]), max_size=30).map(
        "".join
    )
)
def test_any_type_text_parses_or_raises_type_syntax_error(text: str) -> None:
    try:
        parse_type(text)
    except TypeSyntaxError as err:
        assert str(err)


def test_deeply_nested_signature_and_type_text() -> None:
    deep = "list[" * 2000 + "str" + "]" * 2000
    with pytest.raises(TypeSyntaxError):
        parse_type(deep)
    with pytest.raises(SignatureError):
        parse_signature(f"q: {deep} -> a")


def test_loading_ir_never_imports_the_functions_it_names() -> None:
    # A fresh interpreter, so that "already imported" cannot hide an import done by the loader.
    script = textwrap.dedent(
        """
        import json, sys
        from dagwright import Graph, FunctionRegistry
        from dagwright.backends.builtin.runner import build_plan
        doc = {"schema_version": 1, "name": "g", "nodes": [
            {"id": "n", "kind": "function", "inputs": [], "outputs": [{"name": "output", "type": "int"}],
             "config": {"function": "antigravity:fly"}}], "edges": []}
        graph = Graph.from_json(json.dumps(doc))
        assert "antigravity" not in sys.modules
        for registry in (None, FunctionRegistry(), FunctionRegistry(allow=["json"])):
            try:
                build_plan(graph, registry=registry)
            except Exception as exc:
                print(type(exc).__name__, exc)
        assert "antigravity" not in sys.modules
        print("not imported")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "not imported"
    assert len(lines) == 4
    assert lines[0].startswith("ValueError function node(s) 'n' have no function bound")
    assert all(
        line.startswith("UnresolvedReferenceError node 'n': unknown function 'antigravity:fly'") for line in lines[1:3]
    )


# --------------------------------------------------------------------------- prompt templates

SPEC = parse_signature("question: str -> answer: str")


@pytest.mark.parametrize(
    "template",
    [
        "{{ question.__class__ }}",
        "{{ question.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__['__builtins__'] }}",
        "{{ inputs.__class__.__base__ }}",
        "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
        "{{ question.format.__globals__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__()[0].__init__.__globals__ }}",
    ],
)
def test_templates_cannot_reach_python_internals(template: str) -> None:
    with pytest.raises(PromptError, match="qa: the prompt template failed to render"):
        user_message(SPEC, {"question": "q"}, template, "qa")


def test_input_values_are_data_not_templates() -> None:
    text = user_message(SPEC, {"question": "{{ lipsum.__globals__ }} {% raw %}"}, "Q: {{ question }}", "qa")
    assert text == "Q: {{ lipsum.__globals__ }} {% raw %}"
