"""Everything that talks to Weaviate: the connection, the collection schema, and what it holds.

The `weaviate_default` Airflow connection is parsed here and nowhere else. It takes the same
fields as the official provider's WeaviateHook (host, port, extra.grpc_host/grpc_port,
http_secure/grpc_secure, api_key or token, additional_headers), but sends credentials only when
the connection has some: the hook always sends a username/password pair, which makes the client
warn on every connect to an anonymous local server.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from weaviate import WeaviateClient

    from ragloop.embedding import Embedder

log = logging.getLogger(__name__)

WEAVIATE_CONN_ID = "weaviate_default"
SCHEMA_VERSION = 1
# The collection's description carries the embedder it was built with, so the record lives with
# the vectors it describes and cannot drift from them.
DESCRIPTION_PREFIX = "ragloop "


class WeaviateIndexError(RuntimeError):
    """Index problem with a message meant for a person."""


class EmbedderMismatch(WeaviateIndexError):
    pass


@dataclass(frozen=True)
class WeaviateEndpoint:
    """Where and how to reach Weaviate, as read from the Airflow connection."""

    host: str
    http_port: int
    grpc_host: str
    grpc_port: int
    http_secure: bool = False
    grpc_secure: bool = False
    api_key: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    local_server: tuple[tuple[str, int], ...] = ()

    @property
    def url(self) -> str:
        return f"{'https' if self.http_secure else 'http'}://{self.host}:{self.http_port}"

    def __repr__(self) -> str:  # never print the key
        return f"WeaviateEndpoint({self.url}, grpc={self.grpc_host}:{self.grpc_port}, api_key={'***' if self.api_key else None})"


def endpoint_from_connection(conn_id: str = WEAVIATE_CONN_ID) -> WeaviateEndpoint:
    from ragloop.connections import get_connection

    try:
        conn = get_connection(conn_id)
    except LookupError as err:
        raise WeaviateIndexError(str(err)) from None
    extra = conn.extra_dejson
    http_secure = bool(extra.get("http_secure", False))
    grpc_secure = bool(extra.get("grpc_secure", False))
    if not conn.host:
        raise WeaviateIndexError(f"Airflow connection {conn_id!r} has no host")
    local = extra.get("local_server") or {}
    return WeaviateEndpoint(
        host=conn.host,
        http_port=int(conn.port or (443 if http_secure else 80)),
        grpc_host=extra.get("grpc_host") or conn.host,
        grpc_port=int(extra.get("grpc_port") or (443 if grpc_secure else 50051)),
        http_secure=http_secure,
        grpc_secure=grpc_secure,
        api_key=extra.get("api_key") or extra.get("token") or conn.password or None,
        headers=tuple(sorted((extra.get("additional_headers") or {}).items())),
        local_server=tuple(sorted((k, int(v)) for k, v in local.items())),
    )


def _client(endpoint: WeaviateEndpoint) -> "WeaviateClient":
    import weaviate
    from weaviate.classes.init import AdditionalConfig, Auth, Timeout

    return weaviate.connect_to_custom(
        http_host=endpoint.host,
        http_port=endpoint.http_port,
        http_secure=endpoint.http_secure,
        grpc_host=endpoint.grpc_host,
        grpc_port=endpoint.grpc_port,
        grpc_secure=endpoint.grpc_secure,
        headers=dict(endpoint.headers) or None,
        auth_credentials=Auth.api_key(endpoint.api_key) if endpoint.api_key else None,
        additional_config=AdditionalConfig(timeout=Timeout(init=10, query=60, insert=120)),
    )


@contextmanager
def connect(conn_id: str = WEAVIATE_CONN_ID) -> Iterator["WeaviateClient"]:
    """A Weaviate client for the Airflow connection, closed on exit."""
    endpoint = endpoint_from_connection(conn_id)
    try:
        client = _client(endpoint)
    except Exception as err:
        raise WeaviateIndexError(
            f"Cannot reach Weaviate at {endpoint.url} (gRPC {endpoint.grpc_host}:{endpoint.grpc_port}) "
            f"from connection {conn_id!r}: {err}. Start the local server with `ragloop weaviate start`, "
            "or point the connection at a running Weaviate."
        ) from err
    try:
        yield client
    finally:
        client.close()


@contextmanager
def connect_local(host: str, http_port: int, grpc_port: int) -> Iterator["WeaviateClient"]:
    client = _client(WeaviateEndpoint(host, http_port, host, grpc_port))
    try:
        yield client
    finally:
        client.close()


def collection_counts(client: "WeaviateClient") -> dict[str, int]:
    """Object count of every collection."""
    counts = {}
    for name in sorted(client.collections.list_all(simple=True)):
        result = client.collections.use(name).aggregate.over_all(total_count=True)
        counts[name] = int(result.total_count or 0)
    return counts


def _describe(embedder: "Embedder") -> str:
    return DESCRIPTION_PREFIX + json.dumps(
        {"embedder": embedder.name, "dimension": embedder.dimension, "schema_version": SCHEMA_VERSION},
        sort_keys=True,
    )


def recorded_embedder(client: "WeaviateClient", name: str) -> dict | None:
    """The embedder a collection was built with, or None when the collection does not exist."""
    if not client.collections.exists(name):
        return None
    description = client.collections.use(name).config.get().description or ""
    if not description.startswith(DESCRIPTION_PREFIX):
        raise WeaviateIndexError(
            f"Collection {name!r} exists but was not created by ragloop (no embedder record in its "
            "description). Choose another `collection:` name in sources.yaml."
        )
    return json.loads(description[len(DESCRIPTION_PREFIX):])


def ensure_collection(client: "WeaviateClient", name: str, embedder: "Embedder") -> bool:
    """Create the chunk collection for `embedder`, or check that an existing one matches it.

    Returns True when the collection was created. Vectors of different embedders live in
    different spaces, so a collection built with one is never written with another.
    """
    recorded = recorded_embedder(client, name)
    if recorded is not None:
        if recorded.get("embedder") != embedder.name or recorded.get("dimension") != embedder.dimension:
            raise EmbedderMismatch(
                f"Collection {name!r} was indexed with embedder {recorded.get('embedder')!r} "
                f"({recorded.get('dimension')} dimensions), but the configuration asks for {embedder.name!r} "
                f"({embedder.dimension} dimensions); vectors of different embedders cannot be mixed. To re-index "
                f"with the new embedder, set `collection:` in sources.yaml to a new name and run `ragloop ingest`; "
                f"remove the old collection with `ragloop index drop {name} --yes` when nothing uses it. To keep "
                f"using this collection, set `embedder:` back to {recorded.get('embedder')!r}."
            )
        return False

    from weaviate.classes.config import Configure, DataType, Property, Tokenization

    def keyword(prop: str) -> Property:
        # Exact-match fields: filterable, not part of BM25 text search.
        return Property(
            name=prop, data_type=DataType.TEXT, tokenization=Tokenization.FIELD,
            index_filterable=True, index_searchable=False,
        )

    client.collections.create(
        name=name,
        description=_describe(embedder),
        vector_config=Configure.Vectors.self_provided(),
        properties=[
            keyword("doc_id"),
            keyword("source_id"),
            keyword("kind"),
            keyword("doc_hash"),
            keyword("chunk_hash"),
            Property(name="title", data_type=DataType.TEXT),
            Property(name="text", data_type=DataType.TEXT),
            Property(name="heading_path", data_type=DataType.TEXT),
            Property(name="url", data_type=DataType.TEXT, index_searchable=False),
            Property(name="chunk_index", data_type=DataType.INT),
            Property(name="updated_at", data_type=DataType.DATE),
            Property(name="metadata_json", data_type=DataType.TEXT, index_searchable=False, index_filterable=False),
        ],
    )
    log.info("Created collection %s for embedder %s (%d dimensions)", name, embedder.name, embedder.dimension)
    return True


def drop_collection(client: "WeaviateClient", name: str) -> bool:
    if not client.collections.exists(name):
        return False
    client.collections.delete(name)
    return True
