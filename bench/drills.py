"""Fault drills on the cluster of `make cluster` (not tests: they take minutes and need the whole
cluster). Each prints what was injected, what was expected and what was seen, then one JSON line.

    python bench/drills.py              # starts the cluster if it is not running, stops it after
    python bench/drills.py --keep       # leave it running
    python bench/drills.py --only 2 4   # some drills

1. Scheduler-made runs of the three ingest DAGs and the feedback DAG on the Celery workers;
   mapped tasks on both workers; the index equals a reference ingest made in one process
   (`ragloop ingest`, dag.test) chunk for chunk.
2. A worker SIGKILLed while it runs an index task: the try fails on its heartbeat timeout, the
   retry runs, and the index converges: 0 lost, 0 duplicated, 0 stale chunks.
3. A Weaviate node (a Raft follower) killed during an ingest: QUORUM writes and reads go on;
   a document deleted and an answer revoked while it is down stay deleted after it comes back,
   and every node then serves the same objects.
4. The S3 server restarted during an ingest: the task that hit it fails with a StagingError
   naming the object, the retry succeeds, the index equals the reference.
5. Postgres restarted while the runs API takes votes: 503 with Retry-After while it is down,
   every 200 is a stored vote and nothing else is, recording resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import generate  # noqa: E402

from ragloop.cluster.demo import GRADE_DAG, INGEST_DAGS, Runs, placement, run_ingest, wait_for  # noqa: E402
from ragloop.cluster.runner import Cluster  # noqa: E402

DOCS_DAG = "ragloop_ingest_docs"
STAMP = time.strftime("%H%M%S")  # fresh collections each run: a drill needs writes to interrupt


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def report(number: int, title: str, injected: str, expected: str, seen: dict, ok: bool) -> dict:
    print(f"\n== drill {number}: {title} ==")
    print(f"injected: {injected}")
    print(f"expected: {expected}")
    print(f"seen:     {json.dumps(seen, default=str)}")
    print(f"result:   {'PASS' if ok else 'FAIL'}")
    return {"drill": number, "title": title, "ok": ok, "seen": seen}


# --- the index as each side holds it ------------------------------------------------------------


def chunk_table(cluster: Cluster, collection: str, node_index: int = 0) -> dict[tuple, list[tuple]]:
    """(doc_id, chunk_index) -> every object stored for it, read through one node at QUORUM."""
    from weaviate.classes.config import ConsistencyLevel

    from ragloop.index import connect_local

    node = cluster.weaviate_nodes()[node_index]
    table: dict[tuple, list[tuple]] = {}
    with connect_local("127.0.0.1", node.http_port, node.grpc_port) as client:
        if not client.collections.exists(collection):
            return {}
        handle = client.collections.use(collection).with_consistency_level(ConsistencyLevel.QUORUM)
        for obj in handle.iterator(return_properties=["doc_id", "chunk_index", "chunk_hash", "doc_hash", "text"]):
            p = obj.properties
            table.setdefault((p["doc_id"], p["chunk_index"]), []).append((p["chunk_hash"], p["text"]))
    return table


def compare(got: dict, want: dict) -> dict:
    """Lost: a reference chunk missing; duplicated: two objects for one chunk; stale: an object
    that is not the reference's (other text, or a chunk the reference does not have)."""
    lost = sum(1 for key in want if key not in got)
    duplicated = sum(len(v) - 1 for v in got.values() if len(v) > 1)
    stale = sum(1 for key, v in got.items() if key not in want or any(o != want[key][0] for o in v))
    return {"chunks": sum(len(v) for v in got.values()), "reference": len(want), "lost": lost, "duplicated": duplicated, "stale": stale}


def write_config(cluster: Cluster, name: str, collection: str, docs: Path | None = None, local_staging: bool = False, **extra) -> Path:
    config = yaml.safe_load(cluster.config_path.read_text())
    config["collection"] = collection
    if docs is not None:
        config["sources"] = [{"id": "drill-docs", "type": "docs", "path": str(docs), "url_template": "https://docs.example/{path}"}]
    if local_staging:
        config["staging"] = f"file://{cluster.folder / 'drills' / name / 'staging'}"
        config.pop("staging_conn_id", None)
    config.update(extra)
    path = cluster.folder / "drills" / name / "sources.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def reference_ingest(cluster: Cluster, config: Path, attempts: int = 2) -> None:
    """The same sources through dag.test() in one process (`ragloop ingest`): the local-mode path.
    Made once per collection (a second call finds nothing to do)."""
    for attempt in range(1, attempts + 1):
        done = cluster.ragloop("ingest", "--config", str(config), timeout=1800, local_mode=True)
        if done.returncode == 0:
            return
        said = [line for line in done.stderr.splitlines() if line.startswith(("ragloop:", "ERROR", "Traceback"))]
        log(f"reference ingest attempt {attempt} failed: {said[-3:]}\n{done.stderr[-1500:]}")
    raise RuntimeError(f"reference ingest failed:\n{done.stderr[:1500]}\n...\n{done.stderr[-1500:]}")


def wait_task_running(runs: Runs, dag_id: str, run_id: str, task_id: str, timeout: float = 600) -> dict:
    def running():
        for ti in runs.task_instances(dag_id, run_id):
            if ti["task_id"] == task_id and ti["state"] == "running" and ti.get("hostname"):
                return ti
        return None

    return wait_for(f"a running {task_id} task of {dag_id}", running, timeout, interval=0.5)


def tries(rows: list[dict]) -> dict[str, int]:
    return {row["task"]: row["try"] for row in rows if (row["try"] or 1) > 1}


# --- the drills ---------------------------------------------------------------------------------


def drill_1(cluster: Cluster, runs: Runs) -> dict:
    ingest = run_ingest(runs, log)
    grade_run = runs.trigger(GRADE_DAG)
    grade_state = runs.wait(GRADE_DAG, grade_run)
    rows = [row for result in ingest.values() for row in result["tasks"]] + placement(runs, GRADE_DAG, grade_run)
    mapped_hosts = sorted({row["hostname"] for row in rows if row["mapped"]})
    all_hosts = sorted({row["hostname"] for row in rows})
    reference = write_config(cluster, "reference", "DrillReference", local_staging=True)
    reference_ingest(cluster, reference)
    cluster_table = {k: v for k, v in chunk_table(cluster, "RagloopChunks").items() if not k[0].startswith("qa:")}
    diff = compare(cluster_table, chunk_table(cluster, "DrillReference"))
    states = {d: r["state"] for d, r in ingest.items()} | {GRADE_DAG: grade_state}
    ok = all(s == "success" for s in states.values()) and len(mapped_hosts) == 2 and diff["lost"] == diff["stale"] == diff["duplicated"] == 0
    return report(
        1,
        "scheduler-made runs on the Celery workers",
        "one run of each ingest DAG and of the feedback DAG, made by the scheduler",
        "all succeed on the workers; mapped tasks on both workers; the index equals a dag.test() ingest chunk for chunk",
        {"states": states, "mapped_task_hosts": mapped_hosts, "task_hosts": all_hosts, "versus_reference": diff},
        ok,
    )


def corpus(cluster: Cluster, files: int) -> Path:
    folder = cluster.folder / "drills" / "corpus"
    if not folder.exists():
        generate(folder, files)
    return folder


def drill_2(cluster: Cluster, runs: Runs, docs: Path) -> dict:
    config = write_config(cluster, "kill-worker", f"DrillKill{STAMP}", docs, index_batch_chunks=150)
    run_id = runs.trigger(DOCS_DAG, {"config": str(config)})
    ti = wait_task_running(runs, DOCS_DAG, run_id, "index")
    victim = ti["hostname"]
    worker = cluster.worker(victim)
    killed_pid = worker.process.kill_now()
    log(f"SIGKILLed {victim} (pid {killed_pid}) while it ran index[{ti['map_index']}]")
    time.sleep(5)
    worker.start(log, timeout=120)  # the machine comes back
    state = runs.wait(DOCS_DAG, run_id, 1800)
    rows = placement(runs, DOCS_DAG, run_id)
    diff = compare(chunk_table(cluster, f"DrillKill{STAMP}"), chunk_table(cluster, "DrillCorpusReference"))
    killed_task = f"index[{ti['map_index']}]"
    retried = next((row for row in rows if row["task"] == killed_task), {})
    ok = state == "success" and (retried.get("try") or 1) > 1 and diff["lost"] == diff["duplicated"] == diff["stale"] == 0
    return report(
        2,
        "a worker SIGKILLed in the middle of an index task",
        f"SIGKILL to the process group of {victim} while it ran {killed_task} (try {ti.get('try_number')}); restarted 5 s later",
        "the try fails on its heartbeat timeout, the retry runs, the run succeeds; 0 lost, 0 duplicated, 0 stale",
        {"run": state, "killed_task": retried, "retried_tasks": tries(rows), "versus_reference": diff},
        ok,
    )


def drill_3(cluster: Cluster, runs: Runs, docs: Path) -> dict:
    from ragloop.index import connect_local, delete_documents

    nodes = cluster.weaviate_nodes()
    leader = next(s["leaderId"] for s in nodes[0].statistics())
    down = next(node for node in reversed(nodes) if node.hostname != leader)
    config = write_config(cluster, "kill-node", f"DrillNode{STAMP}", docs, index_batch_chunks=150)
    run_id = runs.trigger(DOCS_DAG, {"config": str(config)})
    wait_task_running(runs, DOCS_DAG, run_id, "index")
    down.process.kill_now()
    log(f"SIGKILLed Weaviate node {down.hostname} (leader: {leader})")
    state = runs.wait(DOCS_DAG, run_id, 1800)
    rows = placement(runs, DOCS_DAG, run_id)
    first = nodes[0]
    # While it is down: delete one document and revoke the written-back answer.
    table = chunk_table(cluster, f"DrillNode{STAMP}")
    victim_doc = sorted({key[0] for key in table})[0]
    with connect_local("127.0.0.1", first.http_port, first.grpc_port) as client:
        deleted = delete_documents(client, f"DrillNode{STAMP}", [victim_doc])
    answers = cluster.ragloop("qa", "list", "--json")
    written = json.loads(answers.stdout)["answers"] if answers.returncode == 0 else []
    revoked = None
    if written:
        revoked = written[0]["run_id"]
        done = cluster.ragloop("qa", "revoke", revoked, "--json")
        if done.returncode != 0:
            revoked = f"revoke failed: {done.stderr[-500:]}"
    down.start_background()
    down.wait_ready(180)

    def converged():
        counts = {node.hostname: node.local_count(f"DrillNode{STAMP}") for node in nodes}
        qa = {node.hostname: node.local_count("RagloopChunks") for node in nodes}
        return (counts, qa) if len(set(counts.values())) == 1 and len(set(qa.values())) == 1 else None

    try:
        counts, qa_counts = wait_for("every node to serve the same objects", converged, 600, interval=5)
    except Exception as err:  # noqa: BLE001 - a drill reports what it saw
        counts, qa_counts = {"error": str(err)}, {}
    after = chunk_table(cluster, f"DrillNode{STAMP}")
    resurrected = [key for key in after if key[0] == victim_doc]
    qa_back = [key for key in chunk_table(cluster, "RagloopChunks") if isinstance(revoked, str) and key[0] == f"qa:{revoked}"]
    ok = state == "success" and not resurrected and not qa_back and "error" not in counts
    return report(
        3,
        "a Weaviate node killed during an ingest",
        f"SIGKILL to {down.hostname} (a Raft follower) while index tasks wrote; {victim_doc} deleted ({deleted} chunks) "
        f"and the answer of run {revoked} revoked while it was down; then restarted",
        "QUORUM writes go on, the run succeeds; after the restart every node serves the same objects; nothing deleted comes back",
        {"run": state, "retried_tasks": tries(rows), "per_node_objects": counts, "per_node_RagloopChunks": qa_counts,
         "deleted_doc_back": resurrected, "revoked_answer_back": qa_back},
        ok,
    )


def drill_4(cluster: Cluster, runs: Runs, docs: Path) -> dict:
    config = write_config(cluster, "s3-restart", f"DrillS3{STAMP}", docs, index_batch_chunks=150)
    run_id = runs.trigger(DOCS_DAG, {"config": str(config)})
    wait_task_running(runs, DOCS_DAG, run_id, "index")
    s3 = cluster.s3()
    stopped_at = time.monotonic()
    s3.stop()
    log(f"SeaweedFS stopped in {time.monotonic() - stopped_at:.1f} s")
    time.sleep(10)
    s3.start(log, timeout=180)
    state = runs.wait(DOCS_DAG, run_id, 1800)
    rows = placement(runs, DOCS_DAG, run_id)
    errors = []
    for worker in ("worker-1", "worker-2"):
        for path in (cluster.folder / worker / "logs").rglob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if "StagingError" not in line:
                    continue
                try:
                    details = json.loads(line).get("error_detail") or []
                except ValueError:
                    continue
                for detail in details:
                    if detail.get("exc_type") == "StagingError":
                        errors.append(f"{detail['exc_type']}: {detail['exc_value']}"[:400])
    diff = compare(chunk_table(cluster, f"DrillS3{STAMP}"), chunk_table(cluster, "DrillCorpusReference"))
    ok = state == "success" and diff["lost"] == diff["duplicated"] == diff["stale"] == 0
    return report(
        4,
        "the S3 server restarted during an ingest",
        "SIGTERM to SeaweedFS while an index task ran, 10 s down, started again",
        "the task that hit it fails with a StagingError naming the object; the retry succeeds; the index equals the reference",
        {"run": state, "retried_tasks": tries(rows), "staging_errors_logged": errors[-3:], "versus_reference": diff},
        ok,
    )


def drill_5(cluster: Cluster, runs: Runs) -> dict:
    asked = cluster.ragloop("ask", "Which signal makes fernd reopen its log files?", "--json")
    run_id = json.loads(asked.stdout)["run_id"]
    before = runs.api("GET", f"/ragloop/runs/{run_id}")["vote_summary"]["votes"]
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def voter():
        number = 0
        while not stop.is_set() and number < 400:
            number += 1
            request = urllib.request.Request(
                f"{cluster.api_url}/ragloop/runs/{run_id}/feedback",
                data=json.dumps({"vote": "up", "user_id": f"drill-{number}"}).encode(),
                headers={"content-type": "application/json", "authorization": f"Bearer {runs.token}"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    results.append((response.status, None))
            except urllib.error.HTTPError as err:
                results.append((err.code, err.headers.get("Retry-After")))
            except (urllib.error.URLError, OSError) as err:
                results.append((0, str(err)[:80]))
            time.sleep(0.1)

    thread = threading.Thread(target=voter)
    thread.start()
    time.sleep(3)
    postgres = cluster.postgres()
    postgres.stop()
    time.sleep(8)
    postgres.start(log)
    time.sleep(8)
    stop.set()
    thread.join(60)
    after = runs.api("GET", f"/ragloop/runs/{run_id}")["vote_summary"]["votes"]
    codes: dict[str, int] = {}
    for code, _ in results:
        codes[str(code)] = codes.get(str(code), 0) + 1
    retry_after = sorted({r for code, r in results if code == 503 and r})
    last = results[-5:]
    # Airflow's own processes lost their metadata DB too: restart any that exited.
    restarted = []
    for process in cluster.airflow_processes():
        if not process.pid():
            process.start(log, timeout=240)
            restarted.append(process.name)
    stored_ok = sum(n for code, n in codes.items() if code.startswith("2"))
    unauthorized = sorted({r for code, r in results if code == 401})
    ok = codes.get("503", 0) > 0 and bool(retry_after) and after - before == stored_ok and all(200 <= c < 300 for c, _ in last)
    return report(
        5,
        "Postgres restarted while the runs API takes votes",
        "fast shutdown of Postgres during a stream of votes (every 0.1 s), 8 s down, started again",
        "503 with Retry-After while it is down; every 2xx is a stored vote and nothing else is; votes are stored again after",
        {"responses": codes, "retry_after": retry_after, "accepted": stored_ok, "votes_stored": after - before,
         "last_responses": [c for c, _ in last], "401_retry_after": unauthorized,
         "airflow_processes_restarted": restarted},
        ok,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="*", help="drill numbers to run (default: all)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--files", type=int, default=120, help="generated docs for drills 2-4")
    args = parser.parse_args()
    cluster = Cluster()
    started = False
    if not (cluster.state_file.exists() and cluster.status()["components"].get("api-server", {}).get("ready")):
        cluster.start(progress=log)
        started = True
    results = []
    try:
        runs = Runs(cluster)
        runs.wait_parsed((*INGEST_DAGS, GRADE_DAG))
        wanted = set(args.only or [1, 2, 3, 4, 5])
        docs = corpus(cluster, args.files) if wanted & {2, 3, 4} else None
        if docs is not None:  # the reference for drills 2 and 4, made before any fault is injected
            reference = write_config(cluster, "corpus-ref", "DrillCorpusReference", docs, local_staging=True, index_batch_chunks=150)
            reference_ingest(cluster, reference)
        for number, drill in ((1, lambda: drill_1(cluster, runs)), (2, lambda: drill_2(cluster, runs, docs)),
                              (4, lambda: drill_4(cluster, runs, docs)), (3, lambda: drill_3(cluster, runs, docs)),
                              (5, lambda: drill_5(cluster, runs))):
            if number in wanted:
                log(f"-- drill {number}")
                try:
                    results.append(drill())
                except Exception as err:  # noqa: BLE001 - report and go on with the next drill
                    results.append(report(number, "error", "-", "-", {"error": f"{type(err).__name__}: {err}"[:2000]}, False))
    finally:
        if started and not args.keep:
            cluster.stop(progress=log)
    print(json.dumps({"drills": results}, default=str))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
