"""Local mode vs the cluster of `make cluster` (not a test): the same generated corpus ingested
in full and then again with nothing changed,

- in one process through dag.test() with staging on the local disk (`ragloop ingest`: local mode),
- by the scheduler on two Celery workers, staging on S3, three replicated Weaviate nodes,
- by the scheduler on one Celery worker (the other stopped for the run),

for each embedder, into fresh collections, in one run. Prints a table, the ratios, the per-task
costs the scheduler measured (for scaling to more workers), and one JSON line; writes
bench/results/cluster-<time>.json.

    python bench/cluster.py                       # starts the cluster if needed and stops it after
    python bench/cluster.py --files 150 --embedders hash local --keep
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import generate

from ragloop.local.cluster.demo import Runs
from ragloop.local.cluster.runner import Cluster

DOCS_DAG = "ragloop_ingest_docs"
RESULTS = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def config(cluster: Cluster, name: str, collection: str, docs: Path, embedder: str, local: bool) -> Path:
    data = yaml.safe_load(cluster.config_path.read_text())
    data.update({"collection": collection, "embedder": embedder, "index_batch_chunks": 400})
    data["sources"] = [{"id": "bench-docs", "type": "docs", "path": str(docs), "url_template": "https://docs.example/{path}"}]
    if local:
        data["staging"] = f"file://{cluster.folder / 'bench' / name / 'staging'}"
        data.pop("staging_conn_id", None)
    path = cluster.folder / "bench" / name / "sources.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def local_run(cluster: Cluster, path: Path) -> float:
    started = time.monotonic()
    done = cluster.ragloop("ingest", "--config", str(path), timeout=3600, local_mode=True)
    if done.returncode != 0:
        raise RuntimeError(f"local ingest failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def cluster_run(runs: Runs, path: Path, costs: dict) -> float:
    started = time.monotonic()
    run_id = runs.trigger(DOCS_DAG, {"config": str(path)})
    state = runs.wait(DOCS_DAG, run_id, 3600)
    seconds = time.monotonic() - started
    if state != "success":
        raise RuntimeError(f"cluster ingest {run_id} ended {state}")
    for ti in runs.task_instances(DOCS_DAG, run_id):
        if ti.get("duration") is not None:
            costs.setdefault(ti["task_id"], []).append(float(ti["duration"]))
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=150)
    parser.add_argument("--embedders", nargs="+", default=["hash", "local"])
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cluster = Cluster()
    started = False
    if not (cluster.state_file.exists() and cluster.status()["components"].get("api-server", {}).get("ready")):
        cluster.start(progress=log)
        started = True
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    rows, costs = [], {}
    try:
        runs = Runs(cluster)
        docs = cluster.folder / "bench" / f"corpus-{args.files}"
        if not docs.exists():
            generate(docs, args.files)
        for embedder in args.embedders:
            tag = f"{embedder.capitalize()}{stamp}"
            local = config(cluster, f"local-{embedder}", f"BenchLocal{tag}", docs, embedder, local=True)
            two = config(cluster, f"two-{embedder}", f"BenchTwo{tag}", docs, embedder, local=False)
            one = config(cluster, f"one-{embedder}", f"BenchOne{tag}", docs, embedder, local=False)
            row = {"embedder": embedder}
            log(f"{embedder}: local mode")
            row["local_full"], row["local_rerun"] = local_run(cluster, local), local_run(cluster, local)
            log(f"{embedder}: cluster, two workers")
            task_costs: dict = {}
            row["two_full"] = cluster_run(runs, two, task_costs)
            row["two_rerun"] = cluster_run(runs, two, {})
            log(f"{embedder}: cluster, one worker")
            worker = cluster.worker("worker-2")
            worker.stop()
            try:
                row["one_full"] = cluster_run(runs, one, {})
                row["one_rerun"] = cluster_run(runs, one, {})
            finally:
                worker.start(log, timeout=120)
            row["cluster_overhead_full"] = row["two_full"] / row["local_full"]
            row["cluster_overhead_rerun"] = row["two_rerun"] / row["local_rerun"]
            row["two_vs_one_full"] = row["one_full"] / row["two_full"]
            costs[embedder] = {task: {"tries": len(v), "total_s": round(sum(v), 1), "max_s": round(max(v), 1)} for task, v in task_costs.items()}
            rows.append(row)
    finally:
        if started and not args.keep:
            cluster.stop(progress=log)
    print(f"{'embedder':<8} {'local full':>10} {'rerun':>7} {'2 workers':>10} {'rerun':>7} {'1 worker':>9} {'rerun':>7} "
          f"{'cluster/local':>13} {'1w/2w':>6}")
    for r in rows:
        print(f"{r['embedder']:<8} {r['local_full']:>9.1f}s {r['local_rerun']:>6.1f}s {r['two_full']:>9.1f}s {r['two_rerun']:>6.1f}s "
              f"{r['one_full']:>8.1f}s {r['one_rerun']:>6.1f}s {r['cluster_overhead_full']:>12.2f}x {r['two_vs_one_full']:>5.2f}x")
    for embedder, tasks in costs.items():
        print(f"per-task seconds on the cluster ({embedder}, full ingest, two workers): "
              + ", ".join(f"{t} {c['total_s']}s/{c['tries']}" for t, c in sorted(tasks.items())))
    result = {"files": args.files, "rows": rows, "task_costs": costs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"cluster-{stamp}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
