"""The DAGs as users run them: Airflow standalone (what `make airflow` starts: LocalExecutor, every
task in a process of its own under the Task SDK's supervisor), the scheduler making the runs.

A backfill of one date for all three ingest DAGs gives them one run id (`backfill__<date>`), as
the nightly schedule gives them `scheduled__<date>`; each must ingest exactly its own sources,
and the collection must equal a reference made by `dag.test()`. Then a run and a vote recorded
through the runs API trigger the feedback DAG by their asset event, and it writes the answer back.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import run_cli, weaviate_conn_json
from ragloop.weaviate_local import free_port
from test_shared_run_ids import chunk_table, three_source_config

pytestmark = pytest.mark.integration

INGEST_DAGS = ("ragloop_ingest_docs", "ragloop_ingest_slack", "ragloop_ingest_github_issues")
GRADE_DAG = "ragloop_grade_feedback"
NIGHT = "2026-11-30T00:00:00Z"
QUESTION = "How long does an old SDK key keep working after rotation?"


class Api:
    """The standalone's REST API with a token. Nothing is asked twice except one fault named
    below: a hidden retry of any 5xx would pass a test whose server is failing."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.lock_retries: list[str] = []  # every repeated request, for the failure messages

    def __call__(self, method: str, path: str, body: dict | None = None) -> dict:
        # Standalone keeps Airflow's metadata in SQLite: under load a write of the API server (its
        # audit log) can lose the file lock to the scheduler and answer 500 "database is locked"
        # (the standalone fixture exposes the driver's error to tell it apart). Only that 500, and
        # only on an idempotent GET or PATCH, is asked again; any other 5xx fails the test at once.
        attempts = 5 if method in ("GET", "PATCH") else 1
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(
                f"{self.url}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
                headers={"content-type": "application/json", "authorization": f"Bearer {self.token}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as err:
                text = err.read()[:4000]
                if err.code == 500 and b"database is locked" in text and attempt < attempts:
                    self.lock_retries.append(f"{method} {path}")
                    time.sleep(2 * attempt)
                    continue
                raise AssertionError(f"{method} {path}: {err.code} {text[:2000]!r} (retried on a lock before: "
                                     f"{self.lock_retries})") from None
        raise AssertionError("unreachable")


def wait_for(what: str, check, timeout: float, interval: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def task_log_tail(api: Api, dag_id: str, run_id: str) -> str:
    """The logs of a run's failed tasks, for the assertion message."""
    quoted = urllib.parse.quote(run_id, safe="")
    lines = []
    for ti in api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances")["task_instances"]:
        if ti["state"] not in ("success", "skipped"):
            lines.append(f"{ti['task_id']}[{ti['map_index']}]: {ti['state']}")
    return "; ".join(lines)


@pytest.fixture(scope="module")
def standalone(weaviate_server, postgres_server, tmp_path_factory):
    """Airflow standalone on free loopback ports with a state folder, config and run store of its
    own; Weaviate is the session's."""
    folder = tmp_path_factory.mktemp("scheduled")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    api_port = free_port()
    env.update({
        "RAGLOOP_STATE_DIR": str(folder / "state"),
        "RAGLOOP_CONFIG": three_source_config(folder, "ScheduledNight"),
        "AIRFLOW_CONN_WEAVIATE_DEFAULT": weaviate_conn_json(weaviate_server),
        "AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(folder / "runs.db")}),
        # Airflow's metadata on the session's PostgreSQL, as in production: on SQLite the
        # scheduler and the API server lose each other's file lock under load (a 503 "Backfill
        # creation is not supported on SQLite under concurrent access" failed this test).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_server.url("airflow_standalone"),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # The driver's error in a 500's body: Api retries "database is locked" and nothing else.
        "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
    })
    postgres_server.psql('DROP DATABASE IF EXISTS "airflow_standalone" WITH (FORCE)')
    postgres_server.psql('CREATE DATABASE "airflow_standalone"')
    started = run_cli("airflow", "start", "--json", "--timeout", "600", env=env, inherit_env=False, timeout=700)
    try:
        assert started.returncode == 0, started.stderr[-4000:]
        info = json.loads(started.stdout)
        passwords = json.loads((folder / "state" / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        request = urllib.request.Request(
            f"{info['url']}/auth/token", data=json.dumps({"username": "admin", "password": passwords["admin"]}).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            token = json.loads(response.read())["access_token"]
        yield Api(info["url"], token), folder
    finally:
        stopped = run_cli("airflow", "stop", env=env, inherit_env=False, timeout=400)
        assert stopped.returncode == 0, stopped.stderr


def retried_tasks(api: Api, dag_id: str, run_id: str) -> list[str]:
    """The task instances of a run that needed more than one try: a task passing on its retry
    hides a fault (the DAGs retry, the test must not let that pass unseen)."""
    quoted = urllib.parse.quote(run_id, safe="")
    instances = api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=1000")["task_instances"]
    assert instances, f"{dag_id} {run_id}: no task instances"
    return [f"{dag_id} {run_id} {ti['task_id']}[{ti['map_index']}]: try {ti['try_number']}"
            for ti in instances if ti["try_number"] > 1]


def xcom(api: Api, dag_id: str, run_id: str, task_id: str):
    quoted = urllib.parse.quote(run_id, safe="")
    entry = api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/xcomEntries/return_value"
                       "?deserialize=true")
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_the_scheduler_runs_three_ingest_dags_with_one_run_id_then_grades_on_an_event(
    standalone, weaviate_client, airflow_db, tmp_path,
):
    from ragloop.dagrun import run_dag
    from ragloop.index import read_watermarks

    api, _folder = standalone
    wait_for("the DAG processor to parse our DAGs",
             lambda: {d["dag_id"] for d in api("GET", "/api/v2/dags?dag_id_pattern=ragloop")["dags"]} >= {*INGEST_DAGS, GRADE_DAG},
             timeout=180)

    # The reference: each DAG through dag.test() in this process, into a collection of its own.
    reference = three_source_config(tmp_path, "ScheduledReference")
    expected = {dag_id: run_dag(dag_id, {"config": reference}).returns["report"] for dag_id in INGEST_DAGS}

    # One night for all three DAGs at once: a backfill of the same date for each, which the
    # scheduler runs with one run id, `backfill__<date>`, as it runs `scheduled__<date>` nightly.
    # Backfills of paused DAGs stay queued, so they are unpaused first; that may also make each a
    # scheduled run for the last midnight (catchup is off: at most that one), with a run id the
    # three share too, at the same time.
    for dag_id in INGEST_DAGS:
        api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    for dag_id in INGEST_DAGS:
        api("POST", "/api/v2/backfills", {"dag_id": dag_id, "from_date": NIGHT, "to_date": NIGHT, "max_active_runs": 1,
                                          "reprocess_behavior": "none", "run_backwards": False, "dag_run_conf": {}})

    def runs_of_the_night():
        """Every run of the three DAGs once all have ended: the backfill runs, and the scheduled
        run that unpausing sometimes makes for the last midnight (another run id they share)."""
        found = {dag_id: api("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"] for dag_id in INGEST_DAGS}
        ended = all(runs and all(r["state"] in ("success", "failed") for r in runs) for runs in found.values())
        backfilled = all(any(r["run_type"] == "backfill" for r in runs) for runs in found.values())
        return found if ended and backfilled else None

    runs = wait_for("the three backfill runs to finish", runs_of_the_night, timeout=600)
    backfill_ids = {r["dag_run_id"] for dag_runs in runs.values() for r in dag_runs if r["run_type"] == "backfill"}
    assert backfill_ids == {"backfill__2026-11-30T00:00:00+00:00"}, runs
    for dag_id, dag_runs in runs.items():
        for run in dag_runs:
            assert run["state"] == "success", f"{dag_id} {run['dag_run_id']}: {task_log_tail(api, dag_id, run['dag_run_id'])}"
            assert retried_tasks(api, dag_id, run["dag_run_id"]) == []

    # What each run saw and left equals the reference. Whether a document counts as new or
    # unchanged depends on which of two runs of one DAG (backfill and scheduled) wrote it first,
    # so those are compared as their sum.
    def documents(report_source: dict) -> dict:
        counts = dict(report_source["documents"])
        counts["listed"] = counts.pop("new") + counts.pop("changed") + counts.pop("unchanged")
        return counts

    for dag_id, dag_runs in runs.items():
        for run in dag_runs:
            report = xcom(api, dag_id, run["dag_run_id"], "report")
            assert set(report["sources"]) == set(expected[dag_id]["sources"]), report
            for source_id, got in report["sources"].items():
                want = expected[dag_id]["sources"][source_id]
                assert got["documents"]["seen"] > 0 and documents(got) == documents(want), (dag_id, source_id, got, want)
                assert got["prune"] == "done", (dag_id, source_id, got)
                assert got["watermarks"].keys() == want["watermarks"].keys(), (dag_id, source_id)
            assert report["errors"] == [], report["errors"]
            assert report["dag_id"] == dag_id and report["dag_run_id"] == run["dag_run_id"]
    assert chunk_table(weaviate_client, "ScheduledNight") == chunk_table(weaviate_client, "ScheduledReference")
    for source_id in ("docs", "slack", "github"):
        assert read_watermarks(weaviate_client, "ScheduledNight", source_id) == \
            read_watermarks(weaviate_client, "ScheduledReference", source_id)

    # The feedback DAG, triggered by the asset events of a run and a vote recorded through the API.
    # Unpausing it may also make its nightly (01:00) run, which can write the answer back before
    # any asset-triggered run exists (issue 27: `triggered` was empty). So the test waits for the
    # asset-triggered runs themselves below, instead of reading the list once.
    api("PATCH", f"/api/v2/dags/{GRADE_DAG}", {"is_paused": False})
    # The run cites a chunk the index holds, as `ask` records it: grading reads the index's text
    # for its chunk id (a made-up source is vetoed, issue 16).
    from weaviate.classes.query import Filter

    from ragloop.answer import passage_text, prose_sentences
    from ragloop.passages import Passage

    chunks = weaviate_client.collections.use("ScheduledNight").query.fetch_objects(
        filters=Filter.by_property("doc_id").equal("docs:api/authentication-tokens.md"), limit=50).objects
    chunk = next(c for c in chunks if "grace period" in c.properties["text"])
    p = chunk.properties
    passage = passage_text(Passage(p["doc_id"], p["source_id"], p["kind"], p["title"], p["url"], p["heading_path"], p["text"], 1.0,
                               str(chunk.uuid)))
    sentence = next(s for s in prose_sentences(passage) if "grace period" in s).strip().rstrip(".")
    recorded = api("POST", "/ragloop/runs", {
        "question": QUESTION, "answer": f"{sentence} [1].", "app": "support-widget",
        "sources": [{"doc_id": p["doc_id"], "chunk_id": str(chunk.uuid), "title": p["title"], "url": p["url"],
                     "kind": p["kind"], "visibility": p.get("visibility") or "", "text": passage}],
    })
    api("POST", f"/ragloop/runs/{recorded['run_id']}/feedback", {"vote": "up", "user_id": "u1"})

    def written_back():
        run = api("GET", f"/ragloop/runs/{recorded['run_id']}")
        return run if (run.get("writeback") or {}).get("state") == "written" else None

    wait_for("the feedback DAG to write the answer back", written_back, timeout=600)

    def triggered_runs_ended():
        runs = api("GET", f"/api/v2/dags/{GRADE_DAG}/dagRuns")["dag_runs"]
        triggered = [r for r in runs if r["run_type"] == "asset_triggered"]
        return triggered if triggered and all(r["state"] in ("success", "failed") for r in triggered) else None

    # The asset events must have triggered runs, and they must succeed on their first tries.
    triggered = wait_for("the asset-triggered feedback runs to end", triggered_runs_ended, timeout=600)
    for run in triggered:
        assert run["state"] == "success", f"{GRADE_DAG} {run['dag_run_id']}: {task_log_tail(api, GRADE_DAG, run['dag_run_id'])}"
        assert retried_tasks(api, GRADE_DAG, run["dag_run_id"]) == []
    assert f"qa:{recorded['run_id']}" in chunk_table(weaviate_client, "ScheduledNight")
