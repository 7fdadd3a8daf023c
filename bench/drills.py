"""Fault drills on the cluster of `make cluster` (not tests: they take minutes and need the whole
cluster). Each drill injects its fault, proves the fault hit, and checks the index against a
reference ingest made in one process (`ragloop ingest`, dag.test) before any fault: lost,
duplicated and stale chunks, and the written-back answers. Each prints what was injected, what
was expected and what was seen; the run writes one results file with every figure.

    python bench/drills.py                       # all drills in one run -> bench/results/cluster-drills.json
    python bench/drills.py --only 2 4 --keep     # some drills; leave the cluster running
    python bench/drills.py --only 4 --break 4    # drill 4 with its fault left out: it must FAIL
                                                 # (-> bench/results/cluster-drills-broken.json)

1. Scheduler-made runs of the three ingest DAGs and the feedback DAG on the Celery workers, with
   the scheduler SIGKILLed while a task runs and restarted: every run succeeds, every task but the one
   in flight at the kill on its first try,
   mapped tasks ran on both workers, the index equals the reference chunk for chunk, and the
   voted answer is written back.
2. A worker SIGKILLed while it runs an index task: the try fails on its heartbeat timeout, the
   retry runs, and the index converges: 0 lost, 0 duplicated, 0 stale chunks.
3. A Weaviate node (a Raft follower) SIGKILLed during an ingest: QUORUM writes and reads go on;
   a document deleted and a written-back answer revoked while it is down stay deleted after it
   comes back (also on the restarted node's own replica); the index equals the reference less
   the deleted document.
4. SeaweedFS (the S3 server) SIGKILLed during an ingest, down until a try fails (20-200 s; tasks
   that read their batch before the kill never meet it): the tasks that hit it fail
   with a StagingError naming the object (counted from the workers' task logs), their retries
   succeed, the index equals the reference.
5. Postgres shut down (fast) while the runs API takes votes: 503 with Retry-After while it is
   down and no other error (a 401 is a failure), every 2xx is a stored vote and nothing else is,
   recording resumes.
6. The Weaviate Raft leader SIGKILLed during an ingest: a new leader is elected, a QUORUM write
   through a surviving node is timed, the run succeeds, the index equals the reference, and the
   old leader catches up after its restart.

`--break N` runs drill N with its fault (or, for drills 1 and 3, its guarantee) taken away, to
show that the drill then fails: see BREAKS.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import generate

from ragloop.local.cluster.demo import GRADE_DAG, INGEST_DAGS, QUESTION, Runs, placement, wait_for
from ragloop.local.cluster.runner import Cluster

DOCS_DAG = "ragloop_ingest_docs"
STAMP = time.strftime("%H%M%S")  # fresh collections each run: a drill needs writes to interrupt
RESULTS = Path(__file__).resolve().parent / "results"
S3_DOWN_SECONDS = 20
# What `--break N` takes away from drill N; the drill must then report FAIL.
BREAKS = {
    1: "the scheduler is not killed, and one chunk of the cluster's index is deleted after the runs",
    2: "the worker is not killed",
    3: "the answer is not revoked while the node is down (nothing revoked)",
    4: "SeaweedFS is not killed",
    5: "Postgres is not shut down",
    6: "the Raft leader is not killed",
}
BROKEN: set[int] = set()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def report(number: int, title: str, injected: str, expected: str, seen: dict, ok: bool, failed: list[str] | None = None) -> dict:
    """`failed`: each check that did not hold, in words (empty when the drill passed)."""
    failed = failed or []
    ok = ok and not failed
    print(f"\n== drill {number}: {title} ==")
    print(f"injected: {injected}")
    print(f"expected: {expected}")
    print(f"seen:     {json.dumps(seen, default=str)}")
    for reason in failed:
        print(f"failed:   {reason}")
    print(f"result:   {'PASS' if ok else 'FAIL'}")
    broken = BREAKS[number] if number in BROKEN else None
    return {"drill": number, "title": title, "injected": injected, "expected": expected, "ok": ok,
            "failed_checks": failed, "broken_on_purpose": broken, "seen": seen}


def checks(*pairs: tuple[bool, str]) -> list[str]:
    """The descriptions of the checks that did not hold."""
    return [what for holds, what in pairs if not holds]


def clean(diff: dict) -> bool:
    return diff["lost"] == diff["duplicated"] == diff["stale"] == 0 and diff["chunks"] == diff["reference"] > 0


# --- the index as each side holds it ------------------------------------------------------------


def chunk_table(cluster: Cluster, collection: str, node_index: int = 0, level: str = "QUORUM") -> dict[tuple, list[tuple]]:
    """(doc_id, chunk_index) -> every object stored for it, read through one node at `level`
    (ONE: what that node's own replica holds)."""
    from weaviate.classes.config import ConsistencyLevel

    from ragloop.index import connect_local

    node = cluster.weaviate_nodes()[node_index]
    table: dict[tuple, list[tuple]] = {}
    with connect_local("127.0.0.1", node.http_port, node.grpc_port) as client:
        if not client.collections.exists(collection):
            return {}
        handle = client.collections.use(collection).with_consistency_level(ConsistencyLevel(level))
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


def running_task(runs: Runs, started: dict[str, str]) -> dict | None:
    for dag_id, run_id in started.items():
        for ti in runs.task_instances(dag_id, run_id):
            if ti["state"] == "running" and ti.get("hostname"):
                return {"dag_id": dag_id, "task": ti["task_id"], "map_index": ti["map_index"], "hostname": ti["hostname"]}
    return None


def drill_1(cluster: Cluster, runs: Runs) -> dict:
    from ragloop.documents import qa_doc_id

    scheduler = next(process for process in cluster.airflow_processes() if process.name == "scheduler")
    started = {dag_id: runs.trigger(dag_id) for dag_id in INGEST_DAGS}
    log("triggered " + ", ".join(f"{d} ({r})" for d, r in started.items()))
    killed_pid, in_flight = None, None
    if 1 not in BROKEN:
        in_flight = wait_for("a running task of the ingest runs", lambda: running_task(runs, started), 600, interval=0.5)
        killed_pid = scheduler.process.kill_now()
        log(f"SIGKILLed the scheduler (pid {killed_pid}) while {in_flight} ran")
        time.sleep(5)
        scheduler.start(log, timeout=240)
    new_pid = scheduler.pid()
    states = {dag_id: runs.wait(dag_id, run_id, 1800) for dag_id, run_id in started.items()}
    rows = [row for dag_id, run_id in started.items() for row in placement(runs, dag_id, run_id)]

    # A recorded answer, voted up, graded by the feedback DAG on the workers: it must be written back.
    asked = cluster.ragloop("ask", QUESTION, "--json")
    answer_run = json.loads(asked.stdout).get("run_id") if asked.returncode == 0 else None
    if answer_run:
        runs.api("POST", f"/ragloop/runs/{answer_run}/feedback", {"vote": "up", "user_id": "drill-1", "comment": "clear"})
    grade_run = runs.trigger(GRADE_DAG)
    states[GRADE_DAG] = runs.wait(GRADE_DAG, grade_run, 1200)
    rows += placement(runs, GRADE_DAG, grade_run)
    writeback = (runs.api("GET", f"/ragloop/runs/{answer_run}").get("writeback") or {}) if answer_run else {}

    if 1 in BROKEN:  # a lost chunk: the comparison must see it
        from ragloop.index import connect_local, delete_documents

        first = cluster.weaviate_nodes()[0]
        victim = sorted(key[0] for key in chunk_table(cluster, "RagloopChunks") if not key[0].startswith("qa:"))[0]
        with connect_local("127.0.0.1", first.http_port, first.grpc_port) as client:
            delete_documents(client, "RagloopChunks", [victim])
    mapped_hosts = sorted({row["hostname"] for row in rows if row["mapped"]})
    reference = write_config(cluster, "reference", "DrillReference", local_staging=True)
    reference_ingest(cluster, reference)
    table = chunk_table(cluster, "RagloopChunks")
    answer_chunks = sum(len(v) for key, v in table.items() if answer_run and key[0] == qa_doc_id(answer_run))
    diff = compare({k: v for k, v in table.items() if not k[0].startswith("qa:")}, chunk_table(cluster, "DrillReference"))
    # The task in flight at the kill may be run again (the restarted scheduler resets what it
    # cannot adopt); any other task on a second try is a fault the retries hid.
    def in_flight_label(row: dict) -> bool:
        if not in_flight:
            return False
        label = in_flight["task"] if in_flight["map_index"] in (-1, None) else f"{in_flight['task']}[{in_flight['map_index']}]"
        return row["dag_id"] == in_flight["dag_id"] and row["task"] == label

    other_retries = tries([row for row in rows if not in_flight_label(row)])
    failed = checks(
        (killed_pid is not None and in_flight is not None, "the scheduler was SIGKILLed while a task of the runs was running"),
        (other_retries == {}, f"every task but the one in flight at the kill ran on its first try: {other_retries}"),
        (new_pid is not None and new_pid != killed_pid, "a new scheduler process took over"),
        (all(s == "success" for s in states.values()), f"every run succeeded: {states}"),
        (len(mapped_hosts) == 2, f"mapped tasks ran on both workers: {mapped_hosts}"),
        (clean(diff), f"the index equals the reference: {diff}"),
        (bool(answer_run) and writeback.get("state") == "written" and answer_chunks > 0,
         f"the voted answer {answer_run} was written back: {writeback.get('state')}, {answer_chunks} chunks"),
    )
    return report(
        1,
        "scheduler-made runs on the Celery workers, the scheduler killed mid-run",
        f"one run of each ingest DAG, made by the scheduler; SIGKILL to the scheduler (pid {killed_pid}) while "
        f"{in_flight} ran, restarted 5 s later; then an answer voted up and the feedback DAG",
        "all succeed on the workers; mapped tasks on both workers; the index equals a dag.test() ingest chunk for chunk; "
        "the answer is written back",
        {"states": states, "scheduler_pid": {"killed": killed_pid, "after": new_pid}, "task_running_when_killed": in_flight,
         "retried_tasks": tries(rows), "mapped_task_hosts": mapped_hosts, "task_hosts": sorted({r["hostname"] for r in rows}),
         "versus_reference": diff, "answer_run": answer_run, "writeback": writeback.get("state"),
         "answer_chunks": answer_chunks},
        True,
        failed,
    )


def corpus(cluster: Cluster, files: int) -> Path:
    folder = cluster.folder / "drills" / "corpus"
    if not folder.exists():
        generate(folder, files)
    return folder


def drill_2(cluster: Cluster, runs: Runs, docs: Path) -> dict:
    collection = f"DrillKill{STAMP}"
    config = write_config(cluster, "kill-worker", collection, docs, index_batch_chunks=150)
    run_id = runs.trigger(DOCS_DAG, {"config": str(config)})
    ti = wait_task_running(runs, DOCS_DAG, run_id, "index")
    victim = ti["hostname"]
    killed_task = f"index[{ti['map_index']}]"
    killed_pid = None
    if 2 not in BROKEN:
        worker = cluster.worker(victim)
        killed_pid = worker.process.kill_now()
        log(f"SIGKILLed {victim} (pid {killed_pid}) while it ran {killed_task}")
        time.sleep(5)
        worker.start(log, timeout=120)  # the machine comes back
    state = runs.wait(DOCS_DAG, run_id, 1800)
    rows = placement(runs, DOCS_DAG, run_id)
    diff = compare(chunk_table(cluster, collection), chunk_table(cluster, "DrillCorpusReference"))
    retried = next((row for row in rows if row["task"] == killed_task), {})
    failed = checks(
        (killed_pid is not None, f"{victim} was SIGKILLed while it ran {killed_task}"),
        ((retried.get("try") or 1) > 1, f"{killed_task} needed a second try: {retried}"),
        (state == "success", f"the run succeeded: {state}"),
        (clean(diff), f"the index equals the reference: {diff}"),
    )
    return report(
        2,
        "a worker SIGKILLed in the middle of an index task",
        f"SIGKILL to the process group of {victim} (pid {killed_pid}) while it ran {killed_task} "
        f"(try {ti.get('try_number')}); restarted 5 s later",
        "the try fails on its heartbeat timeout, the retry runs, the run succeeds; 0 lost, 0 duplicated, 0 stale",
        {"run": state, "killed_task": retried, "retried_tasks": tries(rows), "versus_reference": diff},
        True,
        failed,
    )


def converge(nodes: list, collections: list[str], timeout: float = 600) -> dict:
    """Wait until every node serves the same number of objects of each collection from its own replica."""

    def converged():
        counts = {name: {node.hostname: node.local_count(name) for node in nodes} for name in collections}
        return counts if all(len(set(c.values())) == 1 for c in counts.values()) else None

    try:
        return wait_for("every node to serve the same objects", converged, timeout, interval=5)
    except Exception as err:  # noqa: BLE001 - a drill reports what it saw
        return {"error": str(err)}


def drill_3(cluster: Cluster, runs: Runs, docs: Path) -> dict:
    from ragloop.documents import qa_doc_id
    from ragloop.index import connect_local, delete_documents

    collection = f"DrillNode{STAMP}"
    nodes = cluster.weaviate_nodes()
    leader = next(s["leaderId"] for s in nodes[0].statistics())
    down = next(node for node in reversed(nodes) if node.hostname != leader and node is not nodes[0])
    down_index = nodes.index(down)
    config = write_config(cluster, "kill-node", collection, docs, index_batch_chunks=150)
    run_id = runs.trigger(DOCS_DAG, {"config": str(config)})
    wait_task_running(runs, DOCS_DAG, run_id, "index")
    killed_pid = down.process.kill_now()
    log(f"SIGKILLed Weaviate node {down.hostname} (pid {killed_pid}; leader: {leader})")
    state = runs.wait(DOCS_DAG, run_id, 1800)
    rows = placement(runs, DOCS_DAG, run_id)
    first = nodes[0]
    statuses_while_down = first.node_statuses()
    # While it is down: delete one document and revoke a written-back answer (drill 1 wrote one).
    table = chunk_table(cluster, collection)
    victim_doc = sorted({key[0] for key in table})[0]
    with connect_local("127.0.0.1", first.http_port, first.grpc_port) as client:
        deleted = delete_documents(client, collection, [victim_doc])
    listed = cluster.ragloop("qa", "list", "--json")
    written = json.loads(listed.stdout)["answers"] if listed.returncode == 0 else []
    revoked, revoke_error, answer_chunks_before = None, None, 0
    if written and 3 not in BROKEN:
        candidate = written[0]["run_id"]
        answer_chunks_before = sum(len(v) for k, v in chunk_table(cluster, "RagloopChunks").items() if k[0] == qa_doc_id(candidate))
        done = cluster.ragloop("qa", "revoke", candidate, "--json")
        if done.returncode == 0:
            revoked = candidate
        else:
            revoke_error = done.stderr[-500:]
    answer_chunks_after_revoke = (
        sum(len(v) for k, v in chunk_table(cluster, "RagloopChunks").items() if k[0] == qa_doc_id(revoked)) if revoked else None
    )
    down.start_background()
    down.wait_ready(180)
    counts = converge(nodes, [collection, "RagloopChunks"])
    after = chunk_table(cluster, collection)
    on_restarted = chunk_table(cluster, collection, down_index, level="ONE")
    qa_quorum = chunk_table(cluster, "RagloopChunks")
    qa_restarted = chunk_table(cluster, "RagloopChunks", down_index, level="ONE")
    resurrected = sorted({key[0] for key in (*after, *on_restarted) if key[0] == victim_doc})
    qa_back = sorted({key[0] for key in (*qa_quorum, *qa_restarted) if revoked and key[0] == qa_doc_id(revoked)})
    reference = {k: v for k, v in chunk_table(cluster, "DrillCorpusReference").items() if k[0] != victim_doc}
    diff = compare(after, reference)
    diff_restarted = compare(on_restarted, reference)
    failed = checks(
        (killed_pid is not None and statuses_while_down.get(down.hostname) != "HEALTHY",
         f"{down.hostname} was SIGKILLed and seen down: {statuses_while_down}"),
        (state == "success", f"the run succeeded: {state}"),
        (deleted > 0, f"{victim_doc} had chunks to delete: {deleted}"),
        (revoked is not None and answer_chunks_before > 0 and answer_chunks_after_revoke == 0,
         f"a written-back answer was revoked while the node was down ({len(written)} listed; revoked {revoked}; "
         f"chunks {answer_chunks_before} before, {answer_chunks_after_revoke} after; error {revoke_error})"),
        ("error" not in counts, f"every node serves the same objects after the restart: {counts}"),
        (not resurrected, f"the deleted document stayed deleted: {resurrected}"),
        (not qa_back, f"the revoked answer stayed revoked: {qa_back}"),
        (clean(diff), f"the index (QUORUM) equals the reference less the deleted document: {diff}"),
        (clean(diff_restarted), f"the restarted node's own replica equals it too: {diff_restarted}"),
    )
    return report(
        3,
        "a Weaviate node (a Raft follower) killed during an ingest",
        f"SIGKILL to {down.hostname} (a Raft follower; leader {leader}) while index tasks wrote; {victim_doc} deleted "
        f"({deleted} chunks) and the answer of run {revoked} revoked while it was down; then restarted",
        "QUORUM writes go on, the run succeeds; after the restart every node serves the same objects; nothing deleted "
        "or revoked comes back; the index equals the reference less the deleted document",
        {"run": state, "retried_tasks": tries(rows), "statuses_while_down": statuses_while_down, "per_node_objects": counts,
         "answers_listed": len(written), "revoked": revoked, "answer_chunks_before_revoke": answer_chunks_before,
         "answer_chunks_after_revoke": answer_chunks_after_revoke, "deleted_doc_back": resurrected,
         "revoked_answer_back": qa_back, "versus_reference": diff, "restarted_node_versus_reference": diff_restarted},
        True,
        failed,
    )


def staging_errors(cluster: Cluster, since: float) -> list[str]:
    """The StagingErrors the workers' task logs of the docs DAG recorded since `since` (epoch s)."""
    found = []
    for worker in ("worker-1", "worker-2"):
        for path in (cluster.folder / worker / "logs").rglob("*.log"):
            if f"dag_id={DOCS_DAG}" not in str(path) or path.stat().st_mtime < since:
                continue
            for line in path.read_text(errors="replace").splitlines():
                if "StagingError" not in line:
                    continue
                try:
                    details = json.loads(line).get("error_detail") or []
                except ValueError:
                    continue
                for detail in details:
                    if detail.get("exc_type") == "StagingError":
                        found.append(f"{path.parent.name}/{path.name}: {detail['exc_value']}"[:400])
    return found


def drill_4(cluster: Cluster, runs: Runs, docs: Path) -> dict:
    collection = f"DrillS3{STAMP}"
    config = write_config(cluster, "s3-kill", collection, docs, index_batch_chunks=150)
    since = time.time()
    run_id = runs.trigger(DOCS_DAG, {"config": str(config)})
    wait_task_running(runs, DOCS_DAG, run_id, "index")
    s3 = cluster.s3()
    killed_pid = None
    down_seconds = 0.0
    if 4 not in BROKEN:
        killed_pid = s3.process.kill_now()
        killed_at = time.monotonic()
        log(f"SIGKILLed SeaweedFS (pid {killed_pid}); down for {S3_DOWN_SECONDS} s at least, until a task met it")
        time.sleep(S3_DOWN_SECONDS)

        def met() -> bool:  # a try failed: the tasks that had read their batch before the kill never meet it
            return any(ti["state"] in ("up_for_retry", "failed") or (ti.get("try_number") or 1) > 1
                       for ti in runs.task_instances(DOCS_DAG, run_id))

        try:
            wait_for("a task to meet the S3 outage", met, 180, interval=1)
        except Exception as err:  # noqa: BLE001 - the checks below say what was not seen
            log(str(err))
        down_seconds = round(time.monotonic() - killed_at, 1)
        s3.start(log, timeout=180)
    state = runs.wait(DOCS_DAG, run_id, 1800)
    rows = placement(runs, DOCS_DAG, run_id)
    errors = staging_errors(cluster, since)
    diff = compare(chunk_table(cluster, collection), chunk_table(cluster, "DrillCorpusReference"))
    retried = tries(rows)
    failed = checks(
        (killed_pid is not None, "SeaweedFS was SIGKILLed while an index task ran"),
        (len(errors) > 0, "a task met the outage: a StagingError in the workers' task logs"),
        (len(retried) > 0, "a task needed a retry"),
        (state == "success", f"the run succeeded: {state}"),
        (clean(diff), f"the index equals the reference: {diff}"),
    )
    return report(
        4,
        "the S3 server killed during an ingest",
        f"SIGKILL to SeaweedFS (pid {killed_pid}) while an index task ran, {down_seconds} s down (until a try "
        "failed, 20 s at least), started again",
        "the tasks that hit it fail with a StagingError naming the object; their retries succeed; the index equals "
        "the reference",
        {"run": state, "retried_tasks": retried, "staging_errors": len(errors), "staging_errors_logged": errors[-3:],
         "versus_reference": diff},
        True,
        failed,
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
    stopped_pid = None
    if 5 not in BROKEN:
        stopped_pid = postgres.pid()
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
    without_retry_after = sum(1 for code, r in results if code == 503 and not r)
    other_errors = {code: n for code, n in codes.items() if not code.startswith("2") and code != "503"}
    last = results[-5:]
    # Airflow's own processes lost their metadata DB too: restart any that exited.
    restarted = []
    for process in cluster.airflow_processes():
        if not process.pid():
            process.start(log, timeout=240)
            restarted.append(process.name)
    stored_ok = sum(n for code, n in codes.items() if code.startswith("2"))
    failed = checks(
        (stopped_pid is not None, "Postgres was shut down during the votes"),
        (codes.get("503", 0) > 0 and bool(retry_after) and not without_retry_after,
         f"the outage was answered 503 with Retry-After ({codes.get('503', 0)} 503s, {without_retry_after} without it)"),
        (not other_errors, f"no other error (a 401 is a failure): {other_errors}"),
        (after - before == stored_ok, f"every 2xx is a stored vote and nothing else is: {stored_ok} accepted, {after - before} stored"),
        (bool(last) and all(200 <= c < 300 for c, _ in last), f"votes are stored again after: {[c for c, _ in last]}"),
    )
    return report(
        5,
        "Postgres shut down while the runs API takes votes",
        f"fast shutdown of Postgres (pid {stopped_pid}) during a stream of votes (every 0.1 s), 8 s down, started again",
        "503 with Retry-After while it is down and no other error; every 2xx is a stored vote and nothing else is; "
        "votes are stored again after",
        {"responses": codes, "retry_after": retry_after, "accepted": stored_ok, "votes_stored": after - before,
         "last_responses": [c for c, _ in last], "airflow_processes_restarted": restarted},
        True,
        failed,
    )


def current_leader(node) -> str:
    try:
        return next((s.get("leaderId") or "" for s in node.statistics()), "")
    except (urllib.error.URLError, OSError, ValueError):
        return ""


def leader_other_than(node, hostname: str) -> str | None:
    """The leader `node` sees, when it is known and not `hostname`."""
    seen = current_leader(node)
    return seen if seen and seen != hostname else None


def drill_6(cluster: Cluster, runs: Runs, docs: Path) -> dict:
    """The workers reach Weaviate through the connection's node (the first): the leader killed is
    another node. When the first node leads, it is restarted once first, so another node leads."""
    from weaviate.classes.config import ConsistencyLevel, Configure, DataType, Property

    from ragloop.index import connect_local

    collection, probe_collection = f"DrillLeader{STAMP}", f"DrillProbe{STAMP}"
    nodes = cluster.weaviate_nodes()
    first = nodes[0]
    handover = None
    if current_leader(first) == first.hostname:
        first.process.kill_now()
        handover = wait_for("another node to lead", lambda: leader_other_than(nodes[1], first.hostname), 180, interval=1)
        first.start_background()
        first.wait_ready(180)
        wait_for("the first node to rejoin", lambda: set(first.node_statuses().values()) == {"HEALTHY"}, 180, interval=2)
        log(f"the connection's node led; restarted it: {handover} leads now")
    leader = current_leader(first)
    victim = next(node for node in nodes if node.hostname == leader)
    victim_index = nodes.index(victim)
    with connect_local("127.0.0.1", first.http_port, first.grpc_port) as client:
        if not client.collections.exists(probe_collection):
            client.collections.create(probe_collection, properties=[Property(name="note", data_type=DataType.TEXT)],
                                      replication_config=Configure.replication(factor=len(nodes)))
    config = write_config(cluster, "kill-leader", collection, docs, index_batch_chunks=150)
    run_id = runs.trigger(DOCS_DAG, {"config": str(config)})
    wait_task_running(runs, DOCS_DAG, run_id, "index")
    killed_pid, killed_at = None, time.monotonic()
    if 6 not in BROKEN:
        killed_pid = victim.process.kill_now()
        killed_at = time.monotonic()
        log(f"SIGKILLed the Raft leader {leader} (pid {killed_pid})")
    elected: dict = {}

    def watch_leader():  # when a survivor first names another leader
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not elected:
            seen = leader_other_than(first, leader)
            if seen:
                elected.update(leader=seen, after_s=round(time.monotonic() - killed_at, 1))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_leader, daemon=True)
    watcher.start()

    def probe(name: str) -> dict:
        """One object written at QUORUM through the connection's node (a survivor), as a task
        would: a failed write is tried again (5 s apart, 3 tries at most), each try timed."""
        attempts = []
        with connect_local("127.0.0.1", first.http_port, first.grpc_port) as client:
            handle = client.collections.use(name).with_consistency_level(ConsistencyLevel.QUORUM)
            for _ in range(3):
                began = time.monotonic()
                try:
                    if name == probe_collection:
                        handle.data.insert({"note": "written after the leader was killed"})
                    else:  # a chunk-shaped object in the ingest's collection, deleted again below
                        handle.data.insert({"doc_id": "drill-probe", "text": "probe"}, vector=[0.0] * 383 + [1.0])
                    attempt: dict = {"ok": True}
                except Exception as err:  # noqa: BLE001 - the drill reports what the write met
                    attempt = {"ok": False, "error": f"{type(err).__name__}: {err}"[:300]}
                attempt.update(seconds=round(time.monotonic() - began, 1), after_kill_s=round(began - killed_at, 1))
                attempts.append(attempt)
                if attempt["ok"]:
                    break
                time.sleep(5)
        return {"ok": attempts[-1]["ok"], "tries": len(attempts), "attempts": attempts}

    # A collection whose shards already hold objects (the ingest's), then one never written yet.
    written_collection = probe(collection)
    fresh_collection = probe(probe_collection)
    watcher.join(300)
    fresh_after_election = probe(probe_collection)
    with connect_local("127.0.0.1", first.http_port, first.grpc_port) as client:
        from weaviate.classes.query import Filter

        client.collections.use(collection).data.delete_many(where=Filter.by_property("doc_id").equal("drill-probe"))
    new_leader = elected.get("leader") or current_leader(first)
    state = runs.wait(DOCS_DAG, run_id, 1800)
    rows = placement(runs, DOCS_DAG, run_id)
    reference = chunk_table(cluster, "DrillCorpusReference")
    diff = compare(chunk_table(cluster, collection), reference)
    victim.start_background()
    victim.wait_ready(180)
    counts = converge(nodes, [collection])
    diff_restarted = compare(chunk_table(cluster, collection, victim_index, level="ONE"), reference)
    failed = checks(
        (killed_pid is not None, f"the Raft leader {leader} was SIGKILLed while an index task ran"),
        (bool(new_leader) and new_leader != leader, f"another node was elected leader: {new_leader}"),
        (written_collection.get("ok") is True,
         f"a QUORUM write through a survivor succeeded (within 3 tries): {written_collection}"),
        (fresh_after_election.get("ok") is True,
         f"a write to a collection never written before succeeded once a new leader was elected: {fresh_after_election}"),
        (state == "success", f"the run succeeded: {state}"),
        (clean(diff), f"the index equals the reference: {diff}"),
        ("error" not in counts, f"every node serves the same objects after the restart: {counts}"),
        (clean(diff_restarted), f"the old leader's own replica equals the reference: {diff_restarted}"),
    )
    return report(
        6,
        "the Weaviate Raft leader killed during an ingest",
        f"SIGKILL to {leader} (the Raft leader, pid {killed_pid}) while index tasks wrote; restarted after the run"
        + (f" (the connection's node led first and was restarted once: {handover} led then)" if handover else ""),
        "a new leader is elected; a QUORUM write goes through; the run succeeds; the index equals the reference; "
        "the old leader catches up",
        {"run": state, "retried_tasks": tries(rows), "old_leader": leader, "new_leader": new_leader,
         "new_leader_seen_after_s": elected.get("after_s"), "quorum_write_written_collection": written_collection,
         "quorum_write_fresh_collection": fresh_collection, "fresh_collection_after_election": fresh_after_election,
         "per_node_objects": counts,
         "versus_reference": diff, "old_leader_versus_reference": diff_restarted},
        True,
        failed,
    )


def machine() -> dict:
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "0")
    return {"cpus": os.cpu_count(), "memory_gib": round(int(memory) / 2**20, 1), "platform": platform.platform(),
            "python": platform.python_version(), "load_average_at_end": os.getloadavg()}


def commit() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="*", help="drill numbers to run (default: all)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--files", type=int, default=120, help="generated docs for drills 2, 3, 4 and 6")
    parser.add_argument("--break", dest="broken", type=int, nargs="*", default=[], choices=sorted(BREAKS),
                        help="take away these drills' fault or guarantee (see BREAKS): they must fail")
    parser.add_argument("--note", default="", help="a note for the results file, e.g. that the machine was shared")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/cluster-drills.json, "
                                                  "or cluster-drills-broken.json with --break, merged by drill)")
    args = parser.parse_args()
    BROKEN.update(args.broken)
    out = args.out or RESULTS / ("cluster-drills-broken.json" if BROKEN else "cluster-drills.json")
    began, date, code = time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), commit()  # what ran
    cluster = Cluster()
    started = False
    if not (cluster.state_file.exists() and cluster.status()["components"].get("api-server", {}).get("ready")):
        cluster.start(progress=log)
        started = True
    results = []
    wanted = set(args.only or BREAKS)
    try:
        runs = Runs(cluster)
        runs.wait_parsed((*INGEST_DAGS, GRADE_DAG))
        docs = corpus(cluster, args.files) if wanted & {2, 3, 4, 6} else None
        if docs is not None:  # the reference for drills 2, 3, 4 and 6, made before any fault is injected
            reference = write_config(cluster, "corpus-ref", "DrillCorpusReference", docs, local_staging=True, index_batch_chunks=150)
            reference_ingest(cluster, reference)
        corpus_docs = docs or Path()  # only drills 2, 3, 4 and 6 read it, and for them it was made
        # Drill 5 last: the Airflow processes lose their metadata DB in it.
        for number, drill in ((1, lambda: drill_1(cluster, runs)), (2, lambda: drill_2(cluster, runs, corpus_docs)),
                              (4, lambda: drill_4(cluster, runs, corpus_docs)), (3, lambda: drill_3(cluster, runs, corpus_docs)),
                              (6, lambda: drill_6(cluster, runs, corpus_docs)), (5, lambda: drill_5(cluster, runs))):
            if number in wanted:
                log(f"-- drill {number}" + (f" (broken on purpose: {BREAKS[number]})" if number in BROKEN else ""))
                drill_began = time.monotonic()
                try:
                    results.append(drill())
                except Exception as err:  # noqa: BLE001 - report and go on with the next drill
                    results.append(report(number, "error", "-", "-", {}, False, [f"{type(err).__name__}: {err}"[:2000]]))
                results[-1]["seconds"] = round(time.monotonic() - drill_began, 1)
    finally:
        if started and not args.keep:
            cluster.stop(progress=log)
    document = {
        "bench": "cluster-drills", "date": date, **code, "machine": machine(),
        "command": "python bench/drills.py " + " ".join(sys.argv[1:]),
        "inputs": {"corpus": f"bench/corpus.py generate(), {args.files} files" if docs is not None else None,
                   "samples": "include/sources.yaml (the bundled samples)", "index_batch_chunks": 150},
        "note": args.note,
        "cluster_started_by_this_run": started, "seconds": round(time.monotonic() - began, 1),
        "passed": sum(r["ok"] for r in results), "drills": results,
    }
    if BROKEN and out.exists():  # one entry per broken drill, kept across runs
        earlier = json.loads(out.read_text())
        document["drills"] = sorted([d for d in earlier.get("drills", []) if d["drill"] not in wanted] + results, key=lambda d: d["drill"])
        document["runs"] = [*earlier.get("runs", []), {k: document[k] for k in ("date", "commit", "command", "seconds")}]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str))
    print(json.dumps({"drills": [{k: r[k] for k in ("drill", "ok", "failed_checks")} for r in results], "results_file": str(out)}))
    log(f"results: {out}")
    if BROKEN:  # a broken drill must fail; the run "passes" when every broken drill failed
        return 0 if all(not r["ok"] for r in results if r["drill"] in BROKEN) else 1
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
