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
- The connection is read with `ragloop.airflow.connections.get_connection`, which tells an absent
  connection from an unreadable one (a failing secrets backend); Airflow's own lookup reports
  both as "not defined".
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import weaviate
from airflow.providers.weaviate.hooks.weaviate import WeaviateHook

from ragloop.airflow.connections import ConnectionProblem, get_connection
from ragloop.index.endpoint import (
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

log = logging.getLogger(__name__)


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
        """Absent and unreadable told apart (see `ragloop.airflow.connections`), each with its message."""
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
    """A client for these connection arguments: one the process closed cleanly a moment ago if
    there is one and its server answers (`release_client` keeps them), else a new one. A new one
    is `weaviate.connect_to_custom(**kwargs)`, then Weaviate's gRPC health check (the client's
    init checks are skipped, see `client_kwargs`): a gRPC port that does not answer is refused at
    connect, by name, not at the first search."""
    reused = _IDLE_CLIENTS.take(endpoint, kwargs)
    if reused is not None:
        return reused
    client = weaviate.connect_to_custom(**kwargs)
    try:
        check_grpc(endpoint, timeout=10)
    except Exception:
        client.close()
        raise
    _IDLE_CLIENTS.made(client, endpoint, kwargs)
    return client


def release_client(client: WeaviateClient, reusable: bool) -> None:
    """The end of a `connect()` block: a client whose block ended without an error is kept for
    the next `connect_client` with the same arguments in this process; any other is closed."""
    if not reusable or not _IDLE_CLIENTS.keep(client):
        _IDLE_CLIENTS.forget(client)  # its id may be a new client's later
        client.close()


class _IdleClients:
    """Clients of `connect()` blocks that ended cleanly, kept for the next block in this process.

    A new client costs far more than a query: httpx builds an SSL context (loads the CA bundle)
    for every transport, even for plain HTTP, and the gRPC check opens a channel of its own. In
    bench/query_latency.py an offline `ask` spent 430 of its 697 ms (under a load average of 20)
    making its client, against 176 ms for its search. A kept client is handed to one caller at a
    time, is checked with Weaviate's liveness probe (one request on its open connection) before
    it is handed out, and is closed when idle longer than IDLE_SECONDS, at process exit, and when
    the process that made it is not the one asking (a forked task process makes its own)."""

    IDLE_SECONDS = 60.0
    PER_KEY = 4

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._idle: dict[tuple, list[tuple[float, WeaviateClient]]] = {}
        self._keys: dict[int, tuple] = {}  # id(client) -> key, for the clients this pool made or kept
        self._pid = os.getpid()

    @staticmethod
    def _key(endpoint: WeaviateEndpoint, kwargs: dict[str, Any]) -> tuple:
        return (repr(endpoint), repr(sorted(kwargs.items(), key=lambda item: item[0])))

    def take(self, endpoint: WeaviateEndpoint, kwargs: dict[str, Any]) -> WeaviateClient | None:
        key = self._key(endpoint, kwargs)
        now = time.monotonic()
        stale: list[WeaviateClient] = []
        found = None
        with self._lock:
            if os.getpid() != self._pid:  # forked: the parent's sockets are not this process's
                self._idle.clear()
                self._keys.clear()
                self._pid = os.getpid()
            idle = self._idle.get(key, [])
            while idle:
                since, client = idle.pop()
                if now - since <= self.IDLE_SECONDS:
                    found = client
                    break
                stale.append(client)
            for client in stale:
                self._keys.pop(id(client), None)
        for client in stale:
            _close_quietly(client)
        if found is not None:
            try:
                live = found.is_live()
            except Exception:  # noqa: BLE001 - a kept client that fails its probe is replaced, never used
                live = False
            if live:
                return found
            with self._lock:
                self._keys.pop(id(found), None)
            _close_quietly(found)
        return None

    def made(self, client: WeaviateClient, endpoint: WeaviateEndpoint, kwargs: dict[str, Any]) -> None:
        """A new client that passed its checks: it may be kept when its block ends."""
        with self._lock:
            self._keys[id(client)] = self._key(endpoint, kwargs)

    def forget(self, client: WeaviateClient) -> None:
        with self._lock:
            self._keys.pop(id(client), None)

    def keep(self, client: WeaviateClient) -> bool:
        with self._lock:
            key = self._keys.get(id(client))
            if key is None or os.getpid() != self._pid:
                return False
            idle = self._idle.setdefault(key, [])
            if len(idle) >= self.PER_KEY:
                self._keys.pop(id(client), None)
                return False
            idle.append((time.monotonic(), client))
            return True

    def close_all(self) -> None:
        with self._lock:
            clients = [c for idle in self._idle.values() for _, c in idle] if os.getpid() == self._pid else []
            self._idle.clear()
            self._keys.clear()
        for client in clients:
            _close_quietly(client)


def _close_quietly(client: WeaviateClient) -> None:
    try:
        client.close()
    except Exception:  # closing a client nobody uses any more: logged, nothing to report
        log.debug("closing an idle Weaviate client failed", exc_info=True)


_IDLE_CLIENTS = _IdleClients()
atexit.register(_IDLE_CLIENTS.close_all)


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
