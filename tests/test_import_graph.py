"""The layering of the library: no import cycle between echodiff modules, and no echodiff import hidden inside a
function to dodge one."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "common" / "echodiff"



def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _target(name: str) -> str:
    """The file an `import name` / `from name import ...` loads last: the deepest existing module of `name`."""
    parts = name.split(".")
    while parts:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return name


def _imports(tree: ast.AST, top_level: bool) -> set[str]:
    found = set()
    nodes = tree.body if top_level else [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for node in nodes:
        for sub in [node] if top_level else ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("echodiff"):
                for alias in sub.names:
                    found.add(_target(f"{sub.module}.{alias.name}"))
            elif isinstance(sub, ast.Import):
                found |= {_target(a.name) for a in sub.names if a.name.startswith("echodiff")}
    return found


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    module_level, local = {}, {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        name = _module_name(path)
        module_level[name] = _imports(tree, True) - {name}
        local[name] = _imports(tree, False) - {name}
    return module_level, local


def test_no_import_cycle_between_echodiff_modules() -> None:
    graph, _ = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for child in sorted(graph.get(node, ())):
            if child not in graph:
                continue
            if state.get(child) == 1:
                cycles.append(stack[stack.index(child):] + [child])
            elif child not in state:
                visit(child, stack + [child])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package __init__ re-exporting its submodules, which import siblings through the package, is not a cycle
    cycles = [c for c in cycles if not any(c[i + 1].startswith(c[i] + ".") for i in range(len(c) - 1))]
    assert cycles == []


def test_no_echodiff_import_inside_a_function() -> None:
    _, local = _graph()
    found = {(module, target) for module, targets in local.items() for target in targets}
    assert found == set()
