"""DAG runs that share a run id, as the scheduler makes them every night (`scheduled__<date>` for
all three ingest DAGs), and staging clean-up that never removes what a running DAG run reads.

These drive the DAGs' task bodies by hand, interleaved the way separate task processes may run
them, against a real Weaviate; test_scheduled_runs.py has the scheduler itself do it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, indexed_chunks

pytestmark = pytest.mark.integration

NIGHTLY = "scheduled__2026-11-30T00:00:00+00:00"


def three_source_config(folder, collection: str) -> str:
    """The bundled samples, one source of each type, with the hash embedder."""
    samples = REPO / "include" / "samples"
    config = {
        "collection": collection, "embedder": "hash", "chunking": {"max_tokens": 256, "overlap_tokens": 32},
        "staging": f"file://{folder / 'staging'}",
        "sources": [
            {"id": "docs", "type": "docs", "path": str(samples / "docs"), "url_template": "https://docs.example/{path}"},
            {"id": "slack", "type": "slack", "export": str(samples / "slack")},
            {"id": "github", "type": "github_issues", "repo": "fernwood/fernwood",
             "export": str(samples / "github" / "issues.json")},
        ],
    }
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def chunk_table(client, collection: str) -> dict[str, list[tuple]]:
    return {doc_id: [(c["chunk_index"], c["chunk_hash"], c["doc_hash"], c["text"]) for c in chunks]
            for doc_id, chunks in indexed_chunks(client, collection).items()}


def test_three_dags_with_one_run_id_each_ingest_their_own_sources(weaviate_client, collection_name, tmp_path):
    from ragloop.index import read_watermarks
    from ragloop.catalog import INGEST_DAG_IDS
    from ragloop.ingest import (
        build_report, extract_source, index_batch, ingest, plan_ingest, prune_sources, select_sources,
    )
    from ragloop.staging import DagRunRef

    reference_folder, shared_folder = tmp_path / "reference", tmp_path / "shared"
    reference_folder.mkdir()
    shared_folder.mkdir()
    reference = three_source_config(reference_folder, collection_name + "Ref")
    config = three_source_config(shared_folder, collection_name)

    # The reference: each type's DAG alone, with run ids of its own (what dag.test() does).
    expected = {t: ingest(f"manual__{t}", reference, source_type=t) for t in INGEST_DAG_IDS}

    # The night: three DAG runs with one run id, each stage of all three before the next stage,
    # as separate task processes on a scheduler may well run them.
    runs = {t: DagRunRef(dag_id, NIGHTLY) for t, dag_id in INGEST_DAG_IDS.items()}
    sources = {t: select_sources(config, None, t) for t in runs}
    for t, run in runs.items():
        for source_id in sources[t]:
            extract_source(source_id, run, config)
    plans = {t: plan_ingest(run, sources[t], config) for t, run in runs.items()}
    indexed = {t: [index_batch(batch, config) for batch in plans[t]["batches"]] for t in runs}
    pruned = {t: prune_sources(run, config) for t, run in runs.items()}
    reports = {t: build_report(run, sources[t], indexed[t], pruned[t], config) for t, run in runs.items()}

    for t, report in reports.items():
        assert report["dag_id"] == INGEST_DAG_IDS[t] and report["dag_run_id"] == NIGHTLY
        assert report["errors"] == []
        assert set(report["sources"]) == set(expected[t]["sources"])
        for source_id, got in report["sources"].items():
            want = expected[t]["sources"][source_id]
            assert got["documents"] == want["documents"], source_id
            assert got["documents"]["seen"] > 0 and got["documents"]["new"] > 0, source_id
            assert got["chunks"]["written"] == want["chunks"]["written"], source_id
            assert got["prune"] == want["prune"] == "done", source_id
    assert chunk_table(weaviate_client, collection_name) == chunk_table(weaviate_client, collection_name + "Ref")
    for source_id in ("docs", "slack", "github"):
        assert read_watermarks(weaviate_client, collection_name, source_id) == \
            read_watermarks(weaviate_client, collection_name + "Ref", source_id)


def test_two_ingest_dags_running_at_once_plan_and_prune_only_their_own_sources(
    weaviate_client, collection_name, tmp_path,
):
    """The docs DAG plans and prunes while the Slack DAG is between extract and index: neither
    touches the other's documents."""
    from ragloop.ingest import extract_source, index_batch, ingest, plan_ingest, prune_sources
    from ragloop.staging import DagRunRef

    config = three_source_config(tmp_path, collection_name)
    ingest("first-docs", config, source_type="docs")
    ingest("first-slack", config, source_type="slack")
    before = chunk_table(weaviate_client, collection_name)
    slack_docs = {d for d in before if d.startswith("slack:")}
    assert slack_docs

    slack_run = DagRunRef("ragloop_ingest_slack", NIGHTLY)
    extract_source("slack", slack_run, config)
    slack_plan = plan_ingest(slack_run, ["slack"], config, full_refresh=True)
    docs_report = ingest(NIGHTLY, config, source_type="docs", full_refresh=True)  # the docs DAG runs to its end
    assert docs_report["sources"]["docs"]["documents"]["deleted"] == 0
    assert set(docs_report["sources"]) == {"docs"}
    for batch in slack_plan["batches"]:
        index_batch(batch, config)
    assert prune_sources(slack_run, config)["sources"]["slack"]["documents_deleted"] == 0
    assert chunk_table(weaviate_client, collection_name) == before


def test_a_long_ingest_keeps_its_staging_through_ten_grading_runs(
    weaviate_client, collection_name, tmp_path, monkeypatch,
):
    """Ten asset-triggered grading runs start and finish while an ingest sits between plan and
    index; each cleans up staging when it finishes. The ingest's batches are still there."""
    from ragloop.grading import GRADE_DAG_ID, write_back
    from ragloop.catalog import INGEST_DAG_ID
    from ragloop.ingest import build_report, extract_source, index_batch, plan_ingest, prune_sources
    from ragloop.staging import DagRunRef, staging_root

    monkeypatch.setenv("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "runs.db")}))
    config = three_source_config(tmp_path, collection_name)
    long_ingest = DagRunRef(INGEST_DAG_ID, NIGHTLY)
    extract_source("docs", long_ingest, config)
    plan = plan_ingest(long_ingest, ["docs"], config)
    assert plan["batches"]

    for number in range(10):
        result = write_back(DagRunRef(GRADE_DAG_ID, f"asset_triggered__2026-11-30T00:{number:02d}:00+00:00"), config)
        assert result["good_runs"] == 0

    # Five finished grading runs are kept for re-running their tasks; the rest are gone.
    root = staging_root(f"file://{tmp_path / 'staging'}")
    folders = {folder.name: len([f for f in folder.iterdir() if f.is_dir()]) for folder in root.iterdir()}
    assert sorted(folders.values()) == [1, 5]
    indexed = [index_batch(batch, config) for batch in plan["batches"]]
    report = build_report(long_ingest, ["docs"], indexed, prune_sources(long_ingest, config), config)
    assert report["errors"] == [] and report["sources"]["docs"]["documents"]["new"] == report["sources"]["docs"]["documents"]["seen"]
    assert report["collection_chunks"] == report["totals"]["written"]


def test_run_folders_stay_under_the_staging_root(tmp_path):
    from ragloop.staging import DagRunRef, run_folder, safe_key, staging_root

    root = staging_root(f"file://{tmp_path / 'staging'}")
    base = (tmp_path / "staging").resolve()
    hostile = ["..", ".", "../../etc", "a/../../b", "/absolute", "", "~root", NIGHTLY, "x" * 500, "a\x00b"]
    folders = set()
    for run_id in hostile:
        for dag_id in ("ragloop_ingest_docs", "..", "../x"):
            folder = run_folder(root, DagRunRef(dag_id, run_id))
            resolved = Path(str(folder).removeprefix("file://")).resolve()
            assert resolved.is_relative_to(base) and resolved.parent.parent == base, (dag_id, run_id, folder)
            folders.add(str(folder))
    assert len(folders) == len(hostile) * 3  # no two runs share a folder
    assert safe_key("a:b") != safe_key("a+b")
    assert safe_key(NIGHTLY).startswith("scheduled__2026-11-30T00_00_00_00_00-")


def test_clean_up_removes_only_finished_runs_of_the_same_dag(tmp_path):
    from ragloop.staging import DagRunRef, dag_folder, mark_finished, remove_old_runs, run_folder, safe_key, staging_root

    root = staging_root(f"file://{tmp_path / 'staging'}")
    finished = [DagRunRef("ragloop_ingest_docs", f"manual__{n}") for n in range(8)]
    for run in finished:
        run_folder(root, run)
        mark_finished(root, run)
    running = DagRunRef("ragloop_ingest_docs", "manual__running")
    ended_without_marker = DagRunRef("ragloop_ingest_docs", "manual__crashed")
    other_dag = [DagRunRef("ragloop_grade_feedback", f"manual__{n}") for n in range(8)]
    for run in (running, ended_without_marker, *other_dag):
        run_folder(root, run)
    for run in other_dag:
        mark_finished(root, run)

    def airflow_says(run: DagRunRef) -> str | None:
        return {"manual__running": "running", "manual__crashed": "failed"}.get(run.run_id)

    current = finished[-1]
    removed = remove_old_runs(root, current, keep=5, run_state=airflow_says)
    # 8 marked and 1 that Airflow says failed are finished; the 5 most recent of them stay (the
    # crashed run counts from when it started, after the others), the running one stays, and
    # the other DAG's folders are not touched.
    assert removed == 4
    kept = {folder.name for folder in dag_folder(root, "ragloop_ingest_docs").iterdir()}
    assert kept == {safe_key(r.run_id) for r in (*finished[4:], ended_without_marker, running)}
    assert len(list(dag_folder(root, "ragloop_grade_feedback").iterdir())) == 8
    assert remove_old_runs(root, current, keep=5, run_state=airflow_says) == 0
