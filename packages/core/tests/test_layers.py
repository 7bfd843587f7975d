"""The core draws without a circle: module-level imports between ``repro`` modules form a DAG,
in layers (leaf modules import no other core module), and no core module hides a ``repro``
import inside a function to dodge a circle — except the CLI, which imports each command's
stack on demand so that ``repro --help`` stays fast, and the one import of matplotlib's figures."""

from __future__ import annotations

import ast
from pathlib import Path

import repro

SRC = Path(repro.__file__).parent
LEAVES = {"repro.errors", "repro.scales", "repro.files", "repro.stats", "repro.checksums", "repro.timing",
          "repro.kernels"}
LAZY_ALLOWED = {"repro.cli", ("repro.tracking", "repro.figures")}


def _imports() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    graph: dict[str, set[str]] = {}
    lazy: list[tuple[str, str]] = []
    for f in sorted(SRC.rglob("*.py")):
        mod = ".".join(("repro", *f.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        top: set[str] = set()

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    visit(child, True)
                elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue  # annotations only, never executed
                elif isinstance(child, (ast.Import, ast.ImportFrom)):
                    if isinstance(child, ast.ImportFrom):
                        names = ([f"repro.{a.name}" for a in child.names] if child.module == "repro"
                                 else [child.module or ""])
                    else:
                        names = [a.name for a in child.names]
                    for name in names:
                        if name.startswith("repro.") and name != mod:
                            (lazy.append((mod, name)) if in_function else top.add(name))
                else:
                    visit(child, in_function)

        visit(ast.parse(f.read_text()), False)
        graph[mod] = top
    return graph, lazy


def _resolve(name: str, graph: dict[str, set[str]]) -> str:
    """``repro.datasets.DATASETS`` style names -> the module that defines them."""
    while name not in graph and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def test_module_imports_form_a_dag():
    graph, _ = _imports()
    edges = {m: {_resolve(n, graph) for n in deps} - {m} for m, deps in graph.items()}
    done, stack = set(), []

    def walk(m: str) -> None:
        if m in done:
            return
        if m in stack:
            raise AssertionError("import circle: " + " -> ".join(stack[stack.index(m):] + [m]))
        stack.append(m)
        for d in edges.get(m, ()):
            if d.startswith("repro.datasets.") and m == "repro.datasets":
                continue  # a package importing its own submodules
            walk(d)
        stack.pop()
        done.add(m)

    for m in edges:
        walk(m)


def test_leaf_modules_import_no_other_core_module():
    graph, _ = _imports()
    for leaf in LEAVES:
        others = {_resolve(n, graph) for n in graph[leaf]} - {"repro.errors"}
        assert not others, f"{leaf} imports {others}"


def test_no_function_level_core_imports_outside_the_cli():
    _, lazy = _imports()
    hidden = [(m, n) for m, n in lazy if m not in LAZY_ALLOWED and (m, n) not in LAZY_ALLOWED]
    assert not hidden, f"core imports hidden inside functions (a circle being dodged?): {hidden}"
