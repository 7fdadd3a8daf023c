"""`RagloopWeaviateHook`: the one place a Weaviate connection becomes a client.

A subclass of the official provider's `WeaviateHook`, so a `weaviate` connection means what that
hook says it means:

- host, port: the HTTP endpoint (port 443 with `extra.http_secure`, else 80, when unset);
- extra.grpc_host (default: the host), extra.grpc_port (default 443 with `extra.grpc_secure`,
  else 80: set it, Weaviate's own default is 50051), extra.http_secure, extra.grpc_secure;
- extra.additional_headers: sent with every request (model provider keys, for example);
- credentials, first found wins: extra.api_key or extra.token (an API key); extra.access_token
  (+ refresh_token, expires_in: a bearer token); extra.client_secret (+ scope: OIDC client
  credentials); login and password (+ scope: OIDC username and password).

What ragloop adds, and why:

- extra.local_server (gossip_port, data_port, raft_port, raft_internal_rpc_port): the cluster
  ports `ragloop weaviate start` gives the local server binary; the client ignores it.
- A connection with no credentials at all connects anonymously. The official hook then sends an
  empty OIDC username and password, which makes the client look up an OIDC configuration and
  warn on every connect to an anonymous (local) server.
- Client timeouts sized for batch imports (init 10 s, query 60 s, insert 120 s).
- The connection is read with `ragloop.connections.get_connection`, which tells an absent
  connection from an unreadable one (a failing secrets backend); Airflow's own lookup reports
  both as "not defined".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import weaviate
from airflow.providers.weaviate.hooks.weaviate import WeaviateHook

from ragloop.connections import ConnectionProblem, get_connection
from ragloop.hooks.endpoint import (
    CREDENTIAL_EXTRAS,
    WEAVIATE_CONN_ID,
    WeaviateConnectionError,
    WeaviateEndpoint,
    client_kwargs,
    endpoint_of,
)

if TYPE_CHECKING:
    from weaviate import WeaviateClient
    from weaviate.auth import AuthCredentials


class RagloopWeaviateHook(WeaviateHook):
    """The official Weaviate hook, reading connections the same way, with ragloop's additions
    (see the module docstring)."""

    conn_name_attr = "weaviate_conn_id"
    default_conn_name = WEAVIATE_CONN_ID
    conn_type = "weaviate"
    hook_name = "Weaviate (ragloop)"

    def __init__(self, weaviate_conn_id: str = WEAVIATE_CONN_ID, **kwargs: Any) -> None:
        super().__init__(conn_id=weaviate_conn_id, **kwargs)
        self.weaviate_conn_id = weaviate_conn_id

    @classmethod
    def get_connection(cls, conn_id: str) -> Any:
        """Absent and unreadable told apart (see `ragloop.connections`), each with its message."""
        try:
            return get_connection(conn_id)
        except ConnectionProblem as err:
            raise WeaviateConnectionError(str(err)) from None

    def endpoint(self) -> WeaviateEndpoint:
        return endpoint_of(self.get_connection(self.weaviate_conn_id), self.weaviate_conn_id)

    def credentials(self) -> AuthCredentials | None:
        """The official hook's credentials, or None (anonymous) when the connection has none."""
        return self._credentials_of(self.get_connection(self.weaviate_conn_id))

    def _credentials_of(self, conn: Any) -> AuthCredentials | None:
        extra = conn.extra_dejson
        if not (conn.login or conn.password or any(extra.get(key) for key in CREDENTIAL_EXTRAS)):
            return None
        return self._extract_auth_credentials(conn)

    def connect_args(self) -> tuple[WeaviateEndpoint, dict[str, Any]]:
        """The endpoint and the arguments of `weaviate.connect_to_custom`, from one read of the connection."""
        conn = self.get_connection(self.weaviate_conn_id)
        endpoint = endpoint_of(conn, self.weaviate_conn_id)
        return endpoint, client_kwargs(endpoint, self._credentials_of(conn))

    def client_kwargs(self) -> dict[str, Any]:
        return self.connect_args()[1]

    def get_conn(self) -> WeaviateClient:
        """A connected client; the caller closes it (`ragloop.index.connect` does)."""
        return connect_client(*self.connect_args())

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's "Test" button: reach the server and list its collections."""
        try:
            client = self.get_conn()
        except Exception as err:  # noqa: BLE001 - the button shows any failure as text
            return False, f"{type(err).__name__}: {err}"
        try:
            names = client.collections.list_all(simple=True)
            return True, f"Weaviate {client.get_meta().get('version', '?')} at {self.endpoint().url}: {len(names)} collections"
        except Exception as err:  # noqa: BLE001
            return False, f"{type(err).__name__}: {err}"
        finally:
            client.close()


def connect_client(endpoint: WeaviateEndpoint, kwargs: dict[str, Any]) -> WeaviateClient:
    """`weaviate.connect_to_custom(**kwargs)`, then Weaviate's gRPC health check (the client's
    init checks are skipped, see `client_kwargs`): a gRPC port that does not answer is refused at
    connect, by name, not at the first search."""
    client = weaviate.connect_to_custom(**kwargs)
    try:
        check_grpc(endpoint, timeout=10)
    except Exception:
        client.close()
        raise
    return client


def check_grpc(endpoint: WeaviateEndpoint, timeout: float) -> None:
    """Weaviate's gRPC health check, on a channel of its own."""
    import grpc
    from weaviate.proto.v1 import health_weaviate_pb2

    target = f"{endpoint.grpc_host}:{endpoint.grpc_port}"
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials()) if endpoint.grpc_secure else grpc.insecure_channel(target)
    )
    try:
        reply = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_weaviate_pb2.WeaviateHealthCheckRequest.SerializeToString,
            response_deserializer=health_weaviate_pb2.WeaviateHealthCheckResponse.FromString,
        )(health_weaviate_pb2.WeaviateHealthCheckRequest(), timeout=timeout)
    except grpc.RpcError as err:
        raise WeaviateConnectionError(
            f"Weaviate's gRPC port {target} does not answer: {err.code().name}: {err.details()}"
        ) from None
    finally:
        channel.close()
    if reply.status != health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING:
        raise WeaviateConnectionError(f"Weaviate's gRPC port {target} is not serving (status {reply.status})")
