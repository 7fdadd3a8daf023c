"""What crosses task boundaries (docs/decisions.md, ADR 9), held: every task body of the public
task groups takes and returns declared types (the settings TypedDicts, the result TypedDicts of
ragloop.ingest.types and ragloop.grading.types, ids and URLs), never a bare dict or Any; only
the values Airflow itself passes (params, dag_run, ti, outlet_events) stay untyped."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASK_GROUPS = ROOT / "include" / "ragloop" / "airflow" / "task_groups.py"
AIRFLOW_CONTEXT = {"params", "dag_run", "ti", "outlet_events"}  # given by Airflow, not by another task
UNTYPED = {"dict", "Any", "list[dict]", "dict[str, Any]", "object"}


def task_functions(source: str) -> list[ast.FunctionDef]:
    def is_task(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return isinstance(target, ast.Name) and target.id == "task"

    return [node for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef) and any(is_task(d) for d in node.decorator_list)]


def contract_breaches(source: str) -> list[str]:
    breaches = []
    for function in task_functions(source):
        for arg in function.args.args:
            annotation = ast.unparse(arg.annotation) if arg.annotation else ""
            if arg.arg not in AIRFLOW_CONTEXT and (not annotation or annotation in UNTYPED):
                breaches.append(f"{function.name}({arg.arg}: {annotation or 'no type'})")
        returns = ast.unparse(function.returns) if function.returns else ""
        if not returns or returns in UNTYPED:
            breaches.append(f"{function.name} -> {returns or 'no type'}")
    return breaches


def test_every_task_of_the_groups_takes_and_returns_declared_types():
    source = TASK_GROUPS.read_text(encoding="utf-8")
    assert len(task_functions(source)) >= 15  # ingest, grading, review and write-back tasks
    assert contract_breaches(source) == []


@pytest.mark.parametrize(("body", "breach"), [
    ("def index(batch: str, settings: dict) -> BatchResult: ...", "index(settings: dict)"),
    ("def index(batch, settings: IngestSettings) -> BatchResult: ...", "index(batch: no type)"),
    ("def index(batch: str, settings: IngestSettings) -> dict: ...", "index -> dict"),
])
def test_the_check_names_an_untyped_crossing(body, breach):
    assert contract_breaches(f"@task\n{body}\n") == [breach]
