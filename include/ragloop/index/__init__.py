"""Everything that talks to Weaviate: the connection, the collection schema, reading what is
indexed, writing and deleting chunks, and search.

The collection is the only record of what is indexed: every chunk carries its document's hash
(`doc_hash`) and chunk count (`chunk_count`), so a plan can tell unchanged, changed and
half-written documents apart from the index alone, with no side database that could drift.

A connection becomes a client in `ragloop.hooks.weaviate.RagloopWeaviateHook` and nowhere else;
`connect` adds the messages that name the Weaviate that failed.

Modules: connection, replication, schema, watermarks, reading, writing, search; the names
below are what the rest of ragloop imports.
"""

from __future__ import annotations

from ragloop.index.connection import (
    WeaviateIndexError,
    EmbedderMismatch,
    ReplicationMismatch,
    endpoint_from_connection,
    connect,
    connect_local,
)
from ragloop.index.replication import replication_of
from ragloop.index.schema import (
    SCHEMA_VERSION,
    DESCRIPTION_PREFIX,
    recorded_embedder,
    ensure_collection,
    drop_collection,
    BACKFILL_VISIBILITY,
)
from ragloop.index.watermarks import STATE_SUFFIX, state_collection_name, read_watermarks, write_watermarks
from ragloop.index.reading import (
    collection_counts,
    ITERATOR_PAGE,
    FILTER_GROUP,
    IndexedDocument,
    read_indexed_documents,
    vectors_for_hashes,
    count_chunks,
    fetch_chunks,
)
from ragloop.index.writing import (
    IndexWriteError,
    WRITE_GROUP,
    WRITE_CONCURRENCY,
    ChunkObject,
    chunk_object,
    write_objects,
    delete_stale_chunks,
    delete_documents,
)
from ragloop.index.search import HYBRID_ALPHA, KEYWORD_PROPERTIES, search

__all__ = [
    "BACKFILL_VISIBILITY",
    "DESCRIPTION_PREFIX",
    "FILTER_GROUP",
    "HYBRID_ALPHA",
    "ITERATOR_PAGE",
    "KEYWORD_PROPERTIES",
    "SCHEMA_VERSION",
    "STATE_SUFFIX",
    "WRITE_CONCURRENCY",
    "WRITE_GROUP",
    "ChunkObject",
    "EmbedderMismatch",
    "IndexWriteError",
    "IndexedDocument",
    "ReplicationMismatch",
    "WeaviateIndexError",
    "chunk_object",
    "collection_counts",
    "connect",
    "connect_local",
    "count_chunks",
    "delete_documents",
    "delete_stale_chunks",
    "drop_collection",
    "endpoint_from_connection",
    "ensure_collection",
    "fetch_chunks",
    "read_indexed_documents",
    "read_watermarks",
    "recorded_embedder",
    "replication_of",
    "search",
    "state_collection_name",
    "vectors_for_hashes",
    "write_objects",
    "write_watermarks",
]
