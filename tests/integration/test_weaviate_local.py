"""`ragloop weaviate start|stop|status|logs` against a real server binary, as a user runs them."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from conftest import run_cli, weaviate_conn_json
from ragloop.index.endpoint import WeaviateEndpoint
from ragloop.local.weaviate_local import LocalWeaviate, LocalWeaviateError, WEAVIATE_VERSION, local_server_for

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_server(tmp_path, airflow_db):
    """Ports and state for a server the CLI under test starts (not the session's server)."""
    server = LocalWeaviate.with_free_ports(tmp_path / "weaviate")
    env = {"AIRFLOW_CONN_WEAVIATE_DEFAULT": weaviate_conn_json(server), "RAGLOOP_STATE_DIR": str(tmp_path)}
    # The CLI keeps the migrated DB of the session: point it there, not at a new state folder.
    env["AIRFLOW_HOME"] = os.environ["AIRFLOW_HOME"]
    yield server, env
    server.stop()


def test_start_twice_status_logs_stop(cli_server):
    server, env = cli_server
    first = run_cli("weaviate", "start", env=env)
    assert first.returncode == 0, first.stderr
    assert f"Weaviate v{WEAVIATE_VERSION} started" in first.stdout
    assert server.pid() is not None

    again = run_cli("weaviate", "start", env=env)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert str(server.pid()) in again.stdout

    status = run_cli("weaviate", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["running"] and info["started_by_ragloop"]
    assert info["version"] == WEAVIATE_VERSION
    assert info["url"] == f"http://127.0.0.1:{server.http_port}"
    assert Path(info["data_dir"]) == server.data_dir
    assert info["collections"] == {}

    from ragloop.index import connect_local

    with connect_local("127.0.0.1", server.http_port, server.grpc_port) as client:
        probe = client.collections.create("StatusProbe")
        probe.data.insert_many([{"text": "one"}, {"text": "two"}])
    counted = json.loads(run_cli("weaviate", "status", "--json", env=env).stdout)
    assert counted["collections"] == {"StatusProbe": 2}

    text = run_cli("weaviate", "status", env=env)
    assert "StatusProbe: 2 objects" in text.stdout
    assert "version:   1.39.0" in text.stdout and str(server.data_dir) in text.stdout

    logs = run_cli("weaviate", "logs", "-n", "5", env=env)
    assert logs.returncode == 0 and logs.stdout.strip()

    pid = server.pid()
    stopped = run_cli("weaviate", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped (pid {pid})" in stopped.stdout
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    assert not server.is_ready()

    assert "not running" in run_cli("weaviate", "stop", env=env).stdout
    down = run_cli("weaviate", "status", "--json", env=env)
    assert down.returncode == 3 and json.loads(down.stdout)["running"] is False


def test_taken_port_gives_clear_error(cli_server):
    server, env = cli_server
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.grpc_port))
        squatter.listen()
        result = run_cli("weaviate", "start", env=env)
    assert result.returncode == 1
    assert f"Port {server.grpc_port} (Weaviate gRPC) is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert server.pid() is None


def test_missing_binary_without_go_names_three_ways_out(cli_server, tmp_path):
    _server, env = cli_server
    # The console script is called by absolute path; PATH only decides whether `go` is found.
    no_go_path = os.pathsep.join(p for p in ("/usr/bin", "/bin") if not (Path(p) / "go").exists())
    env = {**env, "XDG_CACHE_HOME": str(tmp_path / "empty-cache"), "PATH": no_go_path}
    env.pop("RAGLOOP_WEAVIATE_BIN", None)
    result = run_cli("weaviate", "start", env=env)
    assert result.returncode == 1
    message = result.stderr
    assert "No Weaviate server binary" in message and "`go` is not on PATH" in message
    assert "1. Install Go" in message
    assert "2. Set RAGLOOP_WEAVIATE_BIN" in message
    assert "3. Point the `weaviate_default` Airflow connection at a running Weaviate" in message
    assert "Traceback" not in message


def test_binary_override_must_be_executable(cli_server, tmp_path):
    _server, env = cli_server
    result = run_cli("weaviate", "start", env={**env, "RAGLOOP_WEAVIATE_BIN": str(tmp_path / "nope")})
    assert result.returncode == 1
    assert f"RAGLOOP_WEAVIATE_BIN={tmp_path / 'nope'} is not an executable file" in result.stderr


def test_remote_endpoint_has_no_local_server(tmp_path):
    remote = WeaviateEndpoint("weaviate.example.org", 443, "grpc.weaviate.example.org", 443, http_secure=True)
    with pytest.raises(LocalWeaviateError, match="not at a local server"):
        local_server_for(remote, tmp_path)


def test_weaviate_already_answering_is_used_not_restarted(weaviate_server, tmp_path):
    """A Weaviate that someone else started (here: the session's) is reported, not duplicated."""
    other = LocalWeaviate(
        tmp_path, http_port=weaviate_server.http_port, grpc_port=weaviate_server.grpc_port,
    )
    message = other.start()
    assert "not started by ragloop" in message and WEAVIATE_VERSION in message
    assert other.pid() is None
    assert "not running" in other.stop()
    assert weaviate_server.is_ready()


def test_server_that_dies_at_start_reports_its_log(cli_server, tmp_path):
    server, env = cli_server
    fake = tmp_path / "bin" / "weaviate-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'fatal: raft bootstrap failed: disk is read-only'\nexit 3\n")
    fake.chmod(0o755)
    result = run_cli("weaviate", "start", env={**env, "RAGLOOP_WEAVIATE_BIN": str(fake)})
    assert result.returncode == 1
    assert "exited with code 3 before it was ready" in result.stderr
    assert "raft bootstrap failed: disk is read-only" in result.stderr
    assert server.pid() is None
