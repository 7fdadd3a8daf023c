"""Grading and write-back benchmark: the offline judge's rate, a vote-triggered regrade, and the
nightly write-back against reloading every good answer (what a loader without hashes does).

The runs are the labelled runs of tests/data/labelled_runs.jsonl, `--copies` times over (each
copy's questions are marked, so no two copies share a chunk). The task bodies of the feedback DAG
run in this process against a private Weaviate and a SQLite run store; no Airflow run.

    .venv/bin/python bench/grading.py [--copies 5]

Prints a table and one JSON line; writes bench/results/grading-<time>.json. Ratios compare
steps of the same run, on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any
from datetime import datetime, UTC
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "include"))

from bench_env import add_common_arguments, bench_environment, log  # noqa: E402
from judge import load_labelled  # noqa: E402

from ragloop.grading import GRADE_DAG_ID  # noqa: E402
from ragloop.staging import DagRunRef  # noqa: E402

COLLECTION = "BenchGrading"
BASELINE_COLLECTION = "BenchGradingReload"


def index_labelled_sources(config, rows: list[dict]) -> int:
    """The labelled runs' passages as chunks of the bench collection, and each run's sources given
    their chunk ids: grading reads a run's sources from the index by chunk id, and vetoes a cited
    source the index does not hold."""
    from ragloop.documents import Chunk, Document, text_hash
    from ragloop.embedding import make_embedder
    from ragloop.index import chunk_object, connect, ensure_collection, write_objects

    embedder = make_embedder(config.embedder)
    chunks: dict[str, tuple] = {}
    for row in rows:
        for source in row["run"]["sources"]:
            doc_id = f"labelled:{text_hash(source['text'])[:16]}"
            chunk = Chunk(doc_id, 0, source["text"])
            source["chunk_id"] = chunk.chunk_id
            document = Document(doc_id=doc_id, source_id="labelled", kind=source.get("kind") or "docs",
                                title=source.get("title") or "", content=source["text"], url=source.get("url") or "")
            chunks.setdefault(chunk.chunk_id, (document, chunk))
    with connect() as client:
        ensure_collection(client, COLLECTION, embedder)
        vectors = embedder.embed([chunk.text for _, chunk in chunks.values()])
        return write_objects(client, COLLECTION, [chunk_object(document, chunk, document.content_hash, 1, vector)
                                                  for (document, chunk), vector in zip(chunks.values(), vectors, strict=False)])


def record_runs(store, copies: int, rows: list[dict]) -> list[str]:
    from ragloop.runs import RunIn, VoteIn

    ids = []
    for copy in range(copies):
        for row in rows:
            run = dict(row["run"])
            run.pop("vote_summary")
            run["run_id"] = f"{row['id']}-{copy}"
            run["question"] = f"{run['question']} (copy {copy})"
            run["votes"] = [VoteIn(**v) for v in run["votes"]]
            store.record_run(RunIn(**run))
            ids.append(run["run_id"])
    return ids


def reload_all(config, documents) -> tuple[float, int]:
    """The baseline: split, embed and write every good answer again, as a loader that keeps no
    hashes does each night."""
    from ragloop.chunking import ChunkingSettings, chunker_for
    from ragloop.documents import indexed_hash
    from ragloop.embedding import make_embedder
    from ragloop.index import chunk_object, connect, ensure_collection, write_objects

    embedder = make_embedder(config.embedder)
    chunker = chunker_for(embedder, ChunkingSettings(**config.chunking))
    started = time.monotonic()
    with connect() as client:
        ensure_collection(client, BASELINE_COLLECTION, embedder)
        objects = []
        for document in documents:
            chunks = chunker.split(document)
            vectors = embedder.embed([c.text for c in chunks])
            objects += [chunk_object(document, c, indexed_hash(document.content_hash, "reload"), len(chunks), v)
                        for c, v in zip(chunks, vectors, strict=False)]
        write_objects(client, BASELINE_COLLECTION, objects)
    return time.monotonic() - started, len(objects)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=5, help="copies of the 40 labelled runs")
    parser.add_argument("--solo-runs", type=int, default=40, help="runs the measure-each-run-alone baseline takes")
    add_common_arguments(parser, BENCH / "results")
    args = parser.parse_args(argv)

    with bench_environment("ragloop-bench-grading-", args.use_connection, log) as work:
        import yaml

        config_path = work / "sources.yaml"
        config_path.write_text(yaml.safe_dump({
            "collection": COLLECTION, "embedder": "local", "staging": f"file://{work / 'staging'}", "sources": []}))
        os.environ["AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT"] = json.dumps({"conn_type": "sqlite", "host": str(work / "runs.db")})

        from ragloop import grading
        from ragloop.config import load_config
        from ragloop.embedding import make_embedder
        from ragloop.runs import RunStore, VoteIn

        config = load_config(config_path)
        make_embedder("local").embed(["warm up"])  # the model load is not part of any step
        rows = load_labelled()
        log(f"{index_labelled_sources(config, rows)} labelled passages indexed")
        with RunStore.default() as store:
            run_ids = record_runs(store, args.copies, rows)
        log(f"{len(run_ids)} runs recorded")

        started = time.monotonic()
        graded = grading.grade_batch(run_ids, str(config_path))
        grade_seconds = time.monotonic() - started
        log(f"graded {graded['graded']} runs in {grade_seconds:.1f} s")

        # Baseline: the offline judge measuring each run on its own (one model call per run, no
        # text shared between runs), on the first copy.
        with RunStore.default() as store:
            sample = store.get_runs(run_ids[:args.solo_runs])
        embedder = make_embedder("local")
        started = time.monotonic()
        for run in sample:
            grading.OfflineJudge(embedder).measure(run)  # type: ignore[arg-type]  # make_embedder("local") is a LocalEmbedder  # a new judge per run: nothing shared
        solo_seconds = time.monotonic() - started

        first = grading.write_back(DagRunRef(GRADE_DAG_ID, "bench-1"), str(config_path))
        again = grading.write_back(DagRunRef(GRADE_DAG_ID, "bench-2"), str(config_path))
        log(f"write-back: {first['written']} written in {first['seconds']} s; again: {again['unchanged']} unchanged in "
            f"{again['seconds']} s")

        with RunStore.default() as store:
            runs = store.get_runs(run_ids)
            latest = store.latest_grades(run_ids)
        documents = [grading.qa_document(run, latest[run["run_id"]]) for run in runs
                     if run["writeback"] and run["writeback"]["state"] == "written"]
        reload_seconds, reload_chunks = reload_all(config, documents)

        # A tenth of the runs get a vote: only the vote criterion is graded again.
        voted = run_ids[:: 10]
        with RunStore.default() as store:
            for run_id in voted:
                store.add_vote(run_id, VoteIn(vote="up", user_id="bench"))
        started = time.monotonic()
        batches = grading.select_runs(str(config_path))
        regraded = grading.grade_batch([i for b in batches for i in b], str(config_path))
        vote_seconds = time.monotonic() - started

    per_run = grade_seconds / max(1, graded["graded"])
    per_vote_run = vote_seconds / max(1, regraded["graded"])
    result: dict[str, Any] = {
        "runs": len(run_ids), "graded": graded["graded"], "vetoed": graded["vetoed"],
        "grade_seconds": round(grade_seconds, 2), "runs_per_second": round(graded["graded"] / grade_seconds, 2),
        "good_runs": first["good_runs"], "written": first["written"], "write_back_seconds": first["seconds"],
        "qa_chunks": first["chunks"]["written"],
        "no_change_write_back_seconds": again["seconds"], "no_change_embedded": again["chunks"]["embedded"],
        "reload_seconds": round(reload_seconds, 2), "reload_chunks": reload_chunks,
        "solo_measure_seconds_per_run": round(solo_seconds / len(sample), 3),
        "voted_runs": regraded["graded"], "vote_regrade_seconds": round(vote_seconds, 2),
        "reused_verdicts": regraded["reused"],
        "ratios": {
            "no_change_write_back / first_write_back": round(again["seconds"] / first["seconds"], 3),
            "no_change_write_back / reload_all": round(again["seconds"] / reload_seconds, 3),
            "vote_regrade_per_run / first_grade_per_run": round(per_vote_run / per_run, 3),
            "grade_per_run / measure_each_run_alone": round(per_run / (solo_seconds / len(sample)), 3),
        },
        "machine": f"{os.cpu_count()} cores",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"{'step':<44} {'seconds':>8}  detail")
    print(f"{'grade (offline judge)':<44} {grade_seconds:>8.1f}  {graded['graded']} runs, {result['runs_per_second']} runs/s, "
          f"{graded['vetoed']} vetoed")
    print(f"{f'baseline: measure each run alone ({len(sample)} runs)':<44} {solo_seconds:>8.1f}  "
          f"{result['solo_measure_seconds_per_run']} s per run")
    print(f"{'first write-back':<44} {first['seconds']:>8.1f}  {first['written']} answers, {first['chunks']['written']} chunks")
    print(f"{'write-back again, nothing changed':<44} {again['seconds']:>8.1f}  {again['chunks']['embedded']} chunks embedded")
    print(f"{'baseline: reload every good answer':<44} {reload_seconds:>8.1f}  {reload_chunks} chunks embedded")
    print(f"{'regrade after votes on a tenth of the runs':<44} {vote_seconds:>8.1f}  {regraded['graded']} runs, "
          f"{regraded['reused']} verdicts reused")
    for name, ratio in result["ratios"].items():
        print(f"  {name}: {ratio}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"grading-{datetime.now(UTC):%Y%m%dT%H%M%S}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
