"""The package's structure rules, checked so they stay true: one error root, a source registry
that base.py does not depend on, no module importing the concrete sources but the registry."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import ragloop
from ragloop.errors import RagloopError

PACKAGE = Path(ragloop.__file__).parent
# Internal control flow, never shown to a person: caught where they are raised.
INTERNAL_EXCEPTIONS = {"ApiError", "ExportFileTooLarge", "_ChannelFailed", "Unreadable", "_NothingToIndex", "_BadRecord"}
# Run by the torch export environment, or needing extras this environment does not import at collection.
NOT_IMPORTED = {"ragloop.local.onnx_model"}


def ragloop_modules():
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="ragloop."):
        if info.name not in NOT_IMPORTED:
            yield info.name


def test_every_exception_ragloop_defines_is_a_ragloop_error():
    """cli.main catches RagloopError alone: an expected failure outside it would print a traceback."""
    strays = []
    for name in ragloop_modules():
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name or not issubclass(cls, BaseException) or cls_name in INTERNAL_EXCEPTIONS:
                continue
            if not issubclass(cls, RagloopError):
                strays.append(f"{name}.{cls_name}")
    assert strays == []


def test_config_errors_are_still_value_errors():
    from ragloop.config import ConfigError
    from ragloop.sources import SourceConfigError

    assert issubclass(ConfigError, ValueError) and issubclass(SourceConfigError, ValueError)


def test_the_registry_maps_each_type_to_its_class():
    from ragloop.sources import SOURCE_TYPES, source_class

    assert set(SOURCE_TYPES) == {"docs", "slack", "github_issues"}
    for source_type in SOURCE_TYPES:
        assert source_class(source_type).type == source_type


def test_an_unknown_type_names_the_known_ones():
    from ragloop.sources import SourceConfigError, source_class

    with pytest.raises(SourceConfigError, match="unknown type 'confluence' \\(expected one of docs, github_issues, slack\\)"):
        source_class("confluence")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any level (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_registry_and_the_sources_themselves_import_concrete_sources():
    def concrete(modules: set[str]) -> set[str]:
        return {m for m in modules if m.split(".")[:3] in (["ragloop", "sources", k] for k in ("docs", "slack", "github"))}

    importers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if concrete(imported_modules(path)) and not str(path.relative_to(PACKAGE)).startswith("sources/")
    }
    # The doctor reaches Slack and GitHub with the sources' own clients (same auth, same errors).
    assert importers == {"airflow/doctor.py"}
    assert not concrete(imported_modules(PACKAGE / "sources" / "base.py"))
    assert not concrete(imported_modules(PACKAGE / "sources" / "registry.py"))  # named as strings, loaded on demand


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def module_import_graph() -> dict[str, set[str]]:
    """ragloop module -> the ragloop modules it imports, at the top or inside a function (a
    deferred import is still a dependency); imports only type checkers see are left out."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in files}

    def visit(name: str, node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("ragloop"):
            module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in files else module for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name in files]
        graph[name].update(t for t in targets if t in files and t != name)
        for child in ast.iter_child_nodes(node):
            visit(name, child)

    for name, path in files.items():
        visit(name, ast.parse(path.read_text(encoding="utf-8")))
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


def test_no_module_imports_itself_through_others():
    """No import circles between ragloop's modules, deferred imports included: a circle means two
    modules that cannot be understood, tested or moved apart (the run store's schema calling the
    store, review and write-back, the cluster's services and SeaweedFS were the last ones)."""
    assert import_cycles(module_import_graph()) == []


def test_the_circle_check_finds_a_circle():
    graph = module_import_graph()
    assert graph["ragloop.runs.store"] >= {"ragloop.runs.schema"}
    graph["ragloop.runs.schema"] = graph["ragloop.runs.schema"] | {"ragloop.runs.store"}
    assert import_cycles(graph) == [["ragloop.runs.schema", "ragloop.runs.store"]]
