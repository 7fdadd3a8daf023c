"""Where a `weaviate` connection points (`WeaviateEndpoint`) and the client arguments for it:
no Airflow and no Weaviate client imported here, so `ragloop.index` and the local-server code can
use it before Airflow is configured. `RagloopWeaviateHook` (airflow/hooks/weaviate.py) documents the fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragloop.errors import RagloopError

if TYPE_CHECKING:
    from weaviate.auth import AuthCredentials

WEAVIATE_CONN_ID = "weaviate_default"
# Keys of extra that carry credentials, as the official hook reads them.
CREDENTIAL_EXTRAS = ("api_key", "token", "access_token", "client_secret")


class WeaviateConnectionError(RagloopError):
    """The Weaviate connection cannot be had or makes no sense; the message names it."""


@dataclass(frozen=True)
class WeaviateEndpoint:
    """Where and how to reach Weaviate, as read from the connection (no credentials: see
    `RagloopWeaviateHook.credentials`)."""

    host: str
    http_port: int
    grpc_host: str
    grpc_port: int
    http_secure: bool = False
    grpc_secure: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    local_server: tuple[tuple[str, int], ...] = ()

    @property
    def url(self) -> str:
        return f"{'https' if self.http_secure else 'http'}://{self.host}:{self.http_port}"


def endpoint_of(conn: Any, conn_id: str) -> WeaviateEndpoint:
    """The endpoint a `weaviate` connection names, with the official hook's defaults."""
    extra = conn.extra_dejson
    if not conn.host:
        raise WeaviateConnectionError(f"Airflow connection {conn_id!r} has no host")
    http_secure = bool(extra.get("http_secure", False))
    grpc_secure = bool(extra.get("grpc_secure", False))
    local = extra.get("local_server") or {}  # its keys are checked where it is used (weaviate_local)
    return WeaviateEndpoint(
        host=conn.host,
        http_port=int(conn.port or (443 if http_secure else 80)),
        grpc_host=extra.get("grpc_host") or conn.host,
        grpc_port=int(extra.get("grpc_port") or (443 if grpc_secure else 80)),
        http_secure=http_secure,
        grpc_secure=grpc_secure,
        headers=tuple(sorted((extra.get("additional_headers") or {}).items())),
        local_server=tuple(sorted((k, int(v)) for k, v in local.items())),
    )


def client_kwargs(endpoint: WeaviateEndpoint, auth: AuthCredentials | None = None) -> dict[str, Any]:
    """The arguments of `weaviate.connect_to_custom` for an endpoint."""
    from weaviate.classes.init import AdditionalConfig, Timeout  # the client loads on first connect

    return {
        "http_host": endpoint.host,
        "http_port": endpoint.http_port,
        "http_secure": endpoint.http_secure,
        "grpc_host": endpoint.grpc_host,
        "grpc_port": endpoint.grpc_port,
        "grpc_secure": endpoint.grpc_secure,
        "headers": dict(endpoint.headers),
        "auth_credentials": auth,
        "additional_config": AdditionalConfig(timeout=Timeout(init=10, query=60, insert=120)),
        # The client's init checks would also ask the package index whether a newer client exists,
        # on every connect: an HTTPS round trip per task (0.15-0.5 s measured; a wait for the
        # timeout where the index is unreachable). Without them it still reads the server's meta
        # (so an unreachable HTTP endpoint fails at connect); `connect_client` then does the gRPC
        # health check the client would have done.
        "skip_init_checks": True,
    }
