"""What `ragloop cluster` gives each process, checked without starting any (the cluster itself
is exercised by `make cluster` and bench/drills.py; its Weaviate nodes and S3 server by the
integration tests)."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO


@pytest.fixture
def cluster(tmp_path):
    from ragloop.local.cluster.runner import Cluster

    cluster = Cluster(tmp_path / "cluster", REPO)
    cluster.settings(create=True)
    return cluster


def test_ports_are_distinct_and_kept(cluster):
    from ragloop.local.cluster.runner import Cluster

    s = cluster.settings()
    ports = [s["postgres_port"], s["redis_port"], s["api_port"], s["trigger_log_port"], *s["worker_log_ports"].values()]
    ports += [p for p in s["seaweed"].values()] + [p + 10000 for p in s["seaweed"].values()]
    for node in s["weaviate"]:
        ports += [node["http_port"], node["grpc_port"], node["gossip_port"], node["gossip_port"] + 1,
                  node["raft_port"], node["raft_port"] + 1]
    assert len(ports) == len(set(ports))
    assert Cluster(cluster.folder, REPO).settings() == s  # chosen once
    assert oct(cluster.state_file.stat().st_mode & 0o777) == "0o600"  # it holds the secrets


def test_every_airflow_process_shares_secrets_and_stays_on_loopback(cluster):
    control, w1, w2 = cluster.control_env(), cluster.worker_env("worker-1"), cluster.worker_env("worker-2")
    for env in (control, w1, w2):
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == control["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert env["AIRFLOW__CORE__FERNET_KEY"] == control["AIRFLOW__CORE__FERNET_KEY"]
        assert "127.0.0.1" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://127.0.0.1:")
    assert w1["RAGLOOP_WORKER_HOSTNAME"] == "worker-1" and w2["RAGLOOP_WORKER_HOSTNAME"] == "worker-2"
    assert w1["AIRFLOW_HOME"] != w2["AIRFLOW_HOME"] != control["AIRFLOW_HOME"]
    assert w1["RAGLOOP_STATE_DIR"] != w2["RAGLOOP_STATE_DIR"]
    assert w1["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] != w2["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]
    s3 = json.loads(control["AIRFLOW_CONN_RAGLOOP_S3"])
    assert s3["conn_type"] == "aws" and s3["extra"]["endpoint_url"].startswith("http://127.0.0.1:")


def test_weaviate_nodes_name_each_other(cluster):
    nodes = cluster.weaviate_nodes()
    envs = [node.env() for node in nodes]
    assert len({env["CLUSTER_HOSTNAME"] for env in envs}) == 3
    for env in envs:
        assert env["RAFT_BOOTSTRAP_EXPECT"] == "3"
        assert env["RAFT_JOIN"] == ",".join(f"{n.hostname}:{n.raft_port}" for n in nodes)
        assert env["CLUSTER_JOIN"] == ",".join(f"127.0.0.1:{n.gossip_port}" for n in nodes)
        assert env["CLUSTER_BIND_ADDR"] == "127.0.0.1"


def test_the_cluster_config_stages_on_s3_and_replicates_three_times(cluster):
    from ragloop.config import load_config

    path = cluster.write_config()
    config = load_config(path)
    assert config.staging.startswith("s3://") and config.staging_conn_id == "ragloop_s3"
    assert (config.replication.factor, config.replication.consistency) == (3, "QUORUM")
    assert [s["id"] for s in config.sources] == [s["id"] for s in yaml.safe_load((REPO / "include" / "sources.yaml").read_text())["sources"]]
