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
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from airflow_helpers import not_yet, retried_tasks, standalone_airflow, standalone_ports, task_log_tail, wait_for, xcom
from conftest import weaviate_conn_json
from test_shared_run_ids import chunk_table, three_source_config

pytestmark = pytest.mark.integration

INGEST_DAGS = ("ragloop_ingest_docs", "ragloop_ingest_slack", "ragloop_ingest_github_issues")
GRADE_DAG = "ragloop_grade_feedback"
# The night backfilled: its midnight in the standalone's time zone (the ingest DAGs run at midnight there).
NIGHT = (2026, 11, 30)
QUESTION = "How long does an old SDK key keep working after rotation?"
# The longest this module can run: the standalone's start and stop and every wait below, summed.
LONGEST_RUN_HOURS = 1
# A poll (a read-only GET) that gets no answer within Api's 30 s, as a loaded 2-core machine can
# make it, is asked again within its wait's deadline; any HTTP error still fails at once.
POLL_TIMEOUTS = (TimeoutError,)


def timezone_far_from_the_schedules(now: datetime) -> str:
    """A fixed-offset zone in which it is now between 12:00 and 13:00, for Airflow's
    `default_timezone`: the ingest DAGs run at midnight and the feedback DAG at 01:00 *in that
    zone*, so their next scheduled runs are at least 11 hours away and their last ones at least
    11 hours past. With catchup off, Airflow makes a DAG's first scheduled run on unpausing only
    when its last cron time is at most 2.4 hours past (a tenth of the day,
    `CronTriggerTimetable._calc_first_run`), so the feedback DAG, which has no run before its
    asset-triggered ones, gets no scheduled run during this module (it ends within
    LONGEST_RUN_HOURS), whatever the time of day (issue 27: unpausing at 01:xx UTC made a
    scheduled feedback run that wrote the answer back first). The ingest DAGs do get one, at any
    hour: once a DAG has a run (their backfill), catchup off schedules its latest cron time."""
    offset = 12 - now.astimezone(UTC).hour  # -11 .. +12, all real zones
    # The Etc/GMT zones carry POSIX's inverted sign: Etc/GMT-3 is three hours ahead of UTC.
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


@pytest.fixture(scope="module")
def standalone(weaviate_server, postgres_server, tmp_path_factory):
    """Airflow standalone on free loopback ports with a state folder, config and run store of its
    own; Weaviate is the session's."""
    folder = tmp_path_factory.mktemp("scheduled")
    started_at = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "RAGLOOP_STATE_DIR": str(folder / "state"),
        "RAGLOOP_CONFIG": three_source_config(folder, "ScheduledNight"),
        "AIRFLOW_CONN_WEAVIATE_DEFAULT": weaviate_conn_json(weaviate_server),
        "AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(folder / "runs.db")}),
        # Airflow's metadata on the session's PostgreSQL, as in production: on SQLite the
        # scheduler and the API server lose each other's file lock under load (a 503 "Backfill
        # creation is not supported on SQLite under concurrent access" failed this test).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_server.url("airflow_standalone"),
        **standalone_ports(),
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # The driver's error in a 500's body: Api retries "database is locked" and nothing else.
        "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
        # A task's supervisor waits this long for the execution API: its 5 s default made every
        # `settings` task fail its first try at load 25 (httpx.ReadTimeout), as in test_showcase.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        # No scheduled feedback run during the module (see the function).
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": (zone := timezone_far_from_the_schedules(datetime.now(UTC))),
    })
    postgres_server.psql('DROP DATABASE IF EXISTS "airflow_standalone" WITH (FORCE)')
    postgres_server.psql('CREATE DATABASE "airflow_standalone"')
    with standalone_airflow(env, folder / "state", timeout=600) as api:
        yield api, zone
    # The bound timezone_far_from_the_schedules relies on.
    assert time.monotonic() - started_at < LONGEST_RUN_HOURS * 3600


# The DAGs' timetables as the scheduler holds them, parsed under a given default_timezone.
SERIALIZED_TIMETABLES = """
import json
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.encoders import encode_timetable
bag = DagBag(dag_folder="dags")
assert not bag.import_errors, bag.import_errors
print(json.dumps({dag_id: encode_timetable(dag.timetable) for dag_id, dag in bag.dags.items()}, default=str))
"""


def cron_timetables(encoded: dict) -> list[dict]:
    """The cron parts of the encoded timetables (the feedback DAG's is inside its asset-or-time
    schedule), to be edited in place."""
    found = []
    for timetable in encoded.values():
        body = timetable.get("__var", timetable)
        if isinstance(body.get("timetable"), dict):
            body = body["timetable"].get("__var", body["timetable"])
        if "expression" in body:
            found.append(body)
    return found


def test_no_scheduled_run_is_due_in_the_chosen_time_zone_at_any_hour(monkeypatch):
    """The guarantee of timezone_far_from_the_schedules, on a fake clock. The real DAG files,
    parsed in a child process with a `default_timezone`, take it for their schedules; then, for
    every hour and minute of a day, with the zone chosen at that time, the scheduler's own
    timetable code (catchup off, no earlier run: a fresh standalone) has no run of any DAG due
    within LONGEST_RUN_HOURS."""
    import subprocess
    import sys
    from datetime import timedelta

    import airflow.timetables.trigger
    from airflow.serialization.decoders import decode_timetable
    from airflow.timetables.base import TimeRestriction
    from pendulum import instance

    from conftest import REPO

    probe_zone = "Etc/GMT-5"
    parsed = subprocess.run([sys.executable, "-c", SERIALIZED_TIMETABLES], capture_output=True, text=True, timeout=300,
                            cwd=REPO, env={**os.environ, "AIRFLOW__CORE__DEFAULT_TIMEZONE": probe_zone})
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    timetables = json.loads(parsed.stdout.strip().splitlines()[-1])
    crons = cron_timetables(timetables)
    assert {c["expression"] for c in crons} == {"0 0 * * *", "0 1 * * *"}, crons
    assert {c["timezone"] for c in crons} == {probe_zone}, crons

    restriction = TimeRestriction(earliest=None, latest=None, catchup=False)
    for minute_of_day in range(0, 24 * 60, 7):
        now = datetime(2026, 12, 4, tzinfo=UTC) + timedelta(minutes=minute_of_day)
        zone = timezone_far_from_the_schedules(now)
        for cron in crons:
            cron["timezone"] = zone
        monkeypatch.setattr(airflow.timetables.trigger, "utcnow", lambda now=now: instance(now))
        for dag_id, encoded in timetables.items():
            info = decode_timetable(encoded).next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
            if info is None:  # the check DAG: no schedule
                continue
            assert info.run_after - now > timedelta(hours=LONGEST_RUN_HOURS), (
                f"{dag_id} at {now:%H:%M} UTC in {zone}: a scheduled run is due at {info.run_after}")


def test_the_scheduler_runs_three_ingest_dags_with_one_run_id_then_grades_on_an_event(
    standalone, weaviate_client, airflow_db, tmp_path,
):
    from ragloop.airflow.dagrun import run_dag
    from ragloop.index import read_watermarks

    api, zone = standalone
    night = datetime(*NIGHT, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    wait_for("the DAG processor to parse our DAGs",
             lambda: {d["dag_id"] for d in api("GET", "/api/v2/dags?dag_id_pattern=ragloop")["dags"]} >= {*INGEST_DAGS, GRADE_DAG},
             timeout=180, slow=POLL_TIMEOUTS)

    # The reference: each DAG through dag.test() in this process, into a collection of its own.
    reference = three_source_config(tmp_path, "ScheduledReference")
    expected = {dag_id: run_dag(dag_id, {"config": reference}).returns["report"] for dag_id in INGEST_DAGS}

    # One night for all three DAGs at once: a backfill of the same date for each, which the
    # scheduler runs with one run id, `backfill__<date>`, as it runs `scheduled__<date>` nightly.
    # Backfills of paused DAGs stay queued, so they are unpaused first. Once a DAG has its backfill
    # run, catchup off also schedules its latest midnight (seen at every hour: Airflow's
    # next-run rule with an earlier run), a run id the three share too, so each DAG may have that
    # one scheduled run beside its backfill.
    for dag_id in INGEST_DAGS:
        api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    for dag_id in INGEST_DAGS:
        api("POST", "/api/v2/backfills", {"dag_id": dag_id, "from_date": night.isoformat(), "to_date": night.isoformat(),
                                          "max_active_runs": 1,
                                          "reprocess_behavior": "none", "run_backwards": False, "dag_run_conf": {}})

    def runs_of_the_night():
        """Every run of the three DAGs, once each has a backfill run and all have ended."""
        found = {dag_id: api("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"] for dag_id in INGEST_DAGS}
        ended = all(runs and all(r["state"] in ("success", "failed") for r in runs) for runs in found.values())
        backfilled = all(any(r["run_type"] == "backfill" for r in runs) for runs in found.values())
        return found if ended and backfilled else not_yet(
            {dag_id: [(r["run_type"], r["dag_run_id"], r["state"]) for r in runs] for dag_id, runs in found.items()})

    runs = wait_for("the three backfill runs to finish", runs_of_the_night, timeout=900, slow=POLL_TIMEOUTS)
    backfill_ids = {r["dag_run_id"] for dag_runs in runs.values() for r in dag_runs if r["run_type"] == "backfill"}
    assert backfill_ids == {f"backfill__{night.isoformat()}"}, runs
    for dag_id, dag_runs in runs.items():
        assert {r["run_type"] for r in dag_runs} <= {"backfill", "scheduled"} and len(dag_runs) <= 2, (dag_id, dag_runs)
        for run in dag_runs:
            assert run["state"] == "success", f"{dag_id} {run['dag_run_id']}: {task_log_tail(api, dag_id, run['dag_run_id'])}"
            assert retried_tasks(api, dag_id, run["dag_run_id"]) == []

    # Whether a document counts as new or unchanged depends on which of two runs of one DAG
    # (backfill and scheduled) wrote it first, so those are compared as their sum.
    def documents(report_source: dict) -> dict:
        counts = dict(report_source["documents"])
        counts["listed"] = counts.pop("new") + counts.pop("changed") + counts.pop("unchanged")
        return counts

    # What each run saw and left equals the reference.
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
    # Unpausing it makes no scheduled (01:00) run: the standalone's time zone puts 01:00 far
    # from now (before, a scheduled run could write the answer back first, issue 27).
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

    wait_for("the feedback DAG to write the answer back", written_back, timeout=600, slow=POLL_TIMEOUTS)

    def feedback_runs_ended():
        runs = api("GET", f"/api/v2/dags/{GRADE_DAG}/dagRuns")["dag_runs"]
        return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else not_yet(
            [(r["run_type"], r["dag_run_id"], r["state"]) for r in runs])

    # Only asset-triggered runs (no scheduled one), each a success on its first tries, and one of
    # them is the run that wrote the answer back (its write_back task's result counts it).
    feedback_runs = wait_for("the feedback runs to end", feedback_runs_ended, timeout=600, slow=POLL_TIMEOUTS)
    assert [r["run_type"] for r in feedback_runs] == ["asset_triggered"] * len(feedback_runs), \
        [(r["run_type"], r["dag_run_id"]) for r in feedback_runs]
    for run in feedback_runs:
        assert run["state"] == "success", f"{GRADE_DAG} {run['dag_run_id']}: {task_log_tail(api, GRADE_DAG, run['dag_run_id'])}"
        assert retried_tasks(api, GRADE_DAG, run["dag_run_id"]) == []
    written = {run["dag_run_id"]: xcom(api, GRADE_DAG, run["dag_run_id"], "write_back")["written"] for run in feedback_runs}
    assert sum(written.values()) == 1, written
    assert f"qa:{recorded['run_id']}" in chunk_table(weaviate_client, "ScheduledNight")
