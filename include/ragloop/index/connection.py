"""The connection to Weaviate (through the hook) and the errors that name the Weaviate that failed."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING
from collections.abc import Iterator

from ragloop.errors import RagloopError
from ragloop.index.endpoint import WEAVIATE_CONN_ID, WeaviateEndpoint, client_kwargs

if TYPE_CHECKING:
    from weaviate import WeaviateClient


log = logging.getLogger(__name__)


class WeaviateIndexError(RagloopError):
    """Index problem with a message meant for a person."""


class EmbedderMismatch(WeaviateIndexError):
    pass


class ReplicationMismatch(WeaviateIndexError):
    pass


def endpoint_from_connection(conn_id: str = WEAVIATE_CONN_ID) -> WeaviateEndpoint:
    """Where the connection points (see `RagloopWeaviateHook` for what its fields mean)."""
    from ragloop.airflow.hooks.weaviate import RagloopWeaviateHook, WeaviateConnectionError

    try:
        return RagloopWeaviateHook(conn_id).endpoint()
    except WeaviateConnectionError as err:
        raise WeaviateIndexError(str(err)) from None


@contextmanager
def connect(conn_id: str = WEAVIATE_CONN_ID) -> Iterator[WeaviateClient]:
    """A Weaviate client for the Airflow connection, made by the hook; closed on exit."""
    from ragloop.airflow.hooks.weaviate import RagloopWeaviateHook, WeaviateConnectionError, connect_client, release_client

    try:
        endpoint, kwargs = RagloopWeaviateHook(conn_id).connect_args()
    except WeaviateConnectionError as err:
        raise WeaviateIndexError(str(err)) from None
    try:
        client = connect_client(endpoint, kwargs)
    except Exception as err:
        raise WeaviateIndexError(
            f"Cannot reach Weaviate at {endpoint.url} (gRPC {endpoint.grpc_host}:{endpoint.grpc_port}) "
            f"from connection {conn_id!r}: {err}. Start the local server with `ragloop weaviate start`, "
            "or point the connection at a running Weaviate."
        ) from err
    clean = False
    try:
        yield client
        clean = True
    except WeaviateIndexError as err:
        if endpoint.url not in str(err):
            err.args = (f"{err} [Weaviate at {endpoint.url}]",)
        raise
    except _weaviate_base_error() as err:
        # Whatever the call, say which Weaviate failed: the client's own message often does not.
        raise WeaviateIndexError(f"Weaviate at {endpoint.url} failed: {type(err).__name__}: {err}") from err
    finally:
        release_client(client, reusable=clean)  # kept for the next connect() in this process, or closed


def _weaviate_base_error() -> type[Exception]:
    from weaviate.exceptions import WeaviateBaseError

    return WeaviateBaseError


@contextmanager
def connect_local(host: str, http_port: int, grpc_port: int) -> Iterator[WeaviateClient]:
    """A client for the local server on these ports (anonymous), before any connection exists."""
    import weaviate

    client = weaviate.connect_to_custom(**client_kwargs(WeaviateEndpoint(host, http_port, host, grpc_port)))
    try:
        yield client
    finally:
        client.close()


def index_error(action: str, err: Exception) -> WeaviateIndexError:
    if isinstance(err, WeaviateIndexError):
        return err
    return WeaviateIndexError(f"Weaviate failed while {action}: {type(err).__name__}: {err}")
