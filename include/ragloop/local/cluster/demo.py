"""What `make cluster` shows once the cluster is up: the sample ingest made by the scheduler on the
Celery workers, an answer recorded in the Postgres run store, a vote through the runs API, and
the feedback DAG writing the answer back; and where every mapped task ran."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any
from collections.abc import Callable

from ragloop.local.cluster.runner import COLLECTION, Cluster, ClusterError

INGEST_DAGS = ("ragloop_ingest_docs", "ragloop_ingest_slack", "ragloop_ingest_github_issues")
GRADE_DAG = "ragloop_grade_feedback"
QUESTION = "How long does an old SDK key keep working after rotation?"


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")


class Runs:
    """DAG runs through Airflow's REST API, with one token."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.token = cluster.token()

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        return self.cluster.api(method, path, body, token=self.token)

    def wait_parsed(self, dag_ids: tuple[str, ...], timeout: float = 300) -> None:
        def parsed():
            found = {d["dag_id"] for d in self.api("GET", "/api/v2/dags?dag_id_pattern=ragloop&limit=100")["dags"]}
            return found >= set(dag_ids)

        wait_for("the DAG processor to parse the DAGs", parsed, timeout)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def state(self, dag_id: str, run_id: str) -> str:
        quoted = urllib.parse.quote(run_id, safe="")
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")["state"]

    def wait(self, dag_id: str, run_id: str, timeout: float = 900) -> str:
        return wait_for(
            f"{dag_id} run {run_id} to end",
            lambda: (lambda s: s if s in ("success", "failed") else None)(self.state(dag_id, run_id)),
            timeout,
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        quoted = urllib.parse.quote(run_id, safe="")
        found = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=1000")["task_instances"]
        return sorted(found, key=lambda ti: (ti["task_id"], ti["map_index"]))

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        quoted = urllib.parse.quote(run_id, safe="")
        entry = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/xcomEntries/return_value?deserialize=true"
        )
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value


def placement(runs: Runs, dag_id: str, run_id: str) -> list[dict]:
    """Where each task instance ran: its hostname (the worker), state and try."""
    return [
        {
            "dag_id": dag_id,
            "task": ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]",
            "mapped": ti["map_index"] >= 0,
            "hostname": ti.get("hostname") or "",
            "state": ti["state"],
            "try": ti.get("try_number"),
        }
        for ti in runs.task_instances(dag_id, run_id)
    ]


def format_placement(rows: list[dict]) -> str:
    lines = [f"{'DAG':<30} {'task':<34} {'worker':<10} {'state':<8} try"]
    for row in rows:
        lines.append(f"{row['dag_id']:<30} {row['task']:<34} {row['hostname'] or '-':<10} {row['state']!s:<8} {row['try']}")
    return "\n".join(lines)


def run_ingest(runs: Runs, progress: Callable[[str], None], timeout: float = 1200) -> dict[str, dict]:
    """One run of each ingest DAG, made by the scheduler at the same time; waits for all three."""
    started = {dag_id: runs.trigger(dag_id) for dag_id in INGEST_DAGS}
    progress("triggered " + ", ".join(f"{d} ({r})" for d, r in started.items()))
    results = {}
    for dag_id, run_id in started.items():
        state = runs.wait(dag_id, run_id, timeout)
        results[dag_id] = {"run_id": run_id, "state": state, "tasks": placement(runs, dag_id, run_id)}
        progress(f"{dag_id}: {state}")
    return results


def run_demo(cluster: Cluster, progress: Callable[[str], None] = print) -> dict:
    runs = Runs(cluster)
    runs.wait_parsed((*INGEST_DAGS, GRADE_DAG))
    progress("== the sample ingest: three DAG runs made by the scheduler, run by the Celery workers ==")
    ingest = run_ingest(runs, progress)
    rows = [row for result in ingest.values() for row in result["tasks"]]
    progress(format_placement(rows))
    failed = {d: r["run_id"] for d, r in ingest.items() if r["state"] != "success"}
    if failed:
        raise ClusterError(f"ingest runs failed: {failed}; task logs under {cluster.folder}/worker-*/logs")
    mapped_hosts = sorted({row["hostname"] for row in rows if row["mapped"]})
    progress(f"mapped tasks ran on: {', '.join(mapped_hosts)}")

    progress("== ask (the answer is recorded in the Postgres run store) ==")
    asked = cluster.ragloop("ask", QUESTION, "--json")
    if asked.returncode != 0:
        raise ClusterError(f"`ragloop ask` failed:\n{asked.stderr[-3000:]}")
    answer = json.loads(asked.stdout)
    progress(answer["text"][:400])
    run_id = answer.get("run_id")
    if not run_id:
        raise ClusterError(f"the answer was not recorded as a run:\n{asked.stderr[-2000:]}")

    progress(f"== vote up on run {run_id} through the runs API ==")
    vote = runs.api("POST", f"/ragloop/runs/{run_id}/feedback", {"vote": "up", "user_id": "make-cluster", "comment": "clear"})
    progress(json.dumps(vote)[:300])

    progress("== the feedback DAG on the workers: grade and write the answer back ==")
    grade_run = runs.trigger(GRADE_DAG)
    grade_state = runs.wait(GRADE_DAG, grade_run)
    grade_rows = placement(runs, GRADE_DAG, grade_run)
    progress(format_placement(grade_rows))
    recorded = runs.api("GET", f"/ragloop/runs/{run_id}")
    writeback = recorded.get("writeback") or {}
    progress(f"{GRADE_DAG}: {grade_state}; write-back of run {run_id}: {writeback.get('state', 'none')}")
    nodes = cluster.weaviate_nodes_status()
    for node in cluster.weaviate_nodes():
        # What the node serves from its own replica (the nodes API's object counts lag behind).
        entry = nodes.setdefault(node.hostname, {"status": "?"})
        entry["objects"] = {COLLECTION: node.local_count(COLLECTION)}
        progress(f"{node.hostname}: {entry['status']}, {COLLECTION}: {entry['objects'][COLLECTION]} objects of its own")
    return {
        "ingest": ingest,
        "mapped_task_hosts": mapped_hosts,
        "answer_run_id": run_id,
        "grade": {"run_id": grade_run, "state": grade_state, "tasks": grade_rows},
        "writeback": writeback,
        "weaviate_nodes": nodes,
    }
