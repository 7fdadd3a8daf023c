"""`RunStore` is the only way into the run database: no module but the store opens its
connections or reads its tables, so every query (the operator page's statistics included) is a
store method with a name and a test."""

from __future__ import annotations

import ast
from pathlib import Path

import ragloop

PACKAGE = Path(ragloop.__file__).parent
ROOT = PACKAGE.parent.parent
STORE = PACKAGE / "runs" / "store.py"
# The schema's tables are the store's; runs/__init__ re-exports the schema version alone.
SCHEMA_IMPORTERS = {STORE, PACKAGE / "runs" / "__init__.py"}
PRIVATE = {"_connect", "_begin", "engine"}


def python_files():
    for folder in ("include/ragloop", "plugins", "dags"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_module_but_the_store_opens_the_run_database():
    offenders = []
    for path in python_files():
        if path == STORE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                owner = node.value
                name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
                if "store" in name.lower():
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}.{node.attr}")
    assert offenders == []


def test_no_module_but_the_store_reads_the_run_store_tables():
    offenders = []
    for path in python_files():
        if path in SCHEMA_IMPORTERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "ragloop.runs.schema":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
