"""Issue 23's bug: the feedback DAG grades against the Weaviate its `weaviate_conn_id` names, in
every task. `weaviate_default` points at a closed port here; a run ingested, answered, graded and
written back through another connection must succeed without ever reaching it (before the fix,
the `grade` task read `weaviate_default` for grounding and every batch failed)."""

from __future__ import annotations

import json

import pytest

from conftest import copy_samples, weaviate_conn_json, write_config
from ragloop.local.weaviate_local import free_port

pytestmark = pytest.mark.integration

QUESTION = "How long does an old SDK key keep working after rotation?"
OTHER = "kb_other"


def test_grading_uses_only_the_named_connection(tmp_path, weaviate_server, airflow_db, monkeypatch, collection_name):
    from ragloop.answer import ask
    from ragloop.airflow.dagrun import run_dag
    from ragloop.ingest import ingest
    from ragloop.runs import RunRecorder, RunStore, VoteIn

    closed_port = free_port()
    # `weaviate_default` names a port nobody listens on: any task that falls back to it fails.
    monkeypatch.setenv(
        "AIRFLOW_CONN_WEAVIATE_DEFAULT",
        json.dumps({"conn_type": "weaviate", "host": "127.0.0.1", "port": closed_port,
                    "extra": {"grpc_host": "127.0.0.1", "grpc_port": closed_port}}),
    )
    monkeypatch.setenv(f"AIRFLOW_CONN_{OTHER.upper()}", weaviate_conn_json(weaviate_server))
    runs_path = tmp_path / "runs.db"
    monkeypatch.setenv("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(runs_path)}))

    config = write_config(tmp_path, collection_name, copy_samples(tmp_path), product="Fernwood")
    report = ingest("conn-id-tests", str(config), weaviate_conn_id=OTHER)
    assert report["sources"]["docs"]["documents"]["failed"] == 0

    with RunStore(f"sqlite:///{runs_path}") as store:
        with RunRecorder(app="tests", store=store):
            run_id = ask(QUESTION, config_path=str(config), weaviate_conn_id=OTHER).run_id
        store.add_vote(run_id, VoteIn(vote="up", user_id="ops-1", comment="clear"))

    result = run_dag("ragloop_grade_feedback", {"config": str(config), "weaviate_conn_id": OTHER}, retries=0)
    graded = result.returns["grade"]
    assert [batch["ungraded_runs"] for batch in graded] == [[]], graded
    assert sum(batch["graded"] for batch in graded) == 1
    assert result.returns["report"]["write_back"]["written"] == 1
