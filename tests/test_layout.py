"""The package's shape: its layers, the imports between its modules, and the size of its parts.

Every ``import`` in ``dagwright/`` is read with ``ast``, those inside functions (imported
on first use) included; only ``if TYPE_CHECKING:`` blocks are left out, since they never
run. The README's Layout section describes the same layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dagwright"

# Each home of the package and its layer: a module may import its own home, or a home of a lower layer.
LAYERS: dict[str, int] = {
    "dagwright._version": 0,
    "dagwright.compiler": 0,
    "dagwright.execution": 1,
    "dagwright.ops": 2,
    "dagwright.llm": 3,
    "dagwright.nodes": 4,
    "dagwright.backends": 5,
    "dagwright.backends.builtin": 5,
    "dagwright.visualize": 5,
    "dagwright.backends.kailash": 6,
    "dagwright.backends.dask": 6,
    "dagwright.flow": 7,
    "dagwright.agent": 8,
    "dagwright.patterns": 9,
    "dagwright.kaizen": 10,
    "dagwright.cli": 11,
    "dagwright.testing": 11,
    "dagwright.notebook": 11,
    "dagwright.__main__": 12,
    "dagwright": 12,
}

HEAVY = ("openai", "httpx", "jinja2", "kailash", "dask", "distributed")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The dagwright modules ``tree`` imports anywhere, except under ``if TYPE_CHECKING:``."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "dagwright")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] == "dagwright":
                for alias in node.names:  # `from pkg import module` imports that module
                    child = f"{target}.{alias.name}"
                    found.add(child if child in modules else target)
        stack.extend(ast.iter_child_nodes(node))
    found.discard(module)
    return found


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    names = set(files)
    return {
        name: _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", names)
        for name, path in files.items()
    }


def _home(module: str) -> str:
    """The longest key of LAYERS that ``module`` is, or lies under."""
    best = ""
    for home in LAYERS:
        if (module == home or module.startswith(home + ".")) and len(home) > len(best):
            best = home
    assert best, f"{module} belongs to no home of LAYERS: add it there (and to the README's Layout)"
    return best


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_module_imports_another_that_imports_it_back() -> None:
    cycle = _cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_import_goes_to_the_same_home_or_a_lower_layer() -> None:
    wrong = []
    for module, deps in sorted(_import_graph().items()):
        home = _home(module)
        for dep in sorted(deps):
            dep_home = _home(dep)
            if dep_home != home and LAYERS[dep_home] >= LAYERS[home]:
                wrong.append(f"{module} ({home}, layer {LAYERS[home]}) imports {dep} (layer {LAYERS[dep_home]})")
    assert not wrong, "\n".join(wrong)


def test_the_compiler_imports_nothing_else_of_dagwright() -> None:
    graph = _import_graph()
    outside = {
        (m, d)
        for m, deps in graph.items()
        if _home(m) == "dagwright.compiler"
        for d in deps
        if _home(d) not in ("dagwright.compiler", "dagwright._version")
    }
    assert not outside


def test_the_layer_checks_catch_an_upward_import_and_a_cycle() -> None:
    # The checks above pass on the real package; here they must fail on a made-up one.
    graph = {"dagwright.compiler.ir": {"dagwright.flow"}, "dagwright.flow": {"dagwright.compiler.ir"}}
    assert _cycle(graph) == ["dagwright.compiler.ir", "dagwright.flow", "dagwright.compiler.ir"]
    assert LAYERS[_home("dagwright.flow")] > LAYERS[_home("dagwright.compiler.ir")]
    source = "if TYPE_CHECKING:\n    import dagwright.flow\ndef f():\n    import dagwright.agent\n"
    tree = ast.parse("from typing import TYPE_CHECKING\n" + source)
    assert _imports(tree, "dagwright.compiler.x", False, set()) == {"dagwright.agent"}


@pytest.mark.parametrize("module", ["dagwright", "dagwright.compiler", "dagwright.patterns"])
def test_importing_the_light_parts_loads_no_client_template_engine_or_back_end(module: str) -> None:
    code = f"import sys, {module}\nprint(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import {module} loaded {out}"


def _definitions() -> list[tuple[str, ast.AST, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                assert node.end_lineno is not None
                found.append(
                    (
                        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}",
                        node,
                        node.end_lineno - node.lineno + 1,
                    )
                )
    return found


def test_no_function_is_longer_than_80_lines() -> None:
    long = [
        f"{where} ({n} lines)" for where, node, n in _definitions() if not isinstance(node, ast.ClassDef) and n > 80
    ]
    assert not long, "\n".join(long)


def test_no_class_is_longer_than_400_lines() -> None:
    long = [f"{where} ({n} lines)" for where, node, n in _definitions() if isinstance(node, ast.ClassDef) and n > 400]
    assert not long, "\n".join(long)


def test_every_module_says_what_it_is_for() -> None:
    missing = [
        str(p.relative_to(PACKAGE.parent))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "__main__.py" and not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert not missing, "modules without a docstring: " + ", ".join(missing)
