"""One DAG run through a real Celery worker with a real redis-server broker, in the suite: the
CeleryExecutor path `make cluster` deploys, started by the same code (ragloop.local.cluster.runner:
its Airflow environment, Redis and worker), made smaller: the session's PostgreSQL as Airflow's
metadata DB and Celery's result backend, the session's Weaviate, one worker, no S3 (the check DAG
stages nothing). The scheduler queues the run's tasks to Redis; the worker runs them, each on its
first try, and Airflow records the worker's name on every task instance."""

from __future__ import annotations

import json

import pytest

from airflow_helpers import task_instances, wait_for, wait_for_run_end
from conftest import SAMPLES, write_config

pytestmark = pytest.mark.integration

WORKER = "worker-1"
CHECK_DAG = "ragloop_check"


@pytest.fixture(scope="module")
def celery_airflow(postgres_server, weaviate_server, tmp_path_factory):
    from ragloop.local.cluster.runner import Cluster

    folder = tmp_path_factory.mktemp("celery")
    cluster = Cluster(folder=folder)
    settings = cluster.settings(create=True)  # free ports and secrets, as `ragloop cluster start` picks them
    settings["postgres_port"] = postgres_server.port
    settings["weaviate"][0].update(http_port=weaviate_server.http_port, grpc_port=weaviate_server.grpc_port)
    cluster.state_file.write_text(json.dumps(settings))
    for database in ("airflow", "ragloop_runs"):  # the names the cluster's environment uses
        postgres_server.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        postgres_server.psql(f'CREATE DATABASE "{database}"')
    write_config(folder, "CeleryCheck", SAMPLES)  # folder/sources.yaml: the cluster's RAGLOOP_CONFIG

    redis = cluster.redis()
    wanted = {"api-server", "scheduler", "dag-processor", WORKER}
    processes = [p for p in cluster.airflow_processes() if p.name in wanted]
    started = []
    try:
        redis.start(progress=lambda message: None)
        started.append(redis)
        cluster.run_airflow("db", "migrate", timeout=600)
        for process in processes:
            process.start(progress=lambda message: None, timeout=300)
            started.append(process)
        wait_for(f"{WORKER} to answer a ping through Redis", lambda: f"{WORKER}@ragloop" in cluster.ping_workers(), 180)
        yield cluster
    finally:
        for service in reversed(started):
            service.stop()


def test_a_dag_run_goes_through_a_celery_worker_and_redis(celery_airflow):
    cluster = celery_airflow
    token = cluster.token()

    def api(method: str, path: str, body: dict | None = None):
        return cluster.api(method, path, body, token=token)  # no retry: any error fails the test

    wait_for("the DAG processor to parse the check DAG",
             lambda: any(d["dag_id"] == CHECK_DAG for d in api("GET", "/api/v2/dags?dag_id_pattern=ragloop")["dags"]), 300)
    api("PATCH", f"/api/v2/dags/{CHECK_DAG}", {"is_paused": False})
    run_id = api("POST", f"/api/v2/dags/{CHECK_DAG}/dagRuns", {"logical_date": None, "conf": {}})["dag_run_id"]
    run = wait_for_run_end(api, CHECK_DAG, run_id, 600)
    instances = task_instances(api, CHECK_DAG, run_id)
    seen = sorted((ti["task_id"], ti["state"], ti["try_number"], ti["hostname"]) for ti in instances)
    assert run["state"] == "success", seen
    assert len(seen) >= 3 and all(state == "success" for _, state, _, _ in seen), seen
    assert all(tries == 1 for _, _, tries, _ in seen), f"a task needed a retry: {seen}"
    assert all(host == WORKER for _, _, _, host in seen), f"not every task ran on the Celery worker: {seen}"
    # The broker really carried them: the worker (which answered the ping through this Redis)
    # logged receiving one Celery task per task instance.
    worker_log = next(p for p in cluster.airflow_processes() if p.name == WORKER).log_file.read_text(errors="replace")
    received = [line for line in worker_log.splitlines() if "Task execute_workload[" in line and "received" in line]
    assert len(received) == len(seen), worker_log[-3000:]
