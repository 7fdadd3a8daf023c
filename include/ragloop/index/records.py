"""One record per document beside the chunks (<collection>DocRecords): what a plan reads.

A no-change plan used to stream five properties of every chunk; it now reads one small object per
document (doc_id, source_id, doc_hash, chunk_count, state). The records follow the order of
`ragloop.index.base` (pending before the chunks change, complete after), so a record never claims
chunks that are not there. A collection indexed before records existed gets them automatically
the first time it is ensured (`migrate_records`: one streaming read of its chunks).
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from ragloop.index.base import RECORD_COMPLETE, RECORD_PENDING, DocumentRecord
from ragloop.index.connection import WeaviateIndexError, index_error
from ragloop.index.replication import REPLICATION, replication_config, use

if TYPE_CHECKING:
    from collections.abc import Callable

    from weaviate import WeaviateClient


log = logging.getLogger(__name__)

RECORDS_SUFFIX = "DocRecords"
RECORDS_PAGE = 5000  # records per cursor page of a plan's read
RECORDS_GROUP = 1000  # records per insert_many request


def records_collection_name(name: str) -> str:
    return f"{name}{RECORDS_SUFFIX}"


def record_uuid(doc_id: str) -> str:
    from ragloop.documents import RAGLOOP_NAMESPACE

    return str(uuid.uuid5(RAGLOOP_NAMESPACE, f"document-record\x00{doc_id}"))


def create_records_collection(client: WeaviateClient, name: str) -> bool:
    """Create the records collection of chunk collection `name` (same replication); False when it exists."""
    from weaviate.classes.config import Configure, DataType, Property, Tokenization

    from ragloop.config import Replication

    records = records_collection_name(name)
    if name in REPLICATION:
        REPLICATION[records] = REPLICATION[name]
    if client.collections.exists(records):
        return False

    def keyword(prop: str) -> Property:
        return Property(
            name=prop, data_type=DataType.TEXT, tokenization=Tokenization.FIELD, index_filterable=True, index_searchable=False
        )

    try:
        client.collections.create(
            name=records,
            description=f"ragloop document records of {name}",
            vector_config=Configure.Vectors.self_provided(),
            replication_config=replication_config(REPLICATION.get(name) or Replication()),
            properties=[
                keyword("doc_id"),
                keyword("source_id"),
                keyword("doc_hash"),
                keyword("state"),
                Property(name="chunk_count", data_type=DataType.INT),
            ],
        )
    except Exception as err:
        if not client.collections.exists(records):  # another task created it first: fine
            raise index_error(f"creating collection {records}", err) from err
        return False
    return True


def read_records(client: WeaviateClient, name: str, source_ids: set[str] | None = None) -> dict[str, DocumentRecord]:
    """doc_id -> record for the given sources: one cursor pass over one object per document."""
    records = records_collection_name(name)
    if not client.collections.exists(records):
        return {}
    found: dict[str, DocumentRecord] = {}
    try:
        for obj in use(client, records).iterator(
            return_properties=["doc_id", "source_id", "doc_hash", "chunk_count", "state"], cache_size=RECORDS_PAGE
        ):
            props = obj.properties
            source_id = str(props.get("source_id") or "")
            if source_ids is not None and source_id not in source_ids:
                continue
            doc_id = str(props["doc_id"])
            found[doc_id] = DocumentRecord(
                doc_id=doc_id,
                source_id=source_id,
                doc_hash=str(props.get("doc_hash") or ""),
                chunk_count=int(props.get("chunk_count") or 0),
                state=str(props.get("state") or RECORD_PENDING),
            )
    except Exception as err:
        raise index_error(f"reading the document records of {name}", err) from err
    return found


def write_records(client: WeaviateClient, name: str, records: list[DocumentRecord]) -> int:
    """Insert or replace records by document; any refusal raises, naming the documents."""
    from weaviate.classes.data import DataObject

    collection_name = records_collection_name(name)
    collection = use(client, collection_name)
    failures: list[str] = []
    for start in range(0, len(records), RECORDS_GROUP):
        group = records[start : start + RECORDS_GROUP]
        objects = [
            DataObject(
                uuid=record_uuid(r.doc_id),
                properties={
                    "doc_id": r.doc_id,
                    "source_id": r.source_id,
                    "doc_hash": r.doc_hash,
                    "chunk_count": r.chunk_count,
                    "state": r.state,
                },
            )
            for r in group
        ]
        try:
            result = collection.data.insert_many(objects)
        except Exception as err:
            raise index_error(f"writing {len(group)} document records to {collection_name}", err) from err
        failures += [f"{group[i].doc_id}: {e.message}" for i, e in sorted(result.errors.items())]
    if failures:
        raise WeaviateIndexError(
            f"Weaviate refused {len(failures)} document records in {collection_name}: " + "; ".join(failures[:20])
        )
    return len(records)


def delete_records(client: WeaviateClient, name: str, doc_ids: list[str]) -> None:
    from weaviate.classes.query import Filter

    collection_name = records_collection_name(name)
    if not doc_ids or not client.collections.exists(collection_name):
        return
    collection = use(client, collection_name)
    ids = sorted(doc_ids)
    for start in range(0, len(ids), 100):
        group = ids[start : start + 100]
        try:
            result = collection.data.delete_many(where=Filter.by_id().contains_any([record_uuid(d) for d in group]))
        except Exception as err:
            raise index_error(f"deleting {len(group)} document records from {collection_name}", err) from err
        if result.failed:
            raise WeaviateIndexError(f"Weaviate failed to delete {result.failed} document records from {collection_name}")


def migrate_records(client: WeaviateClient, name: str, progress: Callable[[str], None] | None = None) -> int:
    """Give a collection indexed before records existed one record per document, read from its
    chunks: complete when its chunks form one write (one hash, indexes 0..n-1), pending otherwise
    (the next plan rewrites those, as it did before). Idempotent; returns the records written."""
    from ragloop.index.reading import read_indexed_documents

    create_records_collection(client, name)
    documents = read_indexed_documents(client, name, None, progress=progress)
    records = []
    for doc_id, doc in documents.items():
        complete = doc.complete_hash
        records.append(
            DocumentRecord(
                doc_id=doc_id,
                source_id=doc.source_id,
                doc_hash=complete or "",
                chunk_count=doc.chunks if complete else 0,
                state=RECORD_COMPLETE if complete else RECORD_PENDING,
            )
        )
    write_records(client, name, records)
    log.info("Wrote %d document records for the chunks of %s (migration to schema 5)", len(records), name)
    return len(records)
