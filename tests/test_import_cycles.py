"""No zootool module imports one that imports it back.

The import graph is read from the source with ``ast``, without importing anything. An edge
is a module named by an ``import`` or ``from ... import`` statement (``from pkg import mod``
counts as ``pkg.mod`` when ``mod`` is a module). Two kinds of edge are told apart:

* module level: executed when the module is imported. These must form no cycle at all:
  a cycle means a half-initialised module is seen by whoever closes it.
* lazy: inside a function body. They run only when called, after every module involved is
  fully imported, so a cycle through them cannot see half a module; but it still ties
  two stages to each other. They are counted on top of the module-level ones, and the
  union must have no cycle either. Modules named by string (``arch.families``'
  ``module:function`` entries, ``python -m`` child entry points) are not edges: nothing
  imports them by statement.

Imports under ``if TYPE_CHECKING:`` never run and are not edges. The implicit import of a
parent package (``zootool.arch`` before ``zootool.arch.base``) is not counted either: the
parent is initialised before its children, so it cannot be re-entered half-done by them.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "zootool"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


def _base(current: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute module a (possibly relative) ``from`` import names."""
    if level == 0:
        return module or ""
    parts = current.split(".")
    package = parts if is_package else parts[:-1]
    package = package[: len(package) - (level - 1)]
    return ".".join(package + ([module] if module else []))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.Module, lazy: bool):
    """Import statements at module level (``lazy=False``) or inside functions (``lazy=True``)."""
    def walk(nodes, in_function: bool):
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                walk(node.orelse, in_function)
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if in_function == lazy:
                    yield node
                continue
            inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from walk(ast.iter_child_nodes(node), inner)

    yield from walk(tree.body, False)


def edges(lazy: bool) -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in _statements(tree, lazy):
            graph[name] |= _targets(node, name, path.name == "__init__.py", known)
    return graph


def _targets(node, current: str, is_package: bool, known) -> set[str]:
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = _base(current, is_package, node.level, node.module)
        names = {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {name for name in names if name in known and name != current}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reader_sees_relative_and_lazy_imports():
    eager, lazy = edges(lazy=False), edges(lazy=True)
    assert f"{PACKAGE}.errors" in eager[f"{PACKAGE}.plan.resolve"]
    assert not any(f"{PACKAGE}.gate.run" in targets for targets in eager.values())
    assert any(f"{PACKAGE}.gate.run" in targets for targets in lazy.values())


def test_no_module_level_import_cycle():
    assert cycles(edges(lazy=False)) == []


def test_lazy_imports_close_no_cycle():
    eager, lazy = edges(lazy=False), edges(lazy=True)
    both = {name: eager[name] | lazy[name] for name in eager}
    assert cycles(both) == []
