"""`ragloop gaps` end to end: labelled runs recorded in a real SQLite run store, the command run
as a user would (a child process, the configured local model), its JSON and CSV checked."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, UTC
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from ragloop.runs import RunIn, RunStore, VoteIn

DATA = REPO / "tests" / "data" / "gap_questions.jsonl"
CONFIG = str(REPO / "include" / "sources.yaml")  # embedder: local


def store_env(path: Path) -> dict:
    return {"AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(path)})}


@pytest.fixture
def labelled_store(tmp_path):
    """The labelled runs (votes and helpfulness grades included) and one old run before them."""
    path = tmp_path / "runs.db"
    lines = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    graded_at = datetime(2026, 10, 30, tzinfo=UTC)
    with RunStore(f"sqlite:///{path}") as store:
        for line in lines:
            run_id, created = store.record_run(RunIn.model_validate(line["run"]))
            assert created
            store.record_grades(run_id, [
                {"criterion": g["criterion"], "criterion_version": "votes-1", "judge": "test", "score": None,
                 "passed": g["passed"], "reason": "labelled", "veto": None, "tokens": None} for g in line["grades"]],
                graded_at)
        store.record_run(RunIn(run_id="old-1", question="How do I back up the database?", answer="",
                               created_at=datetime(2025, 1, 1, tzinfo=UTC),
                               votes=[VoteIn(vote="down", user_id="x")]))
    return path, {line["run"]["run_id"]: line["topic"] for line in lines}


def test_gaps_json_and_csv_from_the_run_store(labelled_store, tmp_path):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    path, label_of = labelled_store
    out_csv = tmp_path / "gaps.csv"
    done = run_cli("gaps", "--since", "2026-10-01", "--json", "--csv", str(out_csv), "--config", CONFIG,
                   env=store_env(path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Embedded 115/115 questions" in done.stderr and "Wrote" in done.stderr
    report = json.loads(done.stdout)  # exactly one JSON document on stdout
    assert report["runs"] == len(label_of)  # the 2025 run is before --since
    topics = report["topics"]

    found = {run_id: t["topic_id"] or -i - 1 for t in topics for i, run_id in enumerate(t["run_ids"])}
    assert sorted(found) == sorted(label_of)
    ids = sorted(label_of)
    ari = adjusted_rand_score([label_of[i] for i in ids], [found[i] for i in ids])
    nmi = normalized_mutual_info_score([label_of[i] for i in ids], [found[i] for i in ids])
    print(f"\nragloop gaps on {len(ids)} labelled runs: {len(topics)} topics, ARI {ari:.3f}, NMI {nmi:.3f}")
    assert ari > 0.35 and nmi > 0.55  # measured 0.58 / 0.75 (README, "Docs gaps")

    first = topics[0]
    assert Counter(label_of[r] for r in first["run_ids"]).most_common(1)[0][0] == "backups"
    assert first["topic_id"] == 1 and first["need"] == max(t["need"] for t in topics)
    # Votes and grades came through the store: down votes (latest per user) and not-helpful grades.
    assert first["voted_down_share"] > 0 and first["not_helpful_share"] > 0 and first["unanswered_share"] > 0
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert len(rows) == len(topics)
    assert [(r["topic_id"], r["size"], r["need"]) for r in rows] == [
        (str(t["topic_id"]), str(t["size"]), str(t["need"])) for t in topics]
    assert rows[0]["label"] == first["label"] and rows[0]["examples"].split(" | ") == first["examples"]
    assert rows[0]["top_sources"].startswith(first["top_sources"][0]["doc_id"])


def test_gaps_names_what_is_wrong(tmp_path):
    env = store_env(tmp_path / "empty.db")
    empty = run_cli("gaps", "--config", CONFIG, env=env)
    assert empty.returncode == 1 and "no runs in the run store" in empty.stderr and "empty.db" in empty.stderr
    assert empty.stdout == ""
    bad_date = run_cli("gaps", "--since", "last tuesday", env=env)
    assert bad_date.returncode == 2 and "--since 'last tuesday' is not an ISO 8601 date" in bad_date.stderr
    bad_limit = run_cli("gaps", "--limit", "0", env=env)
    assert bad_limit.returncode == 2 and "--limit must be at least 1, got 0" in bad_limit.stderr
