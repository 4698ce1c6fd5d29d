"""Exporting an IR file as a Kailash script: nothing the file holds may become code of the script.

IR JSON is untrusted input. The defect: a function reference whose module was
``"os import path\\nimport os; os.system('...')\\nfrom os"`` passed ``dagwright check``, and
``dagwright export --format kailash-py`` wrote it among the script's imports as a line of its own,
which ran with the script; a flow name holding three double quotes ended the script's docstring.

Now the loader refuses a reference that is not ``module:qualname`` of Python names (the registry and
the exporter refuse it too, for graphs built in code), and the script generator writes every value
as a Python literal or as escaped text, and checks each name it writes as code. The defects are
reproduced on ``python -m dagwright``; a property test exports random graphs that load and reads
each script's statements back.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import identifiers, json_objects, wired_graphs

from dagwright import Flow
from dagwright.backends.kailash import export
from dagwright.backends.kailash.export import to_kailash_script
from dagwright.compiler.diagnostics import has_errors
from dagwright.compiler.ir import Edge, Graph, IRFormatError, Node, Port, freeze_json
from dagwright.compiler.passes import validate
from dagwright.compiler.registry import FunctionRegistry, UnresolvedReferenceError
from dagwright.compiler.types import ANY, list_of
from dagwright.nodes import EXECUTORS

Result = subprocess.CompletedProcess[str]

# The module of the reported file's function reference: three lines of a script once written among its imports.
ATTACK = "os import path\nimport os; os.system('touch {marker}')\nfrom os"

# A name that ended the script's docstring, then ran a line of its own.
NASTY = 'evil"""\nimport os; os.system("touch {marker}")\n"""\'\'\' \\ \r\t\x00 # {{{{ x }}}} \u2028 é'

FUNCTIONS = """
def shout(text: str) -> str:
    return text.upper()


# Named like what the exported script defines or calls itself: each must be imported under another name.
def main(text: str) -> str:
    return "main:" + text


def print(text: str) -> str:
    return "print:" + text


def json(text: str) -> str:
    return "json:" + text


def parameters(text: str) -> str:
    return "parameters:" + text


def WorkflowBuilder(text: str) -> str:
    return "WorkflowBuilder:" + text
"""


def _cli(*args: str, cwd: Path) -> Result:
    env = {**os.environ, "HOME": str(cwd)}  # a default LocalRuntime writes ~/.kailash/tracking
    return subprocess.run(
        [sys.executable, "-m", "dagwright", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


def _run_script(script: Path, inputs: dict[str, Any], cwd: Path) -> Result:
    env = {**os.environ, "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, str(script), json.dumps(inputs)], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


def _ir(name: str, *refs: str, description: str | None = None, input_name: str = "text") -> dict[str, Any]:
    """An IR document: one flow input feeding a function node per reference, each node's output a flow output."""
    nodes: list[dict[str, Any]] = [
        {
            "id": "input:text",
            "kind": "input",
            "outputs": [{"name": "text", "type": "str"}],
            "config": {"name": input_name},
        }
    ]
    edges: list[dict[str, Any]] = []
    for i, ref in enumerate(refs):
        node_id = "shout" if i == 0 else f"f{i}"
        nodes.append(
            {
                "id": node_id,
                "kind": "function",
                "inputs": [{"name": "text", "type": "str"}],
                "outputs": [{"name": "output", "type": "str"}],
                "config": {"function": ref},
            }
        )
        nodes.append(
            {
                "id": f"output:o{i}",
                "kind": "output",
                "inputs": [{"name": "out", "type": "str"}],
                "config": {"name": ref},
            }
        )
        edges.append({"source": "input:text", "source_port": "text", "target": node_id, "target_port": "text"})
        edges.append({"source": node_id, "source_port": "output", "target": f"output:o{i}", "target_port": "out"})
    doc: dict[str, Any] = {"schema_version": 1, "name": name, "nodes": nodes, "edges": edges}
    if description is not None:
        doc["metadata"] = {"description": description}
    return doc


def _with_reference(graph: Graph, ref: object) -> Graph:
    """``graph`` with node ``shout`` naming ``ref``, built in code: what the loader never sees."""
    nodes = tuple(
        Node(n.id, n.kind, n.inputs, n.outputs, freeze_json({"function": ref})) if n.id == "shout" else n
        for n in graph.nodes
    )
    return Graph(graph.name, nodes, graph.edges, graph.metadata)


# --------------------------------------------------------------------------- references that smuggle code


def test_check_and_export_refuse_the_reference_that_smuggled_code(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    ref = ATTACK.format(marker=marker) + ":path"
    ir = tmp_path / "evil.json"
    ir.write_text(json.dumps(_ir("evil", ref)), encoding="utf-8")
    error = (
        f"{ir}: nodes[1].config.function (node 'shout'): {ref!r} is not a function reference: "
        "its module (before ':') is not a dotted Python name"
    )

    checked = _cli("check", str(ir), cwd=tmp_path)
    assert checked.returncode == 2, checked.stdout  # it was 0: "evil: ok"
    assert checked.stderr.strip() == f"dagwright check: {error}"

    script = tmp_path / "evil_workflow.py"
    exported = _cli("export", str(ir), "--format", "kailash-py", "-o", str(script), cwd=tmp_path)
    assert exported.returncode == 2
    assert exported.stderr.strip() == f"dagwright export: {error}"
    assert not script.exists()
    assert not marker.exists()


# Each smuggles code into the module or the name of a reference; the message says which part is wrong.
MODULE = "its module (before ':') is not a dotted Python name"
NAME = "its name (after ':') is not a dotted Python name"
ATTACKS = [
    ("os import path\nimport os; os.system('id')\nfrom os:path", MODULE),
    ("os; import shutil:rmtree", MODULE),
    (" os:path", MODULE),
    ("os.:path", MODULE),
    ("class:path", MODULE),
    ("os:path\nimport os; os.system('id')", NAME),
    ("os:path as p; import os", NAME),
    ("os:system('id')", NAME),
    ("os:getcwd()\nimport os", NAME),
    ('os:path"""', NAME),
    ("os:path  # comment", NAME),
    ("os:\\\npath", NAME),
    ("os:class", NAME),
    ("os:f(partial)()", NAME),
    ("os:<lambda>;x", NAME),
    ("import os", "expected 'module:qualname', both dotted Python names"),
]


@pytest.mark.parametrize(("ref", "why"), ATTACKS, ids=[repr(ref) for ref, _ in ATTACKS])
def test_a_reference_that_is_not_python_names_is_refused_everywhere(ref: str, why: str) -> None:
    with pytest.raises(IRFormatError) as info:
        Graph.from_json(json.dumps(_ir("g", ref)))
    assert str(info.value) == f"nodes[1].config.function (node 'shout'): {ref!r} is not a function reference: {why}"

    # A graph built in code skips the loader: the registry and the exporter refuse the reference themselves.
    with pytest.raises(UnresolvedReferenceError, match=r"^node 'shout': function reference .* is not"):
        FunctionRegistry(allow=["os", "shutil", "class", " os", "os."]).resolve(ref, node="shout")
    graph = _with_reference(Graph.from_json(json.dumps(_ir("g", "os:getcwd"))), ref)
    with pytest.raises(ValueError, match="cannot be exported as a script") as refused:
        to_kailash_script(graph)
    assert f"\n  node 'shout': function {ref!r} " in str(refused.value)


def test_a_reference_that_is_not_text_is_refused() -> None:
    doc = _ir("g", "os:getcwd")
    doc["nodes"][1]["config"]["function"] = ["os", "getcwd"]
    with pytest.raises(IRFormatError) as info:
        Graph.from_json(json.dumps(doc))
    assert str(info.value) == ("nodes[1].config.function (node 'shout'): expected a 'module:qualname' string, got list")


# What dagwright itself writes: functions, methods, local functions and lambdas, callable objects,
# partials, a callable without a module, and a name known only to a registry.
WRITTEN = [
    "m:f",
    "pkg.mod:Cls.method",
    "m:outer.<locals>.inner",
    "m:<lambda>",
    "m:outer.<locals>.<lambda>",
    "m:Cls()",
    "m:f(partial)",
    "m:f(partial)(partial)",
    "m:Cls()(partial)",
    "<unknown>:str.upper",
    "math.triple",
    "modulé:fünction",
]


@pytest.mark.parametrize("ref", WRITTEN)
def test_references_dagwright_writes_still_load(ref: str) -> None:
    graph = Graph.from_json(json.dumps(_ir("g", ref)))
    assert graph.node("shout").config["function"] == ref


def test_a_flow_of_lambdas_partials_and_callable_objects_loads_back() -> None:
    class Shouter:
        def __call__(self, text: str) -> str:
            return text.upper()

    def local(text: str, suffix: str) -> str:
        return text + suffix

    flow = Flow("refs")
    flow.add_function("lam", lambda text: text)
    flow.add_function("obj", Shouter())
    flow.add_function("part", functools.partial(functools.partial(local, suffix="!")))
    flow.input("text", str, to=["lam.text", "obj.text", "part.text"])
    graph = flow.compile()
    assert Graph.from_json(graph.to_json()) == graph


# --------------------------------------------------------------------------- names and values in the script


def test_a_flow_name_with_quotes_and_newlines_exports_a_script_that_parses_and_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    name = NASTY.format(marker=marker)
    input_name = 'te"""xt\n\'#'
    (tmp_path / "injection_funcs.py").write_text(textwrap.dedent(FUNCTIONS), encoding="utf-8")
    ir = tmp_path / "nasty.json"
    doc = _ir(name, "injection_funcs:shout", description=name, input_name=input_name)
    ir.write_text(json.dumps(doc), encoding="utf-8")
    assert _cli("check", str(ir), cwd=tmp_path).returncode == 0

    script = tmp_path / "nasty_workflow.py"
    done = _cli("export", str(ir), "--format", "kailash-py", "-o", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    tree = ast.parse(script.read_text(encoding="utf-8"))  # the name ended the docstring: a SyntaxError
    docstring = ast.get_docstring(tree, clean=False)
    assert docstring is not None
    assert docstring.startswith(f"{name}: a dagwright flow as a Kailash workflow.\n")
    assert _constants(tree)["FLOW_NAME"] == name

    ran = _run_script(script, {input_name: "hi"}, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"injection_funcs:shout": "HI"}
    assert not marker.exists()


def test_functions_named_like_the_scripts_own_names_are_imported_under_other_names(tmp_path: Path) -> None:
    (tmp_path / "injection_funcs.py").write_text(textwrap.dedent(FUNCTIONS), encoding="utf-8")
    names = ["main", "print", "json", "parameters", "WorkflowBuilder"]
    refs = [f"injection_funcs:{n}" for n in names]
    script = tmp_path / "named_workflow.py"
    script.write_text(to_kailash_script(Graph.from_json(json.dumps(_ir("named", *refs)))), encoding="utf-8")
    tree = ast.parse(script.read_text(encoding="utf-8"))
    imported = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "injection_funcs"]
    assert [(a.name, a.asname) for a in imported[0].names] == [(n, f"{n}_2") for n in names]

    ran = _run_script(script, {"text": "x"}, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {ref: f"{n}:x" for ref, n in zip(refs, names, strict=True)}


def test_the_template_writes_no_value_that_was_not_escaped() -> None:
    template = export._templates().from_string("x = {{ v }}")
    with pytest.raises(TypeError, match="writes '1\\\\nimport os' as it is"):
        template.render(v="1\nimport os")
    assert export._templates().from_string("x = {{ v | pyrepr }}").render(v="1\nimport os") == "x = '1\\nimport os'"


NASTY_PARTS = ['"', '"""', "'", "'''", "\\", "\n", "\r", "\x00", "\x0c", "\u2028", "\ud800", "#", "{{", "{%", "é"]
nasty_text = st.lists(st.sampled_from(NASTY_PARTS) | st.text(max_size=3), max_size=5).map("".join)
surrogates = st.text(st.characters(categories=["Cs"]), max_size=2)


@given(nasty_text | st.text() | surrogates)
def test_escaped_text_reads_back_in_a_docstring_and_stays_in_a_comment(text: str) -> None:
    escaped = export._text(text)
    assert ast.literal_eval(f'"""{escaped}"""') == text
    assert ast.literal_eval(f'"""{escaped}: a flow"""') == f"{text}: a flow"
    assert ast.parse(f"# {escaped} (function)\n").body == []


# --------------------------------------------------------------------------- any graph that loads


def _unique(ports: tuple[Port, ...]) -> list[Port]:
    seen: dict[str, Port] = {}
    for port in ports:
        seen.setdefault(port.name, port)
    return list(seen.values())


def _checked(graph: Graph) -> Graph:
    """``graph`` made to pass the validation passes: ports unique and of type Any, input nodes with one output,
    edges forward and one per input (any number into a collect input), inputs without an edge optional."""
    nodes = []
    for n in graph.nodes:
        outputs = [Port(p.name, ANY) for p in _unique(n.outputs)] or [Port("out", ANY)]
        if n.kind == "input":
            nodes.append(Node(n.id, n.kind, (), (outputs[0],)))
        else:
            inputs = [Port(p.name, list_of(ANY) if p.collect else ANY, collect=p.collect) for p in _unique(n.inputs)]
            nodes.append(Node(n.id, n.kind, tuple(inputs), tuple(outputs)))
    position = {n.id: i for i, n in enumerate(nodes)}
    outs = {(n.id, p.name) for n in nodes for p in n.outputs}
    ins = {(n.id, p.name): p for n in nodes for p in n.inputs}
    edges: list[Edge] = []
    fed: set[tuple[str, str]] = set()
    for e in graph.edges:
        port = ins.get((e.target, e.target_port))
        if (e.source, e.source_port) not in outs or port is None or position[e.source] >= position[e.target]:
            continue
        if port.collect or (e.target, e.target_port) not in fed:
            fed.add((e.target, e.target_port))
            edges.append(e)
    nodes = [
        Node(
            n.id,
            n.kind,
            tuple(Port(p.name, p.type, (n.id, p.name) in fed, collect=p.collect) for p in n.inputs),
            n.outputs,
        )
        for n in nodes
    ]
    return Graph(graph.name, tuple(nodes), tuple(edges))


# Names the script defines or imports itself, as function names: they must reach the script under other names.
SCRIPT_NAMES = ["main", "print", "json", "sys", "os", "Any", "parameters", "FLOW_NAME", "build_workflow", "__name__"]
module_names = st.lists(identifiers.filter(lambda s: s != "__main__"), min_size=1, max_size=3).map(".".join)
valid_refs = st.builds("{}:{}".format, module_names, identifiers | st.sampled_from(SCRIPT_NAMES))
# (reference, what it is): whether it may load, and whether a script may import it.
importable = st.tuples(valid_refs, st.just("importable"))
references = st.one_of(  # most references a script can import: three draws in seven
    importable,
    importable,
    importable,
    st.tuples(valid_refs.map(lambda ref: ref + "(partial)"), st.just("loads")),
    st.tuples(st.sampled_from(WRITTEN), st.just("loads")),
    st.tuples(st.sampled_from([ref for ref, _ in ATTACKS]), st.just("refused")),
    st.tuples(nasty_text | st.text(max_size=12), st.just("any")),
)


@st.composite
def nasty_documents(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """A checked random graph as an IR document, with untrusted text everywhere a file can hold it: the flow
    name and description, port names and descriptions, flow input and output names, groups, config values
    and function references. Also returns each function node's (reference, what it is)."""
    graph = _checked(draw(wired_graphs()))
    ports = draw(st.lists(nasty_text.filter(bool), min_size=4, max_size=4, unique=True))
    rename = dict(zip(("x", "y", "in", "out"), ports, strict=True))
    doc = graph.to_dict()
    doc["name"] = draw(nasty_text)
    doc["metadata"] = {"description": draw(nasty_text)}
    refs: dict[str, tuple[str, str]] = {}
    for node in doc["nodes"]:
        for port in (*node.get("inputs", ()), *node.get("outputs", ())):
            port["name"] = rename[port["name"]]
            port["description"] = draw(nasty_text)
        node["group"] = draw(st.lists(nasty_text, max_size=2))
        node["config"] = draw(json_objects)
        if node["kind"] == "function":
            refs[node["id"]] = draw(references)
            node["config"]["function"] = refs[node["id"]][0]
    for edge in doc["edges"]:
        edge["source_port"], edge["target_port"] = rename[edge["source_port"]], rename[edge["target_port"]]
    inputs = [n for n in doc["nodes"] if n["kind"] == "input"]
    for node, name in zip(
        inputs, draw(st.lists(nasty_text, min_size=len(inputs), max_size=len(inputs), unique=True)), strict=True
    ):
        node["config"] = {"name": name}
    sources = [(n["id"], p["name"]) for n in doc["nodes"] if n["kind"] != "input" for p in n.get("outputs", ())]
    chosen = draw(st.lists(st.sampled_from(sources), max_size=3, unique=True)) if sources else []
    names = draw(st.lists(nasty_text, min_size=len(chosen), max_size=len(chosen), unique=True))
    for i, ((source, port), name) in enumerate(zip(chosen, names, strict=True)):
        doc["nodes"].append(
            {"id": f"output:o{i}", "kind": "output", "inputs": [{"name": "value"}], "config": {"name": name}}
        )
        doc["edges"].append({"source": source, "source_port": port, "target": f"output:o{i}", "target_port": "value"})
    return doc, refs


@settings(max_examples=150)
@given(nasty_documents())
def test_any_graph_that_loads_exports_a_script_of_the_templates_statements(
    drawn: tuple[dict[str, Any], dict[str, tuple[str, str]]],
) -> None:
    doc, refs = drawn
    try:
        graph = Graph.from_json(json.dumps(doc))
    except IRFormatError as exc:
        assert ".config.function (node " in str(exc)
        assert any(what in ("refused", "any") for _, what in refs.values())
        return
    assert all(what != "refused" for _, what in refs.values())
    assert not has_errors(validate(graph))
    try:
        text = to_kailash_script(graph)
    except ValueError as exc:
        assert "cannot be exported as a script" in str(exc)
        refused = [node_id for node_id, (ref, _) in refs.items() if f"node {node_id!r}: function {ref!r} " in str(exc)]
        assert refused
        assert all(refs[node_id][1] != "importable" for node_id in refused)
        return
    _check_script(text, graph, {ref for ref, _ in refs.values()})


@functools.lru_cache(maxsize=1)
def _template_statements() -> frozenset[str]:
    """The top-level statements every script has (its imports, ``parameters``, ``main``), and those it has
    when it puts the directory of a module on ``sys.path``: from an export of a clean flow."""
    clean = to_kailash_script(Graph.from_json(json.dumps(_ir("clean", f"{__name__}:_unique"))))
    fixed = {ast.unparse(stmt) for stmt in ast.parse(clean).body[1:]}
    assert "import os" in fixed  # this module is loaded: its directory goes on sys.path
    return frozenset(s for s in fixed if not s.startswith(("FLOW_", "INPUT_", "GRAPH_", "def build_workflow")))


def _check_script(text: str, graph: Graph, refs: set[str]) -> None:
    """Every top-level statement of the script is one the template writes; values are literals; the function
    imports are those of ``refs``, and no name of the script is bound twice."""
    tree = ast.parse(text)
    docstring = ast.get_docstring(tree, clean=False)
    assert docstring is not None and docstring.startswith(f"{graph.name}: a dagwright flow as a Kailash workflow.")
    imported: set[tuple[str, str]] = set()
    bound: list[str] = []
    executor_modules = {executor.__module__ for executor in EXECUTORS.values()}
    for stmt in tree.body[1:]:
        code = ast.unparse(stmt)
        if isinstance(stmt, ast.ImportFrom) and code not in _template_statements():
            assert stmt.level == 0 and stmt.module is not None
            imported.update((stmt.module, alias.name) for alias in stmt.names)
            bound.extend(alias.asname or alias.name for alias in stmt.names)
        elif isinstance(stmt, ast.Import) and code not in _template_statements():
            assert {alias.name for alias in stmt.names} <= executor_modules, code
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and code not in _template_statements():
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            assert isinstance(target, ast.Name) and target.id in _CONSTANTS, code
            assert stmt.value is not None
            ast.literal_eval(stmt.value)
            bound.append(target.id)
        elif isinstance(stmt, ast.FunctionDef) and stmt.name == "build_workflow":
            _check_build_workflow(stmt, graph, {name for name in bound if name not in _CONSTANTS})
            bound.append(stmt.name)
        elif _is_path_insert(stmt):
            pass
        else:
            assert code in _template_statements(), f"a statement the template does not write:\n{code}"
            bound.extend(_bound_names(stmt))
    assert imported == {tuple(ref.split(":")) for ref in refs}
    assert len(bound) == len(set(bound)), sorted(bound)
    assert not set(bound) & set(dir(builtins))
    assert _constants(tree)["FLOW_NAME"] == graph.name


_CONSTANTS = ("FLOW_NAME", "GRAPH_HASH", "FLOW_INPUTS", "INPUT_DEFAULTS", "FLOW_OUTPUTS")


def _is_path_insert(stmt: ast.stmt) -> bool:
    """``sys.path.insert(0, 'DIR')``, as a script written without a path of its own adds a module's directory."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return False
    args = stmt.value.args
    return (
        ast.unparse(stmt.value.func) == "sys.path.insert"
        and len(args) == 2
        and ast.unparse(args[0]) == "0"
        and isinstance(args[1], ast.Constant)
        and isinstance(args[1].value, str)
    )


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(alias.asname or alias.name).split(".")[0] for alias in stmt.names]
    if isinstance(stmt, ast.FunctionDef):
        return [stmt.name]
    if isinstance(stmt, ast.Assign):
        return [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    return []


def _check_build_workflow(fn: ast.FunctionDef, graph: Graph, functions: set[str]) -> None:
    """``build_workflow`` makes a builder, then only calls its methods with literals (and binds imported
    functions), one ``add_node`` per node of the graph, and returns it."""
    body = fn.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)  # its docstring
    assert ast.unparse(body[1]) == "workflow = WorkflowBuilder()"
    assert ast.unparse(body[-1]) == "return workflow"
    added: list[str] = []
    for stmt in body[2:-1]:
        assert isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call), ast.unparse(stmt)
        call = stmt.value
        assert isinstance(call.func, ast.Attribute) and ast.unparse(call.func.value) == "workflow"
        if call.func.attr == "bind":
            node_id, function = call.args
            assert isinstance(function, ast.Name) and function.id in functions, ast.unparse(stmt)
            ast.literal_eval(node_id)
        elif call.func.attr == "set_metadata":
            keywords = {k.arg: k.value for k in call.keywords}
            assert not call.args and ast.unparse(keywords.pop("name")) == "FLOW_NAME"
            assert [ast.literal_eval(v) for v in keywords.values()] in ([], [graph.metadata.get("description")])
        else:
            assert call.func.attr in ("add_node", "add_connection", "add_workflow_inputs") and not call.keywords
            values = [ast.literal_eval(arg) for arg in call.args]
            if call.func.attr == "add_node":
                added.append(values[1])
    assert added == [n.id for n in graph.nodes if n.kind not in ("input", "output")]


def _constants(tree: ast.Module) -> dict[str, Any]:
    """The module-level constants of a script, read back as values (not the built ``workflow``, which is code)."""
    found: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
            if stmt.targets[0].id in _CONSTANTS:
                found[stmt.targets[0].id] = ast.literal_eval(stmt.value)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            found[stmt.target.id] = ast.literal_eval(stmt.value)
    return found
