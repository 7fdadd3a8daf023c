"""connect() hands the client of a block that ended cleanly to the next block in the process
(a new client cost an offline ask most of its time), and never a client that failed, expired,
is in use, belongs to other connection arguments, or no longer answers."""

from __future__ import annotations

import json

import pytest

from ragloop.airflow.hooks import weaviate as hook_module
from ragloop.index import WeaviateIndexError, connect

pytestmark = pytest.mark.integration


@pytest.fixture
def probe_conn(weaviate_server, monkeypatch):
    conn = {"conn_type": "weaviate", "host": "127.0.0.1", "port": weaviate_server.http_port,
            "extra": {"grpc_host": "127.0.0.1", "grpc_port": weaviate_server.grpc_port}}
    monkeypatch.setenv("AIRFLOW_CONN_WEAVIATE_REUSE", json.dumps(conn))
    hook_module._IDLE_CLIENTS.close_all()
    yield conn
    hook_module._IDLE_CLIENTS.close_all()


def test_a_clean_block_leaves_its_client_to_the_next_one(probe_conn):
    with connect("weaviate_reuse") as first:
        assert first.collections.exists("NoSuchCollection") is False
    with connect("weaviate_reuse") as second:
        assert second is first
        with connect("weaviate_reuse") as nested:  # in use: never handed out twice
            assert nested is not first
            assert nested.collections.exists("NoSuchCollection") is False


def test_a_failed_block_closes_its_client(probe_conn):
    with pytest.raises(WeaviateIndexError), connect("weaviate_reuse") as failing:
        raise WeaviateIndexError("boom")
    assert not failing.is_connected()
    with connect("weaviate_reuse") as after:
        assert after is not failing
        assert after.collections.exists("NoSuchCollection") is False


def test_expired_closed_or_other_clients_are_not_reused(probe_conn, monkeypatch):
    with connect("weaviate_reuse") as first:
        pass
    monkeypatch.setattr(hook_module._IdleClients, "IDLE_SECONDS", -1.0)
    with connect("weaviate_reuse") as second:
        assert second is not first
    assert not first.is_connected()  # the expired one was closed
    monkeypatch.undo()
    monkeypatch.setenv("AIRFLOW_CONN_WEAVIATE_REUSE", json.dumps(probe_conn))
    second.close()  # closed behind the pool's back: its liveness probe fails, a new one is made
    with connect("weaviate_reuse") as third:
        assert third is not second
        assert third.collections.exists("NoSuchCollection") is False
    other = {**probe_conn, "extra": {**probe_conn["extra"], "additional_headers": {"X-Probe": "1"}}}
    monkeypatch.setenv("AIRFLOW_CONN_WEAVIATE_REUSE", json.dumps(other))
    with connect("weaviate_reuse") as fourth:  # other connection arguments: another client
        assert fourth is not third
