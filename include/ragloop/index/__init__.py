"""Everything that talks to Weaviate: the connection, the collection schema, reading what is
indexed, writing and deleting chunks, and search.

The collection is the only record of what is indexed: every chunk carries its document's hash
(`doc_hash`) and chunk count (`chunk_count`), so a plan can tell unchanged, changed and
half-written documents apart from the index alone, with no side database that could drift.

A connection becomes a client in `ragloop.airflow.hooks.weaviate.RagloopWeaviateHook` and nowhere else;
`connect` adds the messages that name the Weaviate that failed.

`base.Index` is the interface planning, indexing and prune take: `WeaviateIndex` is the real one
(`open_weaviate_index` opens it from a connection), `MemoryIndex` the in-memory reference for
tests. Each document also has a record beside its chunks (`records`), which is what a plan reads.

Modules: base, connection, replication, schema, records, watermarks, reading, writing, search,
weaviate_index, memory; the names below are what the rest of ragloop imports.
"""

from __future__ import annotations

from ragloop.index.base import RECORD_COMPLETE, RECORD_PENDING, ChunkObject, DocumentRecord, Index
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
from ragloop.index.records import RECORDS_SUFFIX, migrate_records, read_records, records_collection_name
from ragloop.index.writing import (
    IndexWriteError,
    WRITE_GROUP,
    WRITE_CONCURRENCY,
    begin_documents,
    chunk_object,
    write_objects,
    delete_stale_chunks,
    delete_documents,
)
from ragloop.index.search import HYBRID_ALPHA, KEYWORD_PROPERTIES, search
from ragloop.index.weaviate_index import WeaviateIndex, open_weaviate_index
from ragloop.index.memory import MemoryIndex

__all__ = [
    "BACKFILL_VISIBILITY",
    "DESCRIPTION_PREFIX",
    "FILTER_GROUP",
    "HYBRID_ALPHA",
    "ITERATOR_PAGE",
    "KEYWORD_PROPERTIES",
    "RECORDS_SUFFIX",
    "RECORD_COMPLETE",
    "RECORD_PENDING",
    "SCHEMA_VERSION",
    "STATE_SUFFIX",
    "WRITE_CONCURRENCY",
    "WRITE_GROUP",
    "ChunkObject",
    "DocumentRecord",
    "EmbedderMismatch",
    "Index",
    "IndexWriteError",
    "IndexedDocument",
    "MemoryIndex",
    "ReplicationMismatch",
    "WeaviateIndex",
    "WeaviateIndexError",
    "begin_documents",
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
    "migrate_records",
    "open_weaviate_index",
    "read_indexed_documents",
    "read_records",
    "read_watermarks",
    "recorded_embedder",
    "records_collection_name",
    "replication_of",
    "search",
    "state_collection_name",
    "vectors_for_hashes",
    "write_objects",
    "write_watermarks",
]
