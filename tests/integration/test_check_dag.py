"""The check DAG through real Airflow `dag.test()` against the real Weaviate and local model,
reached the way a user reaches it: `ragloop check --json`."""

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.integration


def test_ragloop_check_runs_the_dag(weaviate_server, airflow_db, weaviate_client, tmp_path):
    config = tmp_path / "sources.yaml"
    config.write_text("collection: CheckProbe\nembedder: local\nsources: []\n")
    result = run_cli("check", "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["state"] == "success"
    assert report["check_weaviate"]["version"] == "1.39.0"
    assert report["prepare_collection"] == {
        "collection": "CheckProbe", "created": True, "embedder": "local:all-MiniLM-L6-v2@onnx-int8", "dimension": 384,
    }
    assert report["measure_embedder"]["dimension"] == 384 and report["measure_embedder"]["passages"] > 10
    assert weaviate_client.collections.exists("CheckProbe")


def test_provider_is_registered(airflow_db):
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert "airflow-provider-ragloop" in providers
    info = providers["airflow-provider-ragloop"].data
    assert info["connection-types"] == []  # the `weaviate` type is the official provider's (test_connection_type)
