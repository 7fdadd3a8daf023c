"""Writing chunks (concurrent batches, every failure named) and deleting stale chunks and
documents."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from ragloop.documents import Visibility
from ragloop.index.base import RECORD_PENDING, ChunkObject, DocumentRecord
from ragloop.index.connection import WeaviateIndexError, index_error
from ragloop.index.reading import FILTER_GROUP
from ragloop.index.records import delete_records, record_uuid, records_collection_name, write_records
from ragloop.index.replication import use

if TYPE_CHECKING:
    from weaviate import WeaviateClient


log = logging.getLogger(__name__)


class IndexWriteError(WeaviateIndexError):
    """Some objects of a batch were refused; the message lists them."""


WRITE_GROUP = 250  # objects per insert_many request


# insert_many requests in flight at once: while Weaviate stores some groups, the client builds the
# next one's protobuf message. Measured on the 2-core machine, 7,590 chunks written in the
# pipeline's groups of 1,000, two rounds: 500 x 2 in flight 7.26/8.42 s, 1,000 x 2 8.46/7.82 s,
# 250 x 2 6.41/7.65 s, 250 x 4 6.31/6.38 s; the client's own fixed_size(1000, 2) batch 6.17/7.28 s.
WRITE_CONCURRENCY = 4


def chunk_object(document, chunk, doc_hash: str, chunk_count: int, vector: list[float], quarantined: bool = False) -> ChunkObject:
    """A chunk as stored. A quarantined chunk (it holds a credential and its source says
    `quarantine_credentials: true`) is flagged and stored internal, whatever its document's
    visibility: public search never returns it, and an answer citing it is not public. The
    document's hash is unchanged, so fixing the source (a new hash) rewrites it as it should be."""
    return ChunkObject(
        uuid=chunk.chunk_id,
        properties={
            "doc_id": document.doc_id,
            "source_id": document.source_id,
            "kind": document.kind,
            "doc_hash": doc_hash,
            "chunk_hash": chunk.chunk_hash,
            "visibility": Visibility.INTERNAL.value if quarantined else document.visibility,
            "quarantined": quarantined,
            "title": document.title,
            "text": chunk.text,
            "heading_path": " > ".join(chunk.heading_path),
            "url": document.url,
            "chunk_index": chunk.index,
            "chunk_count": chunk_count,
            "updated_at": document.updated_at,
            "metadata_json": json.dumps(document.metadata, sort_keys=True, ensure_ascii=False, default=str),
        },
        vector=vector,
    )


def write_objects(client: WeaviateClient, name: str, objects: list[ChunkObject]) -> int:
    """Insert or replace objects by uuid. Every refused object is reported: a batch with any
    failure raises IndexWriteError naming the objects and reasons, never counts as success."""
    from concurrent.futures import ThreadPoolExecutor

    from weaviate.classes.data import DataObject

    collection = use(client, name)
    failures: list[str] = []
    written = 0

    def send(group: list[ChunkObject]):
        try:
            return collection.data.insert_many([DataObject(uuid=o.uuid, properties=o.properties, vector=o.vector) for o in group])
        except Exception as err:
            raise index_error(f"writing {len(group)} chunks to {name}", err) from err

    groups = [objects[start : start + WRITE_GROUP] for start in range(0, len(objects), WRITE_GROUP)]
    with ThreadPoolExecutor(max_workers=min(WRITE_CONCURRENCY, len(groups) or 1), thread_name_prefix="weaviate-write") as pool:
        # map() yields in order and re-raises the first failed request's error here.
        for group, result in zip(groups, pool.map(send, groups), strict=False):
            for index, error in sorted(result.errors.items()):
                obj = group[index]
                failures.append(f"{obj.uuid} ({obj.properties['doc_id']} chunk {obj.properties['chunk_index']}): {error.message}")
            written += len(group) - len(result.errors)
    if failures:
        shown = "\n  ".join(failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        raise IndexWriteError(f"Weaviate refused {len(failures)} of {len(objects)} chunks in {name}:\n  {shown}{more}")
    return written


def _delete_where(client: WeaviateClient, name: str, where, what: str) -> int:
    """delete_many until nothing matches: one call deletes at most QUERY_MAXIMUM_RESULTS objects."""
    collection = use(client, name)
    deleted = 0
    for _ in range(10_000):
        try:
            result = collection.data.delete_many(where=where)
        except Exception as err:
            raise index_error(f"deleting {what} from {name}", err) from err
        if result.failed:
            raise WeaviateIndexError(f"Weaviate failed to delete {result.failed} objects ({what}) from {name}")
        deleted += result.successful
        if result.matches == 0 or result.successful == 0:
            return deleted
    raise WeaviateIndexError(f"Deleting {what} from {name} did not finish")


def delete_stale_chunks(client: WeaviateClient, name: str, current_hashes: dict[str, str]) -> int:
    """Delete each document's chunks that carry another hash than the one just written.

    Called only after the document's new chunks are written: the document is never without
    chunks, and whatever an interrupted earlier run left behind goes too.
    """
    from weaviate.classes.query import Filter

    deleted = 0
    items = sorted(current_hashes.items())
    for start in range(0, len(items), FILTER_GROUP):
        group = items[start : start + FILTER_GROUP]
        where = (
            Filter.any_of(
                [
                    Filter.by_property("doc_id").equal(doc_id) & Filter.by_property("doc_hash").not_equal(doc_hash)
                    for doc_id, doc_hash in group
                ]
            )
            if len(group) > 1
            else (Filter.by_property("doc_id").equal(group[0][0]) & Filter.by_property("doc_hash").not_equal(group[0][1]))
        )
        deleted += _delete_where(client, name, where, f"stale chunks of {len(group)} documents")
    return deleted


def begin_documents(client: WeaviateClient, name: str, documents: list[tuple[str, str]]) -> None:
    """Mark the records of these (doc_id, source_id) pending before their chunks change: a crash
    from here on leaves a record the next plan does not trust."""
    write_records(client, name, [DocumentRecord(doc_id, source_id, "", 0, RECORD_PENDING) for doc_id, source_id in documents])


def delete_documents(client: WeaviateClient, name: str, doc_ids: list[str]) -> int:
    """Delete every chunk of the given documents, then their records; returns the number of
    chunks deleted. The records are marked pending first, so a crash in between never leaves a
    complete record over chunks that are gone."""
    from weaviate.classes.query import Filter

    ids = sorted(set(doc_ids))
    _mark_pending(client, name, ids)
    deleted = 0
    for start in range(0, len(ids), FILTER_GROUP):
        group = ids[start : start + FILTER_GROUP]
        deleted += _delete_where(client, name, Filter.by_property("doc_id").contains_any(group), f"{len(group)} documents")
    delete_records(client, name, ids)
    return deleted


def _mark_pending(client: WeaviateClient, name: str, doc_ids: list[str]) -> None:
    """The existing records of `doc_ids` become pending (their source kept: a pending record of a
    document gone from its source is still pruned)."""
    records = records_collection_name(name)
    if not doc_ids or not client.collections.exists(records):
        return
    collection = use(client, records)
    pending: list[DocumentRecord] = []
    try:
        for start in range(0, len(doc_ids), FILTER_GROUP):
            group = doc_ids[start : start + FILTER_GROUP]
            found = collection.query.fetch_objects_by_ids(
                [record_uuid(d) for d in group], limit=len(group), return_properties=["doc_id", "source_id"]
            )
            pending += [
                DocumentRecord(str(o.properties["doc_id"]), str(o.properties.get("source_id") or ""), "", 0, RECORD_PENDING)
                for o in found.objects
            ]
    except Exception as err:
        raise index_error(f"reading the records of {len(doc_ids)} documents to delete from {records}", err) from err
    write_records(client, name, pending)
