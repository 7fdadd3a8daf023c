"""The runs and feedback API (plugins/ragloop_plugin.py → ragloop.airflow.runs_api) under FastAPI's test
client with Airflow's real auth manager and metadata DB: bearer tokens as Airflow's REST API takes
them, validation errors naming the field, 503 with nothing written when the store is locked, and
the `ragloop://runs` asset event. Every test taking `store` or `api` runs on SQLite and on a real
PostgreSQL (the production store). One request through a running Airflow is in
test_airflow_standalone.py."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, UTC

import pytest
import sqlalchemy as sa

from airflow_helpers import token_for
from ragloop.airflow.assets import runs_asset
from ragloop.runs import RunStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(runs_db_url):
    with RunStore(runs_db_url, connect_timeout=0.3) as store:
        yield store


@pytest.fixture
def api(store, auth_manager):
    from fastapi.testclient import TestClient

    from ragloop.airflow.runs_api import create_app

    with TestClient(create_app(lambda: store, max_body_bytes=20_000), base_url="http://127.0.0.1") as client:
        client.headers["authorization"] = f"Bearer {token_for(auth_manager, 'admin')}"
        yield client


def runs_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            sa.select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == runs_asset().uri)
        ).all()
        return [dict(row.extra) for row in rows]


RUN = {
    "question": "How do I rotate an SDK key?",
    "answer": "Create a new key, deploy it, then revoke the old one [1].",
    "sources": [{"doc_id": "docs:api/authentication-tokens.md", "chunk_id": "c-1", "url": "https://docs.fernwood.example/api",
                 "title": "Authentication tokens", "score": 0.82, "text": "Old keys keep working for 24 hours."}],
    "model": "gpt-4o-mini", "prompt_name": "answer", "prompt_version": "1",
    "prompt_tokens": 812, "completion_tokens": 41, "token_source": "api", "latency_ms": 1840.0,
    "app": "support-widget", "user_id": "opaque-42",
}


def test_record_vote_read_and_asset_events(api, store):
    events_before = len(runs_events())
    created = api.post("/runs", json=RUN)
    assert created.status_code == 201, created.text
    run_id = created.json()["run_id"]
    again = api.post("/runs", json={**RUN, "run_id": run_id})
    assert again.status_code == 200 and again.json() == {"run_id": run_id, "created": False}

    vote = api.post(f"/runs/{run_id}/feedback", json={"vote": "down", "user_id": "opaque-42", "comment": "old key info is wrong"})
    assert vote.status_code == 201, vote.text
    assert vote.json()["vote_summary"] == {"up": 0, "down": 1, "votes": 1}

    run = api.get(f"/runs/{run_id}").json()
    assert run["question"] == RUN["question"] and run["app"] == "support-widget"
    assert run["sources"][0]["text"] == "Old keys keep working for 24 hours."
    assert [v["comment"] for v in run["votes"]] == ["old key info is wrong"]
    assert run["grades"] == [] and run["writeback"] is None

    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    listed = api.get("/runs", params={"since": since, "limit": 10}).json()
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    assert api.get("/runs", params={"since": "2999-01-01T00:00:00Z"}).json()["count"] == 0

    events = runs_events()[events_before:]
    assert {"event": "run", "run_id": run_id, "app": "support-widget"} in events
    assert {"event": "vote", "run_id": run_id, "vote": "down"} in events
    assert len(events) == 2  # the repeated POST recorded nothing and emitted nothing


@pytest.mark.parametrize("header", [None, "Bearer not-a-jwt", "Basic YWRtaW46YWRtaW4=", "Bearer "])
def test_missing_or_wrong_credentials_get_401(api, store, header):
    headers = {"authorization": header} if header is not None else {}
    client_headers = dict(api.headers)
    api.headers.pop("authorization")
    try:
        response = api.post("/runs", json=RUN, headers=headers)
        listing = api.get("/runs", headers=headers)
    finally:
        api.headers.update(client_headers)
    assert response.status_code == 401 and listing.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["error"]
    assert store.count_runs() == 0


def test_a_token_from_another_secret_or_an_expired_one_gets_401(api, auth_manager, store):
    import jwt

    forged = jwt.encode({"sub": "admin", "role": "admin", "exp": 4102444800}, "another-secret-" + "f" * 64, algorithm="HS512")
    expired = auth_manager.generate_jwt(
        __import__("airflow.api_fastapi.auth.managers.simple.user", fromlist=["x"]).SimpleAuthManagerUser(username="a", role="admin"),
        expiration_time_in_seconds=-10,
    )
    for token in (forged, expired):
        assert api.post("/runs", json=RUN, headers={"authorization": f"Bearer {token}"}).status_code == 401
    assert store.count_runs() == 0


def test_a_viewer_may_read_but_not_record(api, auth_manager, store):
    viewer = {"authorization": f"Bearer {token_for(auth_manager, 'viewer')}"}
    assert api.get("/runs", headers=viewer).status_code == 200
    refused = api.post("/runs", json=RUN, headers=viewer)
    assert refused.status_code == 403 and "may not record runs" in refused.json()["error"]
    assert store.count_runs() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in RUN.items() if k != "question"}, "question"),
        ({**RUN, "prompt_tokens": "lots"}, "prompt_tokens"),
        ({**RUN, "sources": [{"title": "no doc id"}]}, "sources.0.doc_id"),
        ({**RUN, "question": "hidden\x1b[2Jtext"}, "question"),
        ({**RUN, "user_id": "u" * 201}, "user_id"),
        ({**RUN, "run_id": "../../etc"}, "run_id"),
        ({**RUN, "colour": "blue"}, "colour"),
    ],
    ids=["missing", "wrong-type", "nested-missing", "control-characters", "too-long", "bad-id", "unknown-field"],
)
def test_invalid_runs_get_4xx_json_naming_the_field(api, store, body, field):
    response = api.post("/runs", json=body)
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["fields"]], response.json()
    assert store.count_runs() == 0


def test_bad_votes_and_unknown_runs(api, store):
    run_id = api.post("/runs", json=RUN).json()["run_id"]
    wrong = api.post(f"/runs/{run_id}/feedback", json={"vote": "meh"})
    assert wrong.status_code == 422 and wrong.json()["fields"][0]["field"] == "vote"
    missing = api.post("/runs/no-such-run/feedback", json={"vote": "up"})
    assert missing.status_code == 404 and missing.json()["fields"] == [{"field": "run_id", "message": "no such run"}]
    assert api.get("/runs/no-such-run").status_code == 404
    assert api.get("/runs", params={"limit": 0}).json()["fields"][0]["field"] == "limit"
    assert api.get("/runs", params={"since": "yesterday"}).json()["fields"][0]["field"] == "since"


def test_too_large_bodies_get_413_with_or_without_content_length(api, store):
    big = {**RUN, "answer": "x" * 30_000}
    response = api.post("/runs", json=big)
    assert response.status_code == 413 and "larger than 20000 bytes" in response.json()["error"]

    def chunks():
        payload = ('{"question": "q", "answer": "' + "y" * 30_000 + '"}').encode()
        for start in range(0, len(payload), 4096):
            yield payload[start:start + 4096]

    streamed = api.post("/runs", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert store.count_runs() == 0


def test_a_locked_database_gives_503_and_nothing_half_written(api, store):
    if store.url.get_backend_name() != "sqlite":
        pytest.skip("a SQLite file lock; Postgres outages are drill 5 of bench/drills.py (docs/testing.md)")
    first = api.post("/runs", json=RUN).json()["run_id"]
    events_before = len(runs_events())
    locker = sqlite3.connect(store.url.database, timeout=1)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        run = {**RUN, "run_id": "during-outage", "votes": [{"vote": "up", "user_id": "x"}]}
        response = api.post("/runs", json=run)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert "nothing was written" in response.json()["error"]
        assert api.post(f"/runs/{first}/feedback", json={"vote": "up"}).status_code == 503
    finally:
        locker.rollback()
        locker.close()
    assert store.count_runs() == 1
    assert store.get_run(first)["votes"] == []
    assert len(runs_events()) == events_before  # no event for what was not recorded
    retried = api.post("/runs", json={**RUN, "run_id": "during-outage", "votes": [{"vote": "up", "user_id": "x"}]})
    assert retried.status_code == 201 and len(store.get_run("during-outage")["votes"]) == 1


def test_events_reach_the_asset_the_grading_dag_consumes_even_over_a_stale_registration(airflow_db):
    """An earlier build registered `ragloop://runs` un-normalized and active; active asset names
    are unique, so that row gives way instead of every event failing."""
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session

    from ragloop.airflow.events import emit_runs_event
    from ragloop.runs import RUNS_ASSET_NAME

    with create_session() as session:
        for row in session.scalars(sa.select(AssetActive).where(AssetActive.name == RUNS_ASSET_NAME)).all():
            session.delete(row)
        session.flush()
        stale = session.scalar(sa.select(AssetModel).where(AssetModel.uri == "ragloop://runs"))
        if stale is None:
            stale = AssetModel(name=RUNS_ASSET_NAME, uri="ragloop://runs", group="ragloop")
            session.add(stale)
            session.flush()
        session.add(AssetActive.for_asset(stale))
    before = len(runs_events())
    assert emit_runs_event({"event": "probe"}) and emit_runs_event({"event": "probe"})
    assert runs_events()[before:] == [{"event": "probe"}, {"event": "probe"}]
    with create_session() as session:
        active = session.scalars(sa.select(AssetActive).where(AssetActive.name == RUNS_ASSET_NAME)).all()
        assert [(a.name, a.uri) for a in active] == [(RUNS_ASSET_NAME, runs_asset().uri)]


# --- issue 16: nothing crafted gets in, and nobody votes as someone else ------------------------------


def test_metadata_nested_300_deep_is_refused_at_the_door_and_reads_keep_working(api, store, drill):
    nested: dict = {}
    for _ in range(300):
        nested = {"a": nested}
    response = api.post("/runs", json={**RUN, "metadata": nested})
    drill("API: metadata nested 300 deep", "422 metadata, nothing stored",
          f"{response.status_code} {','.join(f['field'] for f in response.json().get('fields', []))}, "
          f"{'nothing' if store.count_runs() == 0 else 'a run'} stored")
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == ["metadata"]
    assert "nested deeper than 10 levels" in response.json()["error"]
    assert store.count_runs() == 0
    wide = api.post("/runs", json={**RUN, "metadata": {"k": ["x"] * 3000}})
    assert wide.status_code == 422 and "more than 2000 values" in wide.json()["error"]
    assert api.post("/runs", json={**RUN, "metadata": {"ticket": {"id": 7, "tags": ["a", "b"]}}}).status_code == 201
    assert api.get("/runs").status_code == 200


def test_concurrent_posts_of_one_run_id_record_it_once_and_answer_json(api, store, drill):
    from concurrent.futures import ThreadPoolExecutor

    body = {**RUN, "run_id": "same-id"}
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: api.post("/runs", json=body), range(12)))
    codes = sorted(r.status_code for r in responses)
    drill("API: 12 concurrent POST /runs with one run_id", "one 201, eleven 200 created false",
          f"{'one' if codes.count(201) == 1 else codes.count(201)} 201, "
          f"{'eleven' if codes.count(200) == 11 else codes.count(200)} 200 created false"
          + ("" if set(codes) <= {200, 201} else f", others {codes}"))
    assert codes == [200] * 11 + [201], [r.text for r in responses]
    assert all(r.json() == {"run_id": "same-id", "created": r.status_code == 201} for r in responses)
    assert store.count_runs() == 1


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_the_docs_and_the_schema_need_a_token(api, path, drill):
    assert api.get(path).status_code == 200
    refused = api.get(path, headers={"authorization": ""})
    leaked = "/runs/{run_id}" in refused.text or "swagger" in refused.text.lower() or "redoc" in refused.text.lower()
    assert drill("API: the docs and the schema (/docs, /redoc, /openapi.json) without a token", "401, no schema in the body",
                 f"{refused.status_code}, {'the schema' if leaked else 'no schema'} in the body") == "401, no schema in the body"


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("post", "/runs", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("post", "/runs", {"json": {"colour": "blue"}}),
    ("post", "/runs/..bad../feedback", {"json": {"vote": "meh"}}),
    ("get", "/runs", {"params": {"limit": 0}}),
    ("get", "/runs/..bad..", {}),
    ("post", "/runs", {"content": b"x" * 30_000, "headers": {"content-type": "application/json"}}),
], ids=["bad-json", "bad-field", "bad-vote", "bad-query", "bad-path", "too-large"])
def test_an_unauthenticated_bad_request_gets_401_not_422(api, store, method, path, kwargs, drill):
    headers = {**kwargs.pop("headers", {}), "authorization": ""}
    response = getattr(api, method)(path, headers=headers, **kwargs)
    field_named = "fields" in response.text
    drill("API: a malformed request without a token (bad JSON, field, vote, query, path; too large)",
          "401, no field named, nothing stored",
          f"{response.status_code}, {'a field named' if field_named else 'no field named'}, "
          f"{'nothing' if store.count_runs() == 0 else 'something'} stored")
    assert response.status_code == 401, response.text
    assert not field_named and store.count_runs() == 0


def test_votes_belong_to_the_token_unless_the_app_may_record_for_its_users(api, auth_manager, store, drill):
    from datetime import datetime

    run_id = api.post("/runs", json=RUN).json()["run_id"]
    op = {"authorization": f"Bearer {token_for(auth_manager, 'op')}"}
    # An op user cannot vote as someone else, nor outvote a later vote with a date in 2100.
    dated = {"vote": "up", "user_id": "ceo", "created_at": "2100-01-01T00:00:00Z"}
    assert api.post(f"/runs/{run_id}/feedback", json=dated, headers=op).status_code == 201
    later = api.post(f"/runs/{run_id}/feedback", json={"vote": "down"}, headers=op)
    assert later.json()["vote_summary"] == {"up": 0, "down": 1, "votes": 2}
    # The admin app records for its end user: the vote names both.
    app_vote = api.post(f"/runs/{run_id}/feedback", json={"vote": "up", "user_id": "end-user-7"})
    assert app_vote.status_code == 201
    votes = store.get_run(run_id)["votes"]
    drill("API: op user votes with user_id 'ceo'", "vote stored as op-user", f"vote stored as {votes[0]['user_id']}")
    drill("API: admin app votes for end-user-7", "end-user-7 recorded by admin-user",
          f"{votes[2]['user_id']} recorded by {votes[2]['recorded_by']}")
    assert [(v["user_id"], v["recorded_by"]) for v in votes] == [("op-user", None), ("op-user", None),
                                                                  ("end-user-7", "admin-user")]
    assert votes[0]["created_at"].startswith("2100") and datetime.fromisoformat(votes[0]["recorded_at"]) < datetime.now(UTC)
    # Votes inside a posted run are the op user's too.
    posted = api.post("/runs", json={**RUN, "votes": [{"vote": "up", "user_id": "ceo"}]}, headers=op).json()["run_id"]
    assert [v["user_id"] for v in store.get_run(posted)["votes"]] == ["op-user"]
    assert store.get_run(posted)["user_id"] == "op-user"


def test_a_public_reader_never_sees_runs_that_retrieved_internal_passages(api, auth_manager, store, drill):
    public_source = {**RUN["sources"][0], "visibility": "public"}
    slack_source = {"doc_id": "slack:C1/1.0", "chunk_id": "c-2", "kind": "slack", "visibility": "internal",
                    "text": "internal thread: the staging password rotates on Fridays"}
    public_run = api.post("/runs", json={**RUN, "sources": [public_source]}).json()["run_id"]
    internal_run = api.post("/runs", json={**RUN, "sources": [public_source, slack_source]}).json()["run_id"]
    unlabelled_run = api.post("/runs", json=RUN).json()["run_id"]  # visibility not said: internal
    viewer = {"authorization": f"Bearer {token_for(auth_manager, 'viewer')}"}
    assert [r["run_id"] for r in api.get("/runs", headers=viewer).json()["runs"]] == [public_run]
    refused = api.get(f"/runs/{internal_run}", headers=viewer)
    assert drill("API: viewer reads a run that retrieved a Slack passage", "404, the passage not in the body",
                 f"{refused.status_code}, the passage {'IN' if 'staging password' in refused.text else 'not in'} the body") \
        == "404, the passage not in the body"
    assert api.get(f"/runs/{unlabelled_run}", headers=viewer).status_code == 404
    assert api.get(f"/runs/{public_run}", headers=viewer).status_code == 200
    assert {r["run_id"] for r in api.get("/runs").json()["runs"]} == {public_run, internal_run, unlabelled_run}  # admin


def test_a_deep_record_stored_before_the_bounds_does_not_break_the_listing(api, store, drill):
    """The same fault elsewhere: a run stored with deep metadata (by an older release, or an
    import) made GET /runs answer 500 for everyone through FastAPI's recursive encoder."""
    import json as json_module

    run_id = api.post("/runs", json=RUN).json()["run_id"]
    nested: dict = {}
    for _ in range(300):
        nested = {"a": nested}
    with store.engine.begin() as connection:
        connection.execute(sa.text("update ragloop_runs set metadata = :m where run_id = :id"),
                           {"m": json_module.dumps(nested), "id": run_id})
    listing = api.get("/runs")
    listed = [r["run_id"] for r in listing.json().get("runs", [])] if listing.status_code == 200 else []
    drill("API: GET /runs with a stored run 300 levels deep", "200, the run listed",
          f"{listing.status_code}, the run {'listed' if listed == [run_id] else 'missing'}")
    assert listing.status_code == 200 and listing.json()["count"] == 1
    assert api.get(f"/runs/{run_id}").status_code == 200


def test_mounted_under_a_prefix_only_health_is_open(store):
    """As the plugin mounts it on Airflow's API server (under /ragloop)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ragloop.airflow.runs_api import create_app

    outer = FastAPI()
    outer.mount("/ragloop", create_app(lambda: store))
    with TestClient(outer, base_url="http://127.0.0.1") as client:
        assert client.get("/ragloop/health").status_code == 200
        assert [client.get(f"/ragloop{path}").status_code for path in ("/runs", "/docs", "/openapi.json")] == [401] * 3
