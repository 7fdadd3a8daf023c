"""A connection that exists but cannot be read is an error that names it, never "not defined":
above all the runs store, which must not fall back to the local SQLite file on a worker (the
feedback DAG would then see no good runs and revoke every written-back answer).

The failure is real: a secrets backend configured the way a deployment configures one, which
raises for `ragloop_runs_default` as a secrets manager that is down does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, UTC

import pytest

from conftest import REPO, copy_samples, run_cli, write_config

pytestmark = pytest.mark.integration

QUESTION = "How long does an old SDK key keep working after rotation?"
ANSWER = ("After `fern keys rotate`, the old key keeps working for a grace period: 24 hours by default and at most "
          "7 days [1].")
FAILING_BACKEND = {
    "AIRFLOW__SECRETS__BACKEND": "failing_secrets.UnreachableSecretsBackend",
    "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"failing": ["ragloop_runs_default"]}),
    "PYTHONPATH": f"{REPO / 'tests'}:{REPO / 'include'}",
}


@pytest.fixture
def written_back(weaviate_server, weaviate_client, airflow_db, collection_name, tmp_path, monkeypatch):
    """A good run, written back into the collection by the write-back step; the runs store is a
    SQLite file named by the ragloop_runs_default connection."""
    from ragloop import grading
    from ragloop.config import load_config
    from ragloop.runs import RunIn, RunStore, VoteIn
    from ragloop.staging import DagRunRef

    runs_conn = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "runs.db")})
    monkeypatch.setenv("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT", runs_conn)
    config = write_config(tmp_path, collection_name, copy_samples(tmp_path), embedder="hash")
    # Write-back publishes only answers whose cited chunks the index holds: index the docs, cite one.
    from weaviate.classes.query import Filter

    from ragloop.answer import passage_text
    from ragloop.passages import Passage
    from ragloop.ingest import ingest

    ingest("setup", str(config))
    chunk = next(c for c in weaviate_client.collections.use(collection_name).query.fetch_objects(
        filters=Filter.by_property("doc_id").equal("docs:api/authentication-tokens.md"), limit=50).objects
        if "grace period" in c.properties["text"])
    p = chunk.properties
    passage = passage_text(Passage(p["doc_id"], p["source_id"], p["kind"], p["title"], p["url"], p["heading_path"], p["text"], 1.0,
                               str(chunk.uuid)))
    with RunStore.default() as store:
        run_id, _ = store.record_run(RunIn(
            question=QUESTION, answer=ANSWER, votes=[VoteIn(vote="up", user_id="u1")],
            sources=[{"doc_id": p["doc_id"], "chunk_id": str(chunk.uuid), "title": p["title"], "text": passage}]))
        versions = grading.criterion_versions(load_config(str(config)))
        store.record_grades(run_id, [
            {"criterion": criterion, "criterion_version": version, "judge": "tests", "score": 1.0, "passed": True,
             "reason": "set by the test", "veto": None, "tokens": 0}
            for criterion, version in versions.items()
        ], datetime.now(UTC))
    result = grading.write_back(DagRunRef(grading.GRADE_DAG_ID, "manual__setup"), str(config))
    assert result["written"] == 1
    return run_id, config, runs_conn


def qa_documents(client, collection: str) -> set[str]:
    from conftest import indexed_chunks

    return {doc_id for doc_id in indexed_chunks(client, collection) if doc_id.startswith("qa:")}


def test_grade_and_the_feedback_dag_fail_naming_the_connection_and_revoke_nothing(
    written_back, weaviate_client, collection_name,
):
    run_id, config, runs_conn = written_back
    assert qa_documents(weaviate_client, collection_name) == {f"qa:{run_id}"}
    env = {**FAILING_BACKEND, "AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": runs_conn}

    graded = run_cli("grade", "--config", str(config), env=env)
    assert graded.returncode == 1
    assert "run store connection 'ragloop_runs_default' cannot be read" in graded.stderr, graded.stderr[-3000:]
    assert "UnreachableSecretsBackend failed: ConnectionRefusedError" in graded.stderr

    # The DAG itself, its tasks reading connections through the Task SDK as on a worker.
    code = (
        "import json, sys\n"
        "from ragloop.local import localenv\n"
        "localenv.configure_airflow_env()\n"
        "from ragloop.airflow.dagrun import run_dag\n"
        f"result = run_dag('ragloop_grade_feedback', {{'config': {str(config)!r}}}, raise_on_failure=False, retries=0)\n"
        "print(json.dumps({'state': result.state, 'tasks': result.task_states, 'report': result.returns.get('report')}))\n"
    )
    dag = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO,
                         env={**os.environ, **env})
    assert dag.returncode == 0, dag.stderr[-3000:]
    outcome = json.loads(dag.stdout.strip().splitlines()[-1])
    assert outcome["state"] == "failed"
    assert outcome["tasks"]["select_runs"] == "failed" and outcome["tasks"]["write_back"] == "failed", outcome
    logged = dag.stdout + dag.stderr  # the task logs, wherever dag.test() sends them
    assert "run store connection 'ragloop_runs_default' cannot be read" in logged
    report = outcome["report"]
    assert report is not None and report["runs_store"].startswith("unusable: run store connection 'ragloop_runs_default'")
    assert any("write-back did not finish" in error for error in report["errors"])

    # Nothing was revoked: the answer is still in the index and still recorded as written.
    assert qa_documents(weaviate_client, collection_name) == {f"qa:{run_id}"}
    from ragloop.runs import RunStore

    with RunStore(f"sqlite:///{json.loads(runs_conn)['host']}") as store:
        assert store.get_run(run_id)["writeback"]["state"] == "written"


def test_the_runs_api_answers_503_naming_the_connection(written_back, airflow_db, monkeypatch):
    from fastapi.testclient import TestClient

    from ragloop.airflow.runs_api import create_app
    from test_runs_api import token_for

    from airflow.api_fastapi.app import create_auth_manager

    auth_manager = create_auth_manager()
    auth_manager.init()
    for key, value in FAILING_BACKEND.items():
        if key.startswith("AIRFLOW__"):
            monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    with TestClient(create_app(), base_url="http://127.0.0.1") as client:
        client.headers["authorization"] = f"Bearer {token_for(auth_manager, 'admin')}"
        for method, path, body in (("POST", "/runs", {"question": "q?", "answer": "a."}), ("GET", "/runs", None)):
            response = client.request(method, path, json=body)
            assert response.status_code == 503, response.text
            assert "Airflow connection 'ragloop_runs_default' cannot be read" in response.json()["error"]
            assert response.headers["retry-after"] == "5"


def test_a_connection_that_is_truly_absent_is_named_as_not_defined(airflow_db, monkeypatch):
    from ragloop.airflow.connections import ConnectionNotFound, ConnectionUnreadable, get_connection

    monkeypatch.delenv("AIRFLOW_CONN_RAGLOOP_NOWHERE", raising=False)
    with pytest.raises(ConnectionNotFound, match="'ragloop_nowhere' is not defined"):
        get_connection("ragloop_nowhere")
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", FAILING_BACKEND["AIRFLOW__SECRETS__BACKEND"])
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps({"failing": ["ragloop_nowhere"]}))
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    with pytest.raises(ConnectionUnreadable, match="'ragloop_nowhere' could not be read: UnreachableSecretsBackend"):
        get_connection("ragloop_nowhere")
