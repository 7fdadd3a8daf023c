"""The runs API's feedback-ranking endpoints with Airflow's real auth manager (as
test_runs_api.py): votes posted through the API move the cited chunks (GET /boosts), operators pin,
reset and hide chunks (POST /chunks/{id}/actions; internal audience needed; recorded with who, when,
why), curated hits are counted (GET /curated) and a vote on a hit reaches the curated run. On
SQLite and on a real PostgreSQL."""

from __future__ import annotations

import pytest

from ragloop.runs import RunStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def auth_manager(airflow_db):
    from airflow.api_fastapi.app import create_auth_manager

    manager = create_auth_manager()
    manager.init()
    return manager


def token_for(auth_manager, role: str | None, name: str | None = None) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username=name or f"{role}-user", role=role))


@pytest.fixture
def store(runs_db_url):
    with RunStore(runs_db_url) as store:
        yield store


@pytest.fixture
def client(store, auth_manager):
    from fastapi.testclient import TestClient

    from ragloop.airflow.runs_api import create_app

    with TestClient(create_app(lambda: store, emit=lambda _event: True), base_url="http://127.0.0.1") as client:
        yield client


def as_role(auth_manager, role, name=None):
    return {"authorization": f"Bearer {token_for(auth_manager, role, name)}"}


RUN = {
    "question": "How do I rotate an SDK key?",
    "answer": "Create a new key [1], then revoke the old one [2].",
    "sources": [
        {"doc_id": "docs:keys", "chunk_id": "c-1", "title": "Keys", "kind": "docs", "score": 0.6, "visibility": "public"},
        {"doc_id": "docs:revoke", "chunk_id": "c-2", "title": "Revoking", "kind": "docs", "score": 0.2, "visibility": "public"},
    ],
}


def test_votes_through_the_api_move_the_cited_chunks_and_show_in_boosts(client, auth_manager):
    admin, viewer = as_role(auth_manager, "admin"), as_role(auth_manager, "viewer")
    run_id = client.post("/runs", json=RUN, headers=admin).json()["run_id"]
    for name in ("ann", "bo", "cy"):
        voter = as_role(auth_manager, "op", name)
        assert client.post(f"/runs/{run_id}/feedback", json={"vote": "down"}, headers=voter).status_code == 201
    # A user changing their vote counts once, as their latest.
    client.post(f"/runs/{run_id}/feedback", json={"vote": "up"}, headers=as_role(auth_manager, "op", "cy"))
    report = client.get("/boosts", headers=viewer).json()
    demoted = {r["chunk_id"]: r for r in report["demoted"]}
    assert demoted["c-1"]["down"] == 2 and demoted["c-1"]["up"] == 1
    assert demoted["c-1"]["boost"] == pytest.approx(-0.75) and demoted["c-2"]["boost"] == pytest.approx(-0.25)
    assert 0.5 < demoted["c-1"]["multiplier"] < 1


def test_operators_pin_reset_and_hide_chunks_recorded_with_who_and_why(client, auth_manager, store):
    op, viewer = as_role(auth_manager, "op"), as_role(auth_manager, "viewer")
    pinned = client.post("/chunks/c-9/actions", json={"action": "pin", "boost": 5, "reason": "canonical"}, headers=op)
    assert pinned.status_code == 201 and pinned.json()["actor"] == "op-user"
    assert client.post("/chunks/c-8/actions", json={"action": "hide", "reason": "stale"}, headers=op).status_code == 201
    assert store.chunk_adjustments(["c-8"])["c-8"].hidden
    controlled = {c["chunk_id"]: c for c in client.get("/boosts", headers=op).json()["controlled"]}
    assert controlled["c-9"]["pinned"] == 5 and controlled["c-8"]["hidden"] is True
    assert controlled["c-8"]["history"][0] | {"acted_at": None} == {
        "action": "hide", "boost": None, "actor": "op-user", "reason": "stale", "acted_at": None
    }
    # A viewer may read but not act (under the simple auth manager only op and admin write, and
    # both see internal content); a bad action is refused naming what is wrong.
    refused = client.post("/chunks/c-9/actions", json={"action": "reset", "reason": "mine"}, headers=viewer)
    assert refused.status_code == 403
    assert client.get("/boosts", headers=viewer).status_code == 200
    bad = client.post("/chunks/c-9/actions", json={"action": "pin", "reason": "x", "boost": 1e9}, headers=op)
    assert bad.status_code == 422 and "boost must be a number from -100 to 100" in bad.json()["error"]
    unknown = client.post("/chunks/c-9/actions", json={"action": "promote", "reason": "x"}, headers=op)
    assert unknown.status_code == 422 and unknown.json()["fields"][0]["field"] == "action"
    assert client.post("/chunks/c-9/actions", json={"action": "reset", "reason": "x"}).status_code == 401


def test_curated_hits_are_counted_and_a_down_vote_on_a_hit_reaches_the_curated_answer(client, auth_manager, store):
    admin = as_role(auth_manager, "admin")
    curated = client.post("/runs", json=RUN, headers=admin).json()["run_id"]
    store.set_writeback(curated, doc_id=f"qa:{curated}", collection="C", state="written")
    hit = {**RUN, "question": "How can I rotate an SDK key?", "model": "curated",
           "metadata": {"mode": "curated", "curated": {"run_id": curated, "similarity": 0.95}}}
    hit_id = client.post("/runs", json=hit, headers=admin).json()["run_id"]
    listed = client.get("/curated", headers=admin).json()
    assert listed["count"] == 1 and listed["curated"][0]["run_id"] == curated and listed["curated"][0]["hits"] == 1
    client.post(f"/runs/{hit_id}/feedback", json={"vote": "down", "comment": "wrong now"}, headers=as_role(auth_manager, "op", "dee"))
    curated_run = client.get(f"/runs/{curated}", headers=admin).json()
    assert curated_run["vote_summary"]["down"] == 1
    assert curated_run["votes"][0]["comment"] == f"on curated hit {hit_id}: wrong now"
    bad = {**hit, "metadata": {"curated": {"run_id": "not-a-run", "similarity": 1}}}
    response = client.post("/runs", json=bad, headers=admin)
    assert response.status_code >= 400 and "not-a-run" in response.json()["error"]


def test_the_cli_acts_on_chunks_and_lists_boosts(tmp_path, airflow_db):
    import json

    from conftest import run_cli

    env = {"AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "runs.db")})}
    pinned = run_cli("chunk", "pin", "c-1", "--boost", "3", "--reason", "canonical", "--user", "ops", "--json", env=env)
    assert pinned.returncode == 0, pinned.stderr
    assert json.loads(pinned.stdout) | {"acted_at": None} == {
        "chunk_id": "c-1", "action": "pin", "boost": 3.0, "actor": "ops", "reason": "canonical", "acted_at": None
    }
    assert run_cli("chunk", "hide", "c-2", "--reason", "stale", env=env).returncode == 0
    listed = run_cli("boosts", env=env)
    assert listed.returncode == 0 and "chunk c-2: hidden; hide by cli:" in listed.stdout and "pinned at +3" in listed.stdout
    bad = run_cli("chunk", "pin", "c-1", "--boost", "500", "--reason", "x", env=env)
    assert bad.returncode != 0 and "boost must be a number from -100 to 100" in bad.stderr
