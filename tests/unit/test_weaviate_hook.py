"""RagloopWeaviateHook reads a `weaviate` connection as the official WeaviateHook does: for each
combination of fields, the client it builds gets what the official hook would give it, apart from
the documented additions (anonymous when there are no credentials, client timeouts)."""

from __future__ import annotations

import json

import pytest
import weaviate
from airflow.providers.weaviate.hooks.weaviate import WeaviateHook
from weaviate.auth import AuthApiKey, AuthBearerToken, AuthClientCredentials, AuthClientPassword

from conftest import REPO
from ragloop.airflow.hooks.weaviate import RagloopWeaviateHook
from ragloop.airflow.hooks.weaviate import WeaviateConnectionError

CONN_ID = "ragloop_hook_test"
FAILING_BACKEND = "failing_secrets.UnreachableSecretsBackend"

CASES = {
    "plain, gRPC port given": ({"host": "127.0.0.1", "port": 18080, "extra": {"grpc_port": 50051}}, None),
    "defaults": ({"host": "weaviate.internal"}, None),
    "secure, separate gRPC host": (
        {"host": "c.example", "extra": {"http_secure": True, "grpc_secure": True, "grpc_host": "grpc-c.example"}}, None),
    "headers": ({"host": "h", "port": 8080, "extra": {"grpc_port": 50051, "additional_headers": {"X-OpenAI-Api-Key": "k"}}},
                None),
    "api_key": ({"host": "h", "extra": {"api_key": "wv-key"}}, AuthApiKey),
    "token (the older name of api_key)": ({"host": "h", "extra": {"token": "wv-key"}}, AuthApiKey),
    "api_key wins over login": ({"host": "h", "login": "u", "password": "p", "extra": {"api_key": "wv-key"}}, AuthApiKey),
    "bearer token": ({"host": "h", "extra": {"access_token": "at", "refresh_token": "rt", "expires_in": 30}}, AuthBearerToken),
    "client credentials": ({"host": "h", "extra": {"client_secret": "s", "scope": "openid"}}, AuthClientCredentials),
    "OIDC username and password": ({"host": "h", "login": "u", "password": "p", "extra": {"oidc_scope": "x"}},
                                   AuthClientPassword),
    "password alone is an OIDC password, not an API key": ({"host": "h", "password": "p"}, AuthClientPassword),
}


def captured(monkeypatch, hook) -> dict:
    calls: list[dict] = []

    def connect_to_custom(**kwargs) -> str:
        calls.append(kwargs)
        return "client"

    monkeypatch.setattr(weaviate, "connect_to_custom", connect_to_custom)
    assert hook.get_conn() == "client"
    return calls[0]


@pytest.mark.parametrize("case", list(CASES))
def test_each_field_combination_builds_the_client_the_official_hook_builds(case, monkeypatch):
    fields, auth_type = CASES[case]
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "weaviate", **fields}))
    # Ours: the arguments get_conn() hands to the client (get_conn itself also runs the gRPC
    # health check against the server, which these hosts do not have).
    ours = RagloopWeaviateHook(CONN_ID).client_kwargs()
    official = captured(monkeypatch, WeaviateHook(CONN_ID))
    # The client's init checks are skipped (they ask the package index on every connect); the
    # gRPC health check they would do is ours, see ragloop.airflow.hooks.weaviate.connect_client.
    assert ours.pop("skip_init_checks") is True

    # Ports: the official hook passes extra values through as given; ours as integers.
    official["grpc_port"] = int(official["grpc_port"])
    timeouts = ours.pop("additional_config")
    assert (timeouts.timeout.init, timeouts.timeout.query, timeouts.timeout.insert) == (10, 60, 120)
    assert {k: v for k, v in ours.items() if k != "auth_credentials"} == \
        {k: v for k, v in official.items() if k != "auth_credentials"}
    if auth_type is None:
        # No credentials at all: anonymous, where the official hook sends an empty OIDC pair.
        assert ours["auth_credentials"] is None
        assert official["auth_credentials"] == AuthClientPassword(username="", password="", scope=None)
    else:
        assert isinstance(ours["auth_credentials"], auth_type)
        assert ours["auth_credentials"] == official["auth_credentials"]


def test_hook_metadata_and_provider_info():
    from ragloop.airflow.provider import get_provider_info

    assert (RagloopWeaviateHook.conn_name_attr, RagloopWeaviateHook.default_conn_name, RagloopWeaviateHook.conn_type) == (
        "weaviate_conn_id", "weaviate_default", "weaviate")
    assert RagloopWeaviateHook().weaviate_conn_id == "weaviate_default"
    info = get_provider_info()
    # The `weaviate` type is the official provider's alone (docs/connections.md): ragloop registers none.
    assert info["connection-types"] == []
    assert any("ragloop.airflow.task_groups" in ops["python-modules"] for ops in info["operators"])
    assert any("ragloop.airflow.hooks.weaviate" in hook["python-modules"] for hook in info["hooks"])
    assert "config" not in info  # nothing declared that nothing reads


def test_local_server_ports_are_read(monkeypatch):
    local = {"gossip_port": 17946, "data_port": 17947, "raft_port": 18300, "raft_internal_rpc_port": 18301}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(
        {"conn_type": "weaviate", "host": "127.0.0.1", "port": 18080, "extra": {"grpc_port": 50051, "local_server": local}}))
    endpoint = RagloopWeaviateHook(CONN_ID).endpoint()
    assert dict(endpoint.local_server) == local and endpoint.url == "http://127.0.0.1:18080"


def test_absent_and_unreadable_connections_are_told_apart(airflow_db, monkeypatch):
    monkeypatch.delenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", raising=False)
    with pytest.raises(WeaviateConnectionError, match=f"'{CONN_ID}' is not defined"):
        RagloopWeaviateHook(CONN_ID).get_conn()
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", FAILING_BACKEND)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps({"failing": [CONN_ID]}))
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    with pytest.raises(WeaviateConnectionError, match=f"'{CONN_ID}' could not be read: UnreachableSecretsBackend"):
        RagloopWeaviateHook(CONN_ID).get_conn()
