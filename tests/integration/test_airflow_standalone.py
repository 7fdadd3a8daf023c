"""`ragloop airflow start|stop` (what `make airflow` / `make stop` run): real Airflow standalone on
loopback with this project's DAGs and connections, stopped by process group."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import run_cli
from ragloop.local.processes import group_members
from ragloop.local.weaviate_local import free_port

pytestmark = pytest.mark.integration


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, env=env, inherit_env=False, timeout=400)


def request(url: str, token: str | None = None, body: dict | None = None) -> dict:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as response:
        return json.loads(response.read())


def test_standalone_serves_our_dags_and_connections_then_stops(tmp_path):
    # A project state of its own: standalone's scheduler must not share the session's SQLite DB.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    api_port = free_port()
    env.update({
        "RAGLOOP_STATE_DIR": str(tmp_path / "state"),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    })
    started = cli(env, "airflow", "start", "--json")
    try:
        assert started.returncode == 0, started.stderr[-4000:]
        info = json.loads(started.stdout)
        assert info["url"] == f"http://127.0.0.1:{api_port}"
        assert "log in as user admin / password" in info["message"]

        passwords = json.loads((tmp_path / "state" / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        token = request(f"{info['url']}/auth/token", body={"username": "admin", "password": passwords["admin"]})["access_token"]
        connection = request(f"{info['url']}/api/v2/connections/weaviate_default", token)
        assert connection["host"] == "127.0.0.1" and connection["port"] == 18080  # from airflow_settings.yaml
        dag = request(f"{info['url']}/api/v2/dags/ragloop_check", token)
        assert dag["dag_id"] == "ragloop_check" and "ragloop" in [t["name"] for t in dag["tags"]]

        # The runs API plugin, mounted by the running API server, takes the same bearer token.
        recorded = request(f"{info['url']}/ragloop/runs", token, body={"question": "Through the server?", "answer": "Yes."})
        assert recorded["created"] is True
        run = request(f"{info['url']}/ragloop/runs/{recorded['run_id']}", token)
        assert run["question"] == "Through the server?" and run["app"] == "api"
        with pytest.raises(urllib.error.HTTPError) as refused:
            request(f"{info['url']}/ragloop/runs")
        assert refused.value.code == 401
        assets = request(f"{info['url']}/api/v2/assets?uri_pattern=ragloop://runs", token)["assets"]
        # One asset, whether the run's event or the grading DAG (which consumes it) registered it first.
        from ragloop.airflow.assets import runs_asset

        assert [a["uri"] for a in assets] == [runs_asset().uri]

        again = cli(env, "airflow", "start")
        assert "already running" in again.stdout
    finally:
        stopped = cli(env, "airflow", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped (pid {info['pid']})" in stopped.stdout
    assert group_members(info["pid"]) == []
