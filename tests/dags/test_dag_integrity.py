"""Every DAG file imports cleanly, declares its owner, tags and retries, and stays light at parse time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
# Modules that create models or clients; importing one at parse time slows every scheduler loop.
HEAVY_MODULES = ["torch", "sentence_transformers", "transformers", "weaviate", "openai", "slack_sdk", "github", "tiktoken"]


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_there_are_dag_files():
    assert DAG_FILES, f"no DAG files under {DAGS}"


def test_dag_files_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {Path(dag.fileloc).name for dag in dagbag.dags.values()} == {p.name for p in DAG_FILES}


def test_tags_owner_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 2, f"{dag_id}.{task.task_id} retries {task.retries} < 2"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_no_heavy_imports_at_parse_time(dag_file, airflow_db):
    probe = f"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
before = set(sys.modules)
bag = DagBag(dag_folder={str(dag_file)!r})
assert not bag.import_errors, bag.import_errors
print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in {HEAVY_MODULES!r})))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert heavy == [], f"{dag_file.name} imports {heavy} at parse time; import inside the task instead"
