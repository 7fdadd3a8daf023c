"""The Index contract: the same tests against the in-memory reference and the real Weaviate one.

Planning, indexing and prune are unit-tested on `MemoryIndex` (tests/unit/test_ingest_on_reference_index.py);
these tests are what makes that evidence about Weaviate too: every behaviour the ingest relies on
(records, vector reuse by chunk hash, stale deletion, document deletion, watermarks, search
filters by source, kind and audience) holds for both implementations.
"""

from __future__ import annotations

import uuid

import pytest

from ragloop.documents import RAGLOOP_NAMESPACE
from ragloop.embedding import make_embedder
from ragloop.index import (
    RECORD_COMPLETE,
    ChunkObject,
    DocumentRecord,
    EmbedderMismatch,
    Index,
    MemoryIndex,
    WeaviateIndex,
)

EMBEDDER = make_embedder("hash")


@pytest.fixture(params=["memory", "weaviate"])
def index(request, collection_name) -> Index:
    if request.param == "memory":
        return MemoryIndex(collection_name)
    client = request.getfixturevalue("weaviate_client")
    return WeaviateIndex(client, collection_name)


def chunk(doc_id: str, i: int, text: str, doc_hash: str = "h1", source_id: str = "docs", kind: str = "docs",
          visibility: str = "public", count: int = 2) -> ChunkObject:
    return ChunkObject(
        uuid=str(uuid.uuid5(RAGLOOP_NAMESPACE, f"{doc_id}#{i}")),
        properties={
            "doc_id": doc_id, "source_id": source_id, "kind": kind, "doc_hash": doc_hash,
            "chunk_hash": f"hash-of:{text}", "visibility": visibility, "quarantined": False,
            "title": doc_id, "text": text, "heading_path": "", "url": f"https://docs.example/{doc_id}",
            "chunk_index": i, "chunk_count": count, "updated_at": "2026-01-01T00:00:00Z", "metadata_json": "{}",
        },
        vector=EMBEDDER.embed([text])[0],
    )


def write_document(index: Index, doc_id: str, texts: list[str], doc_hash: str = "h1", **props) -> None:
    """A document written in the Index's order: pending, chunks, stale chunks, complete record."""
    source_id = props.get("source_id", "docs")
    index.begin_documents([(doc_id, source_id)])
    index.write_chunks([chunk(doc_id, i, t, doc_hash, count=len(texts), **props) for i, t in enumerate(texts)])
    index.delete_stale_chunks({doc_id: doc_hash})
    index.finish_documents([DocumentRecord(doc_id, source_id, doc_hash, len(texts), RECORD_COMPLETE)])


def test_both_implement_the_interface(index):
    assert isinstance(index, Index)


def test_prepare_refuses_another_embedder(index):
    index.prepare(EMBEDDER)
    index.prepare(EMBEDDER)  # the same one again: fine
    with pytest.raises(EmbedderMismatch):
        index.prepare(make_embedder({"type": "hash", "dimension": 16}))


def test_records_pending_then_complete_and_filtered_by_source(index):
    index.prepare(EMBEDDER)
    assert index.read_records() == {}
    index.begin_documents([("a.md", "docs"), ("t/1", "slack")])
    pending = index.read_records()
    assert set(pending) == {"a.md", "t/1"}
    assert all(r.complete_hash is None for r in pending.values())
    index.write_chunks([chunk("a.md", 0, "alpha one"), chunk("a.md", 1, "alpha two")])
    index.finish_documents([DocumentRecord("a.md", "docs", "h1", 2, RECORD_COMPLETE)])
    records = index.read_records({"docs"})
    assert list(records) == ["a.md"]
    assert records["a.md"].complete_hash == "h1" and records["a.md"].chunk_count == 2
    assert index.read_records({"slack"})["t/1"].complete_hash is None


def test_vectors_are_reused_by_chunk_hash_across_documents(index):
    index.prepare(EMBEDDER)
    write_document(index, "a.md", ["shared text", "only in a"])
    found = index.vectors_for_hashes({"hash-of:shared text", "hash-of:never written"})
    assert set(found) == {"hash-of:shared text"}
    assert found["hash-of:shared text"] == pytest.approx(EMBEDDER.embed(["shared text"])[0], abs=1e-6)


def test_new_chunks_are_written_before_stale_ones_go(index):
    index.prepare(EMBEDDER)
    write_document(index, "a.md", ["one", "two", "three"], doc_hash="h1")
    write_document(index, "b.md", ["bee"], doc_hash="h1")
    # Rewritten with two chunks: indexes 0-1 overwritten in place, index 2 is stale.
    index.begin_documents([("a.md", "docs")])
    assert index.write_chunks([chunk("a.md", 0, "uno", "h2"), chunk("a.md", 1, "dos", "h2")]) == 2
    assert index.count_chunks("a.md") == 3  # the stale one is still there until deleted
    assert index.delete_stale_chunks({"a.md": "h2"}) == 1
    assert index.count_chunks("a.md") == 2
    assert index.count_chunks("b.md") == 1  # another document's chunks are never touched


def test_delete_documents_takes_chunks_and_records(index):
    index.prepare(EMBEDDER)
    write_document(index, "a.md", ["one", "two"])
    write_document(index, "b.md", ["bee"])
    assert index.delete_documents(["a.md", "not-indexed.md"]) == 2
    assert index.count_chunks() == 1
    assert set(index.read_records()) == {"b.md"}


def test_watermarks_need_chunks_of_their_source(index):
    index.prepare(EMBEDDER)
    index.write_watermarks("slack", {"C1": {"watermark": "100.0"}})
    assert index.read_watermarks("slack") == {}  # no chunks of the source: read everything again
    write_document(index, "C1/100.0", ["a thread"], source_id="slack", kind="slack")
    assert index.read_watermarks("slack") == {"C1": {"watermark": "100.0"}}
    index.write_watermarks("slack", {"C1": {"watermark": "200.0"}})
    assert index.read_watermarks("slack")["C1"]["watermark"] == "200.0"


def test_search_filters_by_audience_source_and_kind(index):
    index.prepare(EMBEDDER)
    write_document(index, "public.md", ["deploying airflow with helm charts"])
    write_document(index, "internal.md", ["deploying airflow on our internal cluster"], visibility="internal")
    write_document(index, "C1/1.0", ["deploying airflow thread"], source_id="slack", kind="slack", visibility="internal")
    everything = index.search(EMBEDDER, "deploying airflow with helm charts", limit=5)
    assert {h.doc_id for h in everything} == {"public.md", "internal.md", "C1/1.0"}
    assert everything[0].doc_id == "public.md"  # the exact text: its vector and every keyword
    public = index.search(EMBEDDER, "deploying airflow", limit=5, audience="public")
    assert [h.doc_id for h in public] == ["public.md"]
    assert {h.doc_id for h in index.search(EMBEDDER, "deploying airflow", source_ids=["slack"])} == {"C1/1.0"}
    assert {h.doc_id for h in index.search(EMBEDDER, "deploying airflow", kinds=["docs"])} == {"public.md", "internal.md"}
