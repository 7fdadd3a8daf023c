"""`ragloop doctor` as a user runs it on a deployment: every connection resolved and reached
(Weaviate, the runs database, the staging store, OpenAI, Slack and GitHub through their real
clients against local servers that speak their APIs), then the same with things broken, each
named with its fix."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from conftest import REPO, run_cli
from ragloop.local.weaviate_local import free_port
from wire_servers import OpenAIWireServer

sys.path.insert(0, str(REPO / "tests" / "sources"))
from wire_github import GithubWireServer
from wire_slack import SlackWireServer

pytestmark = pytest.mark.integration


def doctor_config(folder, collection: str) -> str:
    config = {
        "collection": collection, "embedder": "hash", "staging": f"file://{folder / 'staging'}",
        "llm": {"connection": "openai_wire", "model": "gpt-4o-mini"},
        "sources": [
            {"id": "community", "type": "slack", "channels": ["help"], "connection": "slack_wire"},
            {"id": "issues", "type": "github_issues", "repo": "fernwood/fernwood", "connection": "github_wire"},
        ],
    }
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def checks(result) -> dict[str, dict]:
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


def test_doctor_reaches_everything_then_names_each_broken_thing_with_its_fix(weaviate_server, tmp_path, collection_name):
    config = doctor_config(tmp_path, collection_name)
    with OpenAIWireServer(api_key="sk-doctor") as openai, SlackWireServer() as slack, GithubWireServer() as github:
        slack.add_channel("C0HELP0001", "help")
        env = {
            "AIRFLOW_CONN_OPENAI_WIRE": json.dumps({"conn_type": "openai", "host": openai.base_url, "password": "sk-doctor"}),
            "AIRFLOW_CONN_SLACK_WIRE": slack.connection_json(),
            "AIRFLOW_CONN_GITHUB_WIRE": github.connection_json(),
            "AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "runs.db")}),
        }
        healthy = run_cli("doctor", "--config", config, "--json", env=env)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr[-3000:]
        found = checks(healthy)
        assert {name: c["status"] for name, c in found.items()} == {
            "config": "ok", "secrets backends": "ok", "weaviate": "ok", "runs database": "ok", "staging store": "ok",
            "openai": "ok", "slack (community)": "ok", "github (issues)": "ok",
        }
        assert found["weaviate"]["found"].startswith(f"Weaviate 1.39.0 at {weaviate_server.url}")
        assert "(connection ragloop_runs_default)" in found["runs database"]["found"]
        assert "2 models listed" in found["openai"]["found"]
        assert found["github (issues)"]["found"].startswith("fernwood/fernwood readable")
        assert not list((tmp_path / "staging" / ".ragloop-doctor").iterdir())  # the probe is gone again
        assert "sk-doctor" not in healthy.stdout + healthy.stderr

        broken = {
            **env,
            "AIRFLOW_CONN_WEAVIATE_DEFAULT": json.dumps({"conn_type": "weaviate", "host": "127.0.0.1", "port": free_port(),
                                                         "extra": {"grpc_port": free_port()}}),
            "AIRFLOW_CONN_OPENAI_WIRE": json.dumps({"conn_type": "openai", "host": openai.base_url, "password": "sk-wrong"}),
            "AIRFLOW__SECRETS__BACKEND": "failing_secrets.UnreachableSecretsBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"failing": ["ragloop_runs_default"]}),
            "PYTHONPATH": f"{REPO / 'tests'}:{REPO / 'include'}",
        }
        del broken["AIRFLOW_CONN_SLACK_WIRE"]
        sick = run_cli("doctor", "--config", config, "--json", env=broken)
        text = run_cli("doctor", "--config", config, env=broken)
    assert sick.returncode == 1
    found = checks(sick)
    assert found["weaviate"]["status"] == "fail" and "Cannot reach Weaviate" in found["weaviate"]["found"]
    assert found["weaviate"]["fix"] == "start it with `ragloop weaviate start`"
    runs = found["runs database"]
    assert runs["status"] == "fail" and "'ragloop_runs_default' cannot be read" in runs["found"]
    assert "does not fall back" in runs["fix"]
    assert found["openai"]["status"] == "fail" and "AuthenticationError" in found["openai"]["found"]
    slack_check = found["slack (community)"]
    assert slack_check["status"] == "fail" and slack_check["found"] == "connection 'slack_wire' is not defined"
    assert "AIRFLOW_CONN_SLACK_WIRE" in slack_check["fix"]
    assert found["github (issues)"]["status"] == "ok" and found["staging store"]["status"] == "ok"
    assert "sk-wrong" not in sick.stdout + sick.stderr

    assert "FAIL weaviate [weaviate_default]" in text.stdout and "     fix: start it with `ragloop weaviate start`" in text.stdout
    assert text.stdout.rstrip().endswith("s)") and "4 failed" in text.stdout
