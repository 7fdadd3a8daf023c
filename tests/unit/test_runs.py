"""The run store on a real SQLite file and a real PostgreSQL database (every test taking `db_url`
or `store` runs on both): migrations, runs, votes, import; and the contextvars recorder."""

from __future__ import annotations

import asyncio
import contextvars
import json
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from conftest import REPO
from ragloop.runs import (
    SCHEMA_VERSION, RetrievedSource, RunIn, RunNotFound, RunRecorder, RunStore, VoteIn, active_recorder, record_run,
)
from datetime import UTC


@pytest.fixture
def db_url(runs_db_url):
    return runs_db_url


@pytest.fixture
def store(db_url):
    with RunStore(db_url) as store:
        yield store


def a_run(question="How do I rotate an SDK key?", **extra) -> RunIn:
    return RunIn(question=question, answer="Rotate it in the console [1].",
                 sources=[RetrievedSource(doc_id="docs:api/authentication-tokens.md", chunk_id="c1", score=0.8, text="Keys rotate.")],
                 model="gpt-test", prompt_name="answer", prompt_version="1", prompt_tokens=120, completion_tokens=12,
                 token_source="api", latency_ms=812.5, **extra)


def test_schema_is_created_by_versioned_migrations_once(db_url):
    with RunStore(db_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
    with RunStore(db_url) as store:  # a second open applies nothing again
        store.migrate()
        with store.engine.connect() as connection:
            rows = connection.execute(sa.text("select version, description from ragloop_schema")).all()
            tables = set(sa.inspect(connection).get_table_names())
    from ragloop.runs.schema import MIGRATIONS

    assert [r.version for r in rows] == [version for version, _, _ in MIGRATIONS] == [1, 2, 3, 4, 5]
    assert {
        "ragloop_runs",
        "ragloop_votes",
        "ragloop_grades",
        "ragloop_writebacks",
        "ragloop_grading_failures",
        "ragloop_reports",
    } <= tables


def test_a_version_1_store_is_upgraded_in_place_and_keeps_its_votes(db_url):
    from ragloop.runs import schema
    from ragloop.runs.store import _now

    with RunStore(db_url) as store, store.engine.begin() as connection:  # as the first release left it: migration 1
        schema.SCHEMA_TABLE.create(connection)
        schema._migration_1(connection)
        connection.execute(sa.insert(schema.SCHEMA_TABLE).values(version=1, description="v1", applied_at=_now()))
        connection.execute(sa.text(
            "insert into ragloop_runs (run_id, created_at, recorded_at, app, question, rewrites, sources, answer, model, "
            "prompt_name, prompt_version, token_source, metadata) values ('old', '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00', 'cli', 'q', '[]', '[{\"chunk_id\": \"c-1\", \"doc_id\": \"d\", \"kind\": \"docs\", \"title\": \"t\"}]', "
            "'a [1].', 'm', '', '', 'none', '{}')"))
        connection.execute(sa.text(
            "insert into ragloop_votes (run_id, user_id, vote, created_at) values ('old', 'u', 'down', '2026-01-02 00:00:00')"))
    with RunStore(db_url) as store:
        assert store.schema_version() == SCHEMA_VERSION == 5  # every migration applied
        run = store.get_run("old")
        assert run["vote_summary"] == {"up": 0, "down": 1, "votes": 1}
        # Migration 5's data step: the vote cast before boosts existed moves the chunk it judged.
        assert [(r["chunk_id"], r["down"]) for r in store.boost_report()["demoted"]] == [("c-1", 1)]
        with store.engine.connect() as connection:
            assert str(connection.scalar(sa.text("select recorded_at from ragloop_votes"))).startswith("2026-01-02")


def test_a_newer_schema_is_refused(db_url):
    with RunStore(db_url) as store:
        store.migrate()
        with store.engine.begin() as connection:
            connection.execute(sa.text("insert into ragloop_schema values (99, 'from the future', '2030-01-01')"))
    with RunStore(db_url) as store, pytest.raises(Exception, match="schema version 99, newer than this ragloop"):
        store.migrate()


def test_run_round_trip_and_latest_vote_per_user_counts(store):
    run_id, created = store.record_run(a_run(user_id="u-1", app="docs-bot"))
    assert created
    assert store.record_run(a_run(run_id=run_id)) == (run_id, False)  # idempotent by id
    store.add_vote(run_id, VoteIn(vote="up", user_id="alice"))
    store.add_vote(run_id, VoteIn(vote="up", user_id="bob", comment="spot on"))
    store.add_vote(run_id, VoteIn(vote="down", user_id="alice", comment="actually no"))  # alice changes her mind
    run = store.get_run(run_id)
    assert run["question"] == "How do I rotate an SDK key?" and run["app"] == "docs-bot"
    assert run["sources"][0]["doc_id"] == "docs:api/authentication-tokens.md" and run["sources"][0]["text"] == "Keys rotate."
    assert (run["prompt_tokens"], run["completion_tokens"], run["token_source"]) == (120, 12, "api")
    assert [v["vote"] for v in run["votes"]] == ["up", "up", "down"]
    assert run["vote_summary"] == {"up": 1, "down": 1, "votes": 3}
    assert run["grades"] == [] and run["writeback"] is None
    assert store.add_vote(run_id, VoteIn(vote="up", user_id="carol"))[1] == {"up": 2, "down": 1, "votes": 4}
    with pytest.raises(RunNotFound):
        store.add_vote("no-such-run", VoteIn(vote="up"))


def test_since_without_a_zone_means_utc(store):
    from datetime import datetime

    store.record_run(a_run(run_id="early", created_at=datetime(2026, 11, 1, 9, 0, tzinfo=UTC)))
    store.record_run(a_run(run_id="late", created_at=datetime(2026, 11, 1, 11, 0, tzinfo=UTC)))
    naive = [r["run_id"] for r in store.list_runs(since=datetime(2026, 11, 1, 10, 0))]
    aware = [r["run_id"] for r in store.list_runs(since=datetime(2026, 11, 1, 10, 0, tzinfo=UTC))]
    assert naive == aware == ["late"]


def test_runs_survive_a_process_restart(db_url):
    code = (
        "import sys; sys.path.insert(0, 'include')\n"
        "from ragloop.runs import RunRecorder, record_run\n"
        f"with RunRecorder(app='child', store_url={db_url!r}) as r:\n"
        "    print(record_run({'question': 'from another process', 'answer': 'yes'}))\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert child.returncode == 0, child.stderr
    run_id = child.stdout.strip().splitlines()[-1]
    with RunStore(db_url) as store:
        assert store.get_run(run_id)["question"] == "from another process"
        assert store.get_run(run_id)["app"] == "child"


def test_import_reports_bad_lines_and_imports_the_rest_once(store, tmp_path):
    good = {"run_id": "imp-1", "question": "q1", "answer": "a1", "created_at": "2026-11-01T10:00:00Z",
            "votes": [{"vote": "up", "user_id": "u", "created_at": "2026-11-01T10:05:00Z"},
                      {"vote": "down", "user_id": "v", "comment": "no time given"}]}
    no_id = {"question": "q3", "answer": "a3", "created_at": "2026-11-02T09:00:00+01:00"}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"run_id": "imp-2", "question": "q2", "created_at": "2026-11-01T11:00:00Z", "prompt_tokens": "many"}),
        "",
        json.dumps({"run_id": "imp-4", "question": "", "created_at": "2026-11-01T11:00:00Z"}),
        json.dumps(no_id),
        json.dumps({"run_id": "imp-5", "question": "q5", "created_at": "2026-11-01T11:00:00Z",
                    "sources": [{"doc_id": "d", "text": "bell\x07"}]}),
    ]
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n")

    report = store.import_jsonl(path)
    assert (report.imported, report.already_present, report.votes_added) == (2, 0, 2)
    errors = {(e["line"], e["field"]) for e in report.errors}
    assert errors == {(2, "(line)"), (3, "prompt_tokens"), (5, "question"), (7, "sources.0.text")}, report.errors
    assert "control character" in next(e["message"] for e in report.errors if e["line"] == 7)
    assert store.get_run("imp-1")["created_at"].startswith("2026-11-01T10:00:00")
    assert store.count_runs() == 2

    again = store.import_jsonl(path)  # the same file again: nothing twice
    assert (again.imported, again.already_present, again.votes_added) == (0, 2, 0)
    assert store.count_runs() == 2
    assert len(store.get_run("imp-1")["votes"]) == 2


# --- the recorder -------------------------------------------------------------------------------

def question(text: str) -> dict:
    return {"question": text, "answer": "an answer"}


def questions_in(store, app: str) -> list[str]:
    return sorted(r["question"] for r in store.list_runs(limit=100, app=app))


def test_outside_any_recorder_nothing_is_recorded(store):
    assert active_recorder() is None
    assert record_run(question("nobody listens")) is None
    assert store.count_runs() == 0


def test_a_recorder_tells_on_recorded_of_each_run_it_stored(store):
    # How `ragloop ask` emits the runs asset event (ragloop.airflow.events) without the core
    # importing Airflow: the recorder calls what it is handed, and only for runs it stored.
    told: list[dict] = []
    with RunRecorder(app="cli", store=store, on_recorded=told.append):
        run_id = record_run(question("told"))
    assert told == [{"run_id": run_id, "app": "cli", "event": "run"}]


def test_nested_recorders_stack(store):
    with RunRecorder(app="outer", store=store) as outer:
        record_run(question("outer 1"))
        with RunRecorder(app="inner", store=store) as inner:
            assert active_recorder() is inner
            record_run(question("inner 1"))
        record_run(question("outer 2"))
    assert active_recorder() is None
    assert questions_in(store, "outer") == ["outer 1", "outer 2"]
    assert questions_in(store, "inner") == ["inner 1"]
    assert len(outer.run_ids) == 2 and len(inner.run_ids) == 1


def test_threads_with_a_copied_context_record_into_their_recorder(store):
    results: dict[str, str | None] = {}

    def answer(name: str):
        results[name] = record_run(question(name))

    with RunRecorder(app="a", store=store):
        thread_a = threading.Thread(target=contextvars.copy_context().run, args=(answer, "from a"))
    with RunRecorder(app="b", store=store):
        thread_b = threading.Thread(target=contextvars.copy_context().run, args=(answer, "from b"))
    bare = threading.Thread(target=answer, args=("from nowhere",))  # no context copied: no recorder
    for thread in (thread_a, thread_b, bare):
        thread.start()
    for thread in (thread_a, thread_b, bare):
        thread.join(timeout=30)
    assert questions_in(store, "a") == ["from a"]
    assert questions_in(store, "b") == ["from b"]
    assert results["from nowhere"] is None and store.count_runs() == 2


def test_asyncio_tasks_record_into_the_recorder_they_were_created_in(store):
    async def answer(name: str, delay: float):
        await asyncio.sleep(delay)  # interleave the tasks
        return record_run(question(name))

    async def main():
        with RunRecorder(app="x", store=store):
            task_x = asyncio.create_task(answer("task x", 0.02))
        with RunRecorder(app="y", store=store):
            task_y = asyncio.create_task(answer("task y", 0.0))
        task_none = asyncio.create_task(answer("task none", 0.01))
        return await asyncio.gather(task_x, task_y, task_none)

    x, y, none = asyncio.run(main())
    assert x and y and none is None
    assert questions_in(store, "x") == ["task x"] and questions_in(store, "y") == ["task y"]


def test_a_database_error_is_logged_and_counted_never_raised(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    with RunRecorder(app="broken", store_url=f"sqlite:///{blocker / 'runs.db'}") as recorder:
        assert record_run(question("still answered")) is None
        assert record_run(question("again")) is None
    assert recorder.errors == 2 and recorder.run_ids == []
    assert "Run not recorded by recorder 'broken'" in caplog.text


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        ({"conn_type": "sqlite", "host": "/data/ragloop/runs.db"}, "sqlite:////data/ragloop/runs.db"),
        ({"conn_type": "postgres", "host": "db.internal", "port": 5432, "login": "rl", "password": "s3cret", "schema": "ragloop"},
         "postgresql+psycopg2://rl:s3cret@db.internal:5432/ragloop"),
        ({"conn_type": "generic", "extra": {"sqlalchemy_url": "sqlite:////elsewhere.db"}}, "sqlite:////elsewhere.db"),
    ],
    ids=["sqlite", "postgres", "sqlalchemy-url"],
)
def test_the_runs_connection_selects_the_database(monkeypatch, connection, expected):
    from ragloop.runs import runs_database_url

    monkeypatch.setenv("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT", json.dumps(connection))
    assert runs_database_url() == expected


def test_without_a_connection_the_store_is_a_file_under_the_state_folder(monkeypatch, airflow_db):
    # A migrated metadata DB that has no such connection: truly absent, so the documented default.
    from ragloop.paths import state_dir
    from ragloop.runs import runs_database_url

    monkeypatch.delenv("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT", raising=False)
    assert runs_database_url() == f"sqlite:///{state_dir() / 'runs.db'}"


def test_an_unsupported_connection_type_is_named(monkeypatch):
    from ragloop.runs import RunStoreError, runs_database_url

    monkeypatch.setenv("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT", json.dumps({"conn_type": "http", "host": "x"}))
    with pytest.raises(RunStoreError, match="connection 'ragloop_runs_default' has type 'http'"):
        runs_database_url()


# --- the queries the feedback DAG runs ------------------------------------------------------------

def grade_rows(version="1", passed=True, veto=None):
    rows = [{"criterion": "checks", "criterion_version": "1", "judge": "deterministic", "score": 0.0 if veto else 1.0,
             "passed": veto is None, "reason": veto or "ok", "veto": veto, "tokens": 0}]
    if veto is None:
        rows += [{"criterion": c, "criterion_version": version, "judge": "llm:gpt-test", "score": 0.9 if passed else 0.2,
                  "passed": passed, "reason": "r", "veto": None, "tokens": 10} for c in ("relevance", "groundedness")]
    return rows


def test_grading_queries_select_ungraded_and_newly_voted_runs_and_passing_ones(store):
    from datetime import datetime, timedelta

    now = datetime.now(UTC)
    ids = [store.record_run(a_run(question=f"q{n}", created_at=now - timedelta(hours=5 - n)))[0] for n in range(4)]
    assert store.ungraded_run_ids(10) == ids  # oldest first
    assert store.ungraded_run_ids(2) == ids[:2]
    store.record_grades(ids[0], grade_rows(), now)
    store.record_grades(ids[1], grade_rows(passed=False), now)
    store.record_grades(ids[2], grade_rows(veto="email"), now)
    assert store.ungraded_run_ids(10) == [ids[3]] and store.run_ids_with_new_votes(10) == []

    # A vote cast "earlier" (a client's clock, an import) but recorded after the grade counts as new.
    store.add_vote(ids[1], VoteIn(vote="up", user_id="u", created_at=now - timedelta(days=3)))
    assert store.run_ids_with_new_votes(10) == [ids[1]]

    versions = {"checks": "1", "relevance": "1", "groundedness": "1"}
    assert store.passing_run_ids(versions) == [ids[0]]
    assert store.passing_run_ids({**versions, "relevance": "2"}) == []  # graded by an older version
    # The latest grade of a criterion counts: run 1 passes once graded again. Graded after the
    # vote was recorded (the store's clock, not the test's start: a slow machine took seconds).
    store.record_grades(ids[1], grade_rows(), datetime.now(UTC) + timedelta(seconds=1))
    assert sorted(store.passing_run_ids(versions)) == sorted(ids[:2])
    assert store.run_ids_with_new_votes(10) == []
    latest = store.latest_grades([ids[1]])[ids[1]]
    assert latest["relevance"]["passed"] is True and set(latest) == {"checks", "relevance", "groundedness"}


def test_writeback_records(store):
    run_id, _ = store.record_run(a_run())
    store.set_writeback(run_id, doc_id=f"qa:{run_id}", collection="C", state="written", grader_versions={"relevance": "relevance@1"})
    first = store.writebacks("written")[0]
    store.set_writeback(run_id, doc_id=f"qa:{run_id}", collection="C", state="written", grader_versions={"relevance": "relevance@2"})
    again = store.writebacks("written")[0]
    assert again["written_at"] == first["written_at"] and again["grader_versions"] == {"relevance": "relevance@2"}
    store.set_writeback(run_id, doc_id=f"qa:{run_id}", collection="C", state="revoked", reason="down vote by u")
    run = store.get_run(run_id)
    assert run["writeback"]["state"] == "revoked" and run["writeback"]["revoke_reason"] == "down vote by u"
    assert run["writeback"]["revoked_at"] and store.writebacks("written") == []
    with pytest.raises(ValueError, match="write-back state"):
        store.set_writeback(run_id, doc_id="x", collection="C", state="gone")


def test_votes_count_in_the_order_the_store_recorded_them_not_their_claimed_time(store, drill):
    """Issue 16: an up vote dated 2100 overrode a later down vote."""
    from datetime import datetime

    run_id = store.record_run(a_run(run_id="dated"))[0]
    store.add_vote(run_id, VoteIn(vote="up", user_id="mallory", created_at=datetime(2100, 1, 1, tzinfo=UTC)))
    _, summary = store.add_vote(run_id, VoteIn(vote="down", user_id="mallory"))
    assert drill("vote: up dated 2100, then a real down vote", "down counts", "down counts" if summary["down"] else "up counts") \
        == "down counts"
    assert summary == {"up": 0, "down": 1, "votes": 2}
    assert store.get_run(run_id)["vote_summary"] == summary


def test_anonymous_votes_are_each_their_own_voter(store, drill):
    """Issue 16: five anonymous down votes and one up vote summed to up 1, down 0."""
    run_id = store.record_run(a_run(run_id="anon"))[0]
    for _ in range(5):
        store.add_vote(run_id, VoteIn(vote="down"))
    _, summary = store.add_vote(run_id, VoteIn(vote="up"))
    drill("votes: 5 anonymous down + 1 anonymous up", "up 1, down 5", f"up {summary['up']}, down {summary['down']}")
    assert summary == {"up": 1, "down": 5, "votes": 6}


def test_a_run_failing_to_grade_three_times_is_parked_and_not_selected(store):
    run_id = store.record_run(a_run(run_id="crafted"))[0]
    for _attempt in (1, 2):
        assert store.record_grading_failure(run_id, "ValueError: boom", park_after=3)["parked"] is False
        assert run_id in store.ungraded_run_ids(10)
    assert store.record_grading_failure(run_id, "ValueError: boom", park_after=3) == {
        "run_id": run_id, "failures": 3, "parked": True}
    assert run_id not in store.ungraded_run_ids(10)
    assert store.get_run(run_id)["grading_failure"]["last_error"] == "ValueError: boom"
    assert [r["run_id"] for r in store.parked_runs()] == [run_id]


def test_a_revocation_by_hand_is_never_overwritten(store, drill):
    run_id = store.record_run(a_run(run_id="revoked"))[0]
    assert store.set_writeback(run_id, doc_id="qa:revoked", collection="C", state="revoked_by_hand", reason="by hand")
    assert store.set_writeback(run_id, doc_id="qa:revoked", collection="C", state="written", grader_versions={}) is False
    assert store.set_writeback(run_id, doc_id="qa:revoked", collection="C", state="revoked", reason="vote") is False
    assert drill("store: 'written' over a hand revocation", "revoked_by_hand",
                 store.get_run(run_id)["writeback"]["state"]) == "revoked_by_hand"


def test_an_import_line_nested_past_the_parser_fails_alone(store, tmp_path, drill):
    good = a_run(run_id="imp-ok", created_at="2026-01-01T00:00:00+00:00").model_dump_json()
    deep = '{"question": "q", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    nested = a_run(run_id="imp-deep", created_at="2026-01-01T00:00:00+00:00").model_dump()
    for _ in range(30):
        nested["metadata"] = {"a": nested["metadata"]}
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join([deep, json.dumps(nested, default=str), good]) + "\n")
    report = store.import_jsonl(path)
    drill("runs import: a line nested 100,000 deep, one 30 deep, one good", "1 imported, lines 1 and 2 refused",
          f"{report.imported} imported, lines {' and '.join(str(e['line']) for e in report.errors)} refused")
    assert report.imported == 1 and [(e["line"], e["field"]) for e in report.errors] == [(1, "(line)"), (2, "metadata")]


def test_an_unreachable_database_is_an_outage_not_a_bad_token():
    """The runs API and the page answer 503 (retry) rather than 401 (log in again) when checking a
    token fails because Airflow's metadata DB cannot be reached: a real connection refused."""
    import socket

    import sqlalchemy as sa

    from ragloop.airflow.runs_api import is_database_outage

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = sa.create_engine(f"postgresql+psycopg2://nobody@127.0.0.1:{port}/airflow", connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            pass
    except Exception as err:  # noqa: BLE001 - whatever the driver raises is what the API sees
        refused = err
    wrapped = RuntimeError("the auth manager's own wrapper")
    wrapped.__cause__ = refused  # as `raise ... from refused` leaves it
    assert is_database_outage(refused) and is_database_outage(wrapped)
    assert not is_database_outage(ValueError("Signature verification failed"))


# --- contention on the production database (Postgres serialises nothing for us) ------------------


def test_fresh_stores_racing_to_migrate_and_record_one_run_id_on_postgres(postgres_database, drill):
    """Eight API workers (one engine each, as separate processes have) open a new Postgres run
    store at once and record the same run: every one migrates without error, the run exists once."""
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(8)

    def worker(_):
        with RunStore(postgres_database) as store:
            barrier.wait(timeout=30)
            return store.record_run(a_run(run_id="raced"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    created = [created for _, created in results]
    drill("Postgres: 8 fresh stores migrate and record one run_id at once", "1 created, 7 found",
          f"{created.count(True)} created, {created.count(False)} found")
    assert sorted(created) == [False] * 7 + [True]
    with RunStore(postgres_database) as store:
        assert store.count_runs() == 1 and store.schema_version() == SCHEMA_VERSION
        with store.engine.connect() as connection:
            versions = list(connection.scalars(sa.text("select version from ragloop_schema order by version")))
        assert versions == [1, 2, 3, 4, 5]  # each migration recorded once


def test_votes_under_contention_on_postgres_count_each_users_latest(postgres_database, drill):
    """Twelve users vote at once on one run, each up then down then up; separate engines, so the
    writes interleave for real. Every user's last vote counts and no vote is lost."""
    from concurrent.futures import ThreadPoolExecutor

    with RunStore(postgres_database) as store:
        run_id = store.record_run(a_run(run_id="contended"))[0]
    barrier = threading.Barrier(12)

    def voter(number: int):
        with RunStore(postgres_database) as store:
            barrier.wait(timeout=30)
            for vote in ("up", "down", "up" if number % 3 else "down"):
                store.add_vote(run_id, VoteIn(vote=vote, user_id=f"user-{number}"))

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(voter, range(12)))
    with RunStore(postgres_database) as store:
        summary = store.get_run(run_id)["vote_summary"]
    drill("Postgres: 12 users vote up, down, up/down at once on one run", "up 8, down 4, 36 votes",
          f"up {summary['up']}, down {summary['down']}, {summary['votes']} votes")
    assert summary == {"up": 8, "down": 4, "votes": 36}
    # Each user's latest vote moved the cited chunk once (no credit row lost or doubled).
    from ragloop.feedback.boosts import boost_multiplier

    with RunStore(postgres_database) as store:
        assert store.chunk_adjustments(["c1"])["c1"].multiplier == pytest.approx(boost_multiplier(8 - 4))
