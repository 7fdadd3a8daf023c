"""The ingest plan's pure core: new / changed / unchanged / prune decided from a staged listing
and the index state, with no Weaviate; and the batching of the work."""

from __future__ import annotations

from ragloop.documents import indexed_hash
from ragloop.index import IndexedDocument
from ragloop.ingest.planning import batch_work, plan_source

SIG = "chunking-v1"


def listing(documents: dict[str, str], complete: bool = True, **extra) -> dict:
    """A listing as extract stages it: doc_id -> (content hash, shard number, line, characters)."""
    return {
        "documents": {doc_id: (content, 0, line, 4000) for line, (doc_id, content) in enumerate(documents.items())},
        "shards": ["file:///staging/shard-0000.jsonl"], "failed_doc_ids": [], "failures": [], "skipped": [],
        "seen": len(documents), "seconds": 0.1, "complete": complete, **extra,
    }


def indexed(source_id: str, content: str, chunks: int = 2, signature: str = SIG) -> IndexedDocument:
    return IndexedDocument(source_id=source_id, doc_hashes={indexed_hash(content, signature)},
                           chunk_indexes=set(range(chunks)), chunk_counts={chunks})


def plan(listed: dict, index: dict, full_refresh: bool = False, signature: str = SIG, source_id: str = "docs") -> dict:
    return plan_source(  # type: ignore[return-value]  # a SourcePlan is a TypedDict: read here by key
        listed, index, full_refresh, signature, source_id=source_id, max_tokens=256, overlap_tokens=32)


def test_new_changed_and_unchanged_documents():
    result = plan(listing({"a": "h-a", "b": "h-b2", "c": "h-c"}), {"b": indexed("docs", "h-b1"), "c": indexed("docs", "h-c")})
    entry = result["entry"]
    assert (entry["new"], entry["changed"], entry["unchanged"]) == (1, 1, 1)
    assert [(w["doc_id"], w["existed"]) for w in result["work"]] == [("a", False), ("b", True)]
    assert result["work"][0]["doc_hash"] == indexed_hash("h-a", SIG)
    assert result["work"][0]["shard"] == "file:///staging/shard-0000.jsonl"


def test_full_refresh_and_a_new_chunking_signature_rewrite_unchanged_content():
    index = {"c": indexed("docs", "h-c")}
    assert plan(listing({"c": "h-c"}), index, full_refresh=True)["entry"]["changed"] == 1
    assert plan(listing({"c": "h-c"}), index, signature="chunking-v2")["entry"]["changed"] == 1


def test_a_half_written_document_is_changed():
    half = IndexedDocument(source_id="docs", doc_hashes={indexed_hash("h-c", SIG)}, chunk_indexes={0}, chunk_counts={2})
    assert plan(listing({"c": "h-c"}), {"c": half})["entry"]["changed"] == 1


def test_a_complete_listing_prunes_the_sources_unlisted_documents_only():
    index = {"gone": indexed("docs", "h"), "kept-failed": indexed("docs", "h"), "other": indexed("slack", "h")}
    entry = plan(listing({"a": "h-a"}, failed_doc_ids=["kept-failed"]), index)["entry"]
    assert entry["prune"] == ["gone"] and entry["gone"] == 1


def test_an_incomplete_listing_prunes_nothing():
    entry = plan(listing({"a": "h-a"}, complete=False), {"gone": indexed("docs", "h")})["entry"]
    assert entry["prune"] is None and "1 documents missing from it are kept" in entry["prune_skipped"]


def test_an_incremental_listing_prunes_only_what_it_saw_withdrawn():
    index = {"withdrawn": indexed("slack", "h"), "outside-window": indexed("slack", "h")}
    entry = plan(listing({"a": "h-a"}, complete=False, mode="incremental", withdrawn=["withdrawn", "never-indexed"]),
                 index, source_id="slack")["entry"]
    assert entry["prune"] == ["withdrawn"] and entry["mode"] == "incremental"


def test_batches_hold_about_the_target_and_grow_past_the_maximum_count():
    work = [{"doc_id": str(i), "estimated_chunks": 10} for i in range(10)]
    assert [len(b) for b in batch_work(work, batch_chunks=30)] == [3, 3, 3, 1]
    assert [len(b) for b in batch_work(work, batch_chunks=10, max_batches=2)] == [5, 5]
    assert batch_work([], batch_chunks=30) == []
