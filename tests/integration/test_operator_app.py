"""The ragloop page's app (plugins/ragloop_plugin.py → ragloop.airflow.operator.app) under FastAPI's test
client with Airflow's real auth manager, a real Weaviate and a real SQLite run store: nothing
without a token, the UI's session cookie or a bearer token accepted, reading and revoking by role,
the revoke guarded against cross-site forms; and the stored reports (run store migration 4).
The page in a real browser through a running Airflow is test_operator_page.py."""

from __future__ import annotations

import csv
import io
from datetime import datetime, UTC

import pytest
import sqlalchemy as sa

from airflow_helpers import token_for
from conftest import SAMPLES, write_config
from ragloop.runs import SCHEMA_VERSION, RunIn, RunStore, VoteIn

pytestmark = pytest.mark.integration


@pytest.fixture
def page(weaviate_server, collection_name, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from ragloop.airflow.operator.app import create_ui_app
    from ragloop.ingest import ingest

    config = str(write_config(tmp_path, collection_name, SAMPLES, embedder="hash", source={"exclude": ["**/changelog*"]}))
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.setenv("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT", f'{{"conn_type": "sqlite", "host": "{tmp_path / "runs.db"}"}}')
    report = ingest("manual__page-test", config)
    from ragloop.runs.reports import save_report

    save_report("ingest", report, store)
    for number, question in enumerate(["How do I rotate an SDK key?", "How do I rotate SDK keys safely?", "Where are backups kept?"]):
        run_id, _ = store.record_run(RunIn(question=question, answer=f"Answer {number} [1].", app="test",
                                           sources=[{"doc_id": "docs:faq.md", "chunk_id": "c", "title": "FAQ", "text": "t",
                                                    "visibility": "public"}]))  # a viewer (public) sees them
        store.add_vote(run_id, VoteIn(vote="down" if number else "up", user_id="u"))
    with TestClient(create_ui_app(config, lambda: store), base_url="http://127.0.0.1") as client:
        yield client, store, collection_name
    store.close()


def test_nothing_without_a_valid_token(page, auth_manager):
    client, _, collection = page
    for path in ("/", "/data.json", "/gaps.csv"):
        for headers, cookies in (({}, {}), ({"authorization": "Bearer forged"}, {}), ({}, {"_token": "forged"})):
            client.cookies.clear()
            for name, value in cookies.items():
                client.cookies.set(name, value)
            answer = client.get(path, headers={"accept": "text/html", **headers})
            assert answer.status_code == 401, (path, headers, cookies)
            assert collection not in answer.text and "rotate" not in answer.text
    client.cookies.clear()
    assert client.post("/revoke", json={"run_id": "x", "reason": "y"}, headers={"x-ragloop-request": "page"}).status_code == 401
    # A token without a role may read nothing.
    answer = client.get("/data.json", headers={"authorization": f"Bearer {token_for(auth_manager, None)}"})
    assert answer.status_code == 403 and "may not read" in answer.json()["error"]


def test_the_session_cookie_or_a_bearer_token_reads_the_page(page, auth_manager):
    client, _store, collection = page
    client.cookies.set("_token", token_for(auth_manager, "viewer"))  # the UI's session, as its frame sends it
    html = client.get("/", headers={"accept": "text/html"})
    assert html.status_code == 200, html.text[:2000]
    assert "Knowledge base" in html.text and collection in html.text and html.text.count("<svg") == 9
    assert "read only" in html.text or "no answers written back" in html.text  # a viewer gets no revoke button
    client.cookies.clear()
    data = client.get("/data.json", headers={"authorization": f"Bearer {token_for(auth_manager, 'viewer')}"}).json()
    kb = data["knowledge_base"]
    assert kb["collection"] == collection and kb["chunks"] > 0 and set(kb["by_source"]) == {"docs"}
    assert [s["freshness"] for s in kb["sources"]] == ["green"]  # reported just now; its DAG is not in this Airflow
    assert data["ingest_history"]["runs"][0]["dag_run_id"] == "manual__page-test"
    assert data["feedback"]["runs"] == 3 and data["feedback"]["votes"] == {"up": 1, "down": 2}
    assert data["gaps"]["runs"] == 3 and data["gaps"]["topics"]
    assert "csv" not in data["gaps"]
    exported = client.get("/gaps.csv", headers={"authorization": f"Bearer {token_for(auth_manager, 'viewer')}"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [int(r["need"]) for r in rows] == [t["need"] for t in data["gaps"]["topics"]]


def test_revoking_needs_the_recording_permission_and_the_page_header(page, auth_manager):
    client, store, _ = page
    run_id = store.list_runs(limit=1)[0]["run_id"]
    body = {"run_id": run_id, "reason": "wrong"}
    viewer = {"authorization": f"Bearer {token_for(auth_manager, 'viewer')}", "x-ragloop-request": "page"}
    assert client.post("/revoke", json=body, headers=viewer).status_code == 403
    op = {"authorization": f"Bearer {token_for(auth_manager, 'op')}"}
    refused = client.post("/revoke", json=body, headers=op)  # a cross-site form cannot add the header
    assert refused.status_code == 400 and store.get_run(run_id)["writeback"] is None
    assert client.post("/revoke", json={"run_id": run_id}, headers={**op, "x-ragloop-request": "page"}).status_code == 422
    assert client.post("/revoke", json={"run_id": "nope", "reason": "x"}, headers={**op, "x-ragloop-request": "page"}).status_code == 404
    done = client.post("/revoke", json=body, headers={**op, "x-ragloop-request": "page"})
    assert done.status_code == 200, done.text
    writeback = store.get_run(run_id)["writeback"]
    assert writeback["state"] == "revoked_by_hand" and "wrong (by op-user on the ragloop page)" in writeback["revoke_reason"]
    html = client.get("/", headers={"authorization": op["authorization"]}).text
    assert "Revoke answer" in html  # an op sees the revoke dialog


def test_reports_are_stored_once_per_dag_run(tmp_path):
    from ragloop.runs.reports import list_reports, save_report
    from ragloop.runs.schema import REPORTS

    with RunStore(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        assert store.schema_version() == SCHEMA_VERSION >= 4
        first = save_report("feedback", {"dag_id": "d", "dag_run_id": "r", "errors": ["x"]}, store)
        again = save_report("feedback", {"dag_id": "d", "dag_run_id": "r", "errors": []}, store)  # a retried report task
        save_report("ingest", {"dag_id": "d2", "dag_run_id": "r", "errors": []}, store)
        assert first == again
        stored = list_reports(store, "feedback")
        assert len(stored) == 1 and stored[0]["ok"] is True and stored[0]["report"]["errors"] == []
        assert [r["kind"] for r in list_reports(store)] == ["ingest", "feedback"]
        assert list_reports(store, since=datetime(2100, 1, 1, tzinfo=UTC)) == []
        with store.engine.connect() as connection:
            assert connection.scalar(sa.select(sa.func.count()).select_from(REPORTS)) == 2
        with pytest.raises(ValueError, match="report kind must be one of"):
            save_report("other", {"dag_id": "d", "dag_run_id": "r"}, store)
        with pytest.raises(ValueError, match="names its dag_id and dag_run_id"):
            save_report("ingest", {"errors": []}, store)
