"""Staging on a real S3 server (SeaweedFS, the one `make cluster` runs, built once into
~/.cache/ragloop/seaweedfs/) through an `aws` Airflow connection with an `endpoint_url`: the same
code path as AWS S3. An ingest staged there indexes exactly what a local-staging ingest indexes,
its staged files are objects in the bucket, and a staging connection that does not exist is an
error naming it, not the amazon filesystem's silent anonymous access."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from conftest import REPO
from test_shared_run_ids import chunk_table

pytestmark = pytest.mark.integration

BUCKET = "ragloop-test-staging"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    from ragloop.local.cluster.services import SeaweedS3, free_ports

    folder = tmp_path_factory.mktemp("seaweedfs")
    ports = free_ports(4, offsets=(0, 10000))
    server = SeaweedS3("seaweedfs", folder, ("weed", f"-s3.port={ports[3]}"),
                       master_port=ports[0], volume_port=ports[1], filer_port=ports[2], s3_port=ports[3], bucket=BUCKET)
    try:
        server.start(print, timeout=180)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_connection(s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_RAGLOOP_TEST_S3", json.dumps({
        "conn_type": "aws", "login": "test", "password": "test-secret",
        "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
    }))
    return "ragloop_test_s3"


def docs_config(folder, collection: str, **staging) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "collection": collection, "embedder": "hash",
        "sources": [{"id": "docs", "type": "docs", "path": str(REPO / "include" / "samples" / "docs"),
                     "url_template": "https://docs.example/{path}"}],
        **staging,
    }
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def test_an_ingest_staged_on_s3_indexes_what_local_staging_indexes(
    s3_server, s3_connection, weaviate_client, airflow_db, collection_name, tmp_path,
):
    import s3fs

    from ragloop.airflow.dagrun import run_dag

    local = docs_config(tmp_path / "local", collection_name + "Local", staging=f"file://{tmp_path / 'staging'}")
    remote = docs_config(tmp_path / "s3", collection_name, staging=f"s3://{BUCKET}/{collection_name}",
                         staging_conn_id=s3_connection)
    expected = run_dag("ragloop_ingest_docs", {"config": local}, retries=0).returns["report"]
    got = run_dag("ragloop_ingest_docs", {"config": remote}, retries=0).returns["report"]
    assert got["errors"] == [] and got["sources"]["docs"]["documents"] == expected["sources"]["docs"]["documents"]
    assert chunk_table(weaviate_client, collection_name) == chunk_table(weaviate_client, collection_name + "Local")

    fs = s3fs.S3FileSystem(key="test", secret="test-secret", client_kwargs={"endpoint_url": s3_server.endpoint_url})
    staged = fs.find(f"{BUCKET}/{collection_name}")
    assert any(name.endswith(".jsonl") for name in staged), staged
    assert any(name.endswith("finished.json") for name in staged), staged
    assert not (tmp_path / "s3" / "staging").exists()


def test_a_missing_staging_connection_is_named(s3_server, airflow_db, tmp_path):
    from ragloop.staging import StagingError, staging_root

    os.environ.pop("AIRFLOW_CONN_RAGLOOP_NO_SUCH_S3", None)
    with pytest.raises(StagingError, match=r"staging connection 'ragloop_no_such_s3'.*not defined"):
        staging_root(f"s3://{BUCKET}/x", "ragloop_no_such_s3")
