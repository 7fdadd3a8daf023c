"""Plan, index and prune on the in-memory reference Index: the ingest's rules without a Weaviate.

The same entry point the DAG's steps, write-back and `ragloop.ingest.run` use (`ingest_listings`)
runs against `MemoryIndex`, whose behaviour tests/integration/test_index_contract.py holds equal
to Weaviate's. Documents are a generated corpus staged by the real docs source; the embedder is
the hash one (deterministic, equal text gives an equal vector).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import write_config
from corpus import delete_some, edit_one_line, generate

from ragloop.catalog import INGEST_DAG_ID
from ragloop.config import load_config
from ragloop.embedding import make_embedder
from ragloop.index import RECORD_COMPLETE, MemoryIndex
from ragloop.ingest import extract_source, ingest_listings
from ragloop.ingest.types import IngestTarget, ListingIngest
from ragloop.staging import DagRunRef

_runs = itertools.count()


class Corpus:
    def __init__(self, folder: Path, files: int = 24):
        self.docs = folder / "docs"
        self.paths = generate(self.docs, files, seed=5)
        self.config_path = write_config(folder, "Reference", self.docs, embedder="hash")
        self.config = load_config(str(self.config_path))

    def ingest(self, index: MemoryIndex, embedder=None, full_refresh: bool = False) -> ListingIngest:
        dag_run = DagRunRef(INGEST_DAG_ID, f"run-{next(_runs)}")
        extract_source("docs", dag_run, str(self.config_path))
        target = IngestTarget(self.config, index, embedder or make_embedder("hash"))
        return ingest_listings(target, dag_run, ["docs"], full_refresh)


def chunk_hashes(index: MemoryIndex) -> dict[str, list[str]]:
    by_doc: dict[str, list[tuple[int, str]]] = {}
    for obj in index.chunks.values():
        by_doc.setdefault(obj.properties["doc_id"], []).append((obj.properties["chunk_index"], obj.properties["chunk_hash"]))
    return {d: [h for _, h in sorted(cs)] for d, cs in by_doc.items()}


def totals(result: ListingIngest) -> dict[str, int]:
    counts = {"embedded": 0, "reused": 0, "written": 0, "deleted": 0}
    for batch in result["batches"]:
        for c in batch["sources"].values():
            counts["embedded"] += c["chunks_embedded"]
            counts["reused"] += c["chunks_reused"]
            counts["written"] += c["chunks_written"]
            counts["deleted"] += c["chunks_deleted"]
    return counts


@pytest.fixture(autouse=True)
def small_groups(monkeypatch):
    """Groups of about 25 chunks: a small corpus still crosses the pipeline's queues many times."""
    import ragloop.ingest.indexing

    monkeypatch.setattr(ragloop.ingest.indexing, "GROUP_CHUNKS", 25)


@pytest.fixture
def corpus(tmp_path) -> Corpus:
    return Corpus(tmp_path)


def fresh_reference(corpus: Corpus) -> MemoryIndex:
    reference = MemoryIndex("Fresh")
    corpus.ingest(reference)
    return reference


def test_first_run_indexes_everything_and_records_each_document(corpus):
    index = MemoryIndex()
    result = corpus.ingest(index)
    assert result["plan"]["summary"]["docs"]["new"] == 24
    assert len(index.records) == 24
    assert all(r.state == RECORD_COMPLETE and r.chunk_count == index.count_chunks(d) for d, r in index.records.items())
    assert totals(result)["written"] == index.count_chunks() > 24


def test_a_no_change_run_embeds_and_writes_nothing(corpus):
    index = MemoryIndex()
    corpus.ingest(index)
    again = corpus.ingest(index)
    assert again["plan"]["batches"] == []
    assert again["plan"]["summary"]["docs"]["unchanged"] == 24
    assert totals(again) == {"embedded": 0, "reused": 0, "written": 0, "deleted": 0}


def test_a_changed_document_reuses_unchanged_text_and_drops_stale_chunks(corpus):
    index = MemoryIndex()
    corpus.ingest(index)
    edit_one_line(corpus.paths, 0.1)
    longest = max(corpus.paths, key=lambda p: p.stat().st_size)
    longest.write_text(longest.read_text()[:300])  # it shrinks to one chunk: the rest are stale
    result = corpus.ingest(index)
    changed = result["plan"]["summary"]["docs"]["changed"]
    assert changed > 1
    assert totals(result)["deleted"] > 0
    counts = totals(result)
    assert 0 < counts["embedded"] < counts["written"]  # one line changed: most chunks reuse their vector
    assert chunk_hashes(index) == chunk_hashes(fresh_reference(corpus))


def test_documents_gone_from_a_complete_listing_are_pruned_with_their_records(corpus):
    index = MemoryIndex()
    corpus.ingest(index)
    before = set(index.records)
    gone = delete_some(corpus.paths, 0.2)
    result = corpus.ingest(index)
    pruned = result["prune"]["sources"]["docs"]
    assert pruned["documents_deleted"] == len(gone) > 0
    reference = fresh_reference(corpus)
    assert set(pruned["doc_ids"]) == before - set(reference.records)
    assert set(index.records) == set(reference.records)
    assert chunk_hashes(index) == chunk_hashes(reference)


def test_a_full_refresh_rewrites_everything_and_embeds_nothing(corpus):
    index = MemoryIndex()
    corpus.ingest(index)
    result = corpus.ingest(index, full_refresh=True)
    counts = totals(result)
    assert counts["embedded"] == 0 and counts["written"] == index.count_chunks()


class FailingWrites(MemoryIndex):
    """The reference index refusing the write of its `fail_at`-th group of chunks."""

    def __init__(self, fail_at: int):
        super().__init__()
        self.fail_at = fail_at
        self.writes = 0

    def write_chunks(self, objects):
        self.writes += 1
        if self.writes == self.fail_at:
            from ragloop.index import IndexWriteError

            raise IndexWriteError(f"refused {len(objects)} chunks (test)")
        return super().write_chunks(objects)


class FailingEmbedder:
    """The hash embedder failing on its `fail_at`-th call."""

    def __init__(self, fail_at: int):
        self.inner = make_embedder("hash")
        self.calls = 0
        self.fail_at = fail_at
        self.name, self.dimension = self.inner.name, self.inner.dimension
        self.max_input_tokens, self.usage = self.inner.max_input_tokens, self.inner.usage

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def embed(self, texts):
        self.calls += 1
        if self.calls == self.fail_at:
            from ragloop.embedding.base import EmbeddingError

            raise EmbeddingError("the model failed (test)")
        return self.inner.embed(texts)


def _prepare_failure_run(corpus: Corpus, index: MemoryIndex) -> tuple[dict[str, list[str]], list[Path]]:
    """Index the corpus, then change every document (several groups) and delete some."""
    corpus.ingest(index)
    before = chunk_hashes(index)
    edit_one_line(corpus.paths, 1.0)
    gone = delete_some(corpus.paths, 0.1)
    return before, gone


def _assert_failed_cleanly(index: MemoryIndex, before: dict[str, list[str]], corpus: Corpus) -> None:
    # Nothing pruned: every document indexed before still has chunks (deleted files too).
    assert set(chunk_hashes(index)) == set(before)
    # No record claims a write that did not finish: a complete record's chunks all carry its hash.
    for doc_id, record in index.records.items():
        if record.state == RECORD_COMPLETE:
            chunks = [o for o in index.chunks.values() if o.properties["doc_id"] == doc_id]
            assert len(chunks) == record.chunk_count
            assert {o.properties["doc_hash"] for o in chunks} == {record.doc_hash}
    assert any(r.state != RECORD_COMPLETE for r in index.records.values())  # the failed groups stay pending


@pytest.mark.parametrize("fail_at", [2, 3])
def test_a_write_error_mid_batch_prunes_nothing_and_a_rerun_converges(tmp_path, fail_at):
    from ragloop.index import IndexWriteError

    corpus = Corpus(tmp_path, files=30)
    index = FailingWrites(fail_at=10**6)
    before, _ = _prepare_failure_run(corpus, index)
    index.writes, index.fail_at = 0, fail_at
    with pytest.raises(IndexWriteError, match="refused"):
        corpus.ingest(index)
    _assert_failed_cleanly(index, before, corpus)
    index.fail_at = 10**6
    corpus.ingest(index)
    assert chunk_hashes(index) == chunk_hashes(fresh_reference(corpus))
    assert totals(corpus.ingest(index)) == {"embedded": 0, "reused": 0, "written": 0, "deleted": 0}


def test_an_embedder_error_mid_queue_prunes_nothing_and_a_rerun_converges(tmp_path):
    from ragloop.embedding.base import EmbeddingError

    corpus = Corpus(tmp_path, files=30)
    index = MemoryIndex()
    before, _ = _prepare_failure_run(corpus, index)
    with pytest.raises(EmbeddingError, match="the model failed"):
        corpus.ingest(index, embedder=FailingEmbedder(fail_at=2))
    _assert_failed_cleanly(index, before, corpus)
    corpus.ingest(index)
    assert chunk_hashes(index) == chunk_hashes(fresh_reference(corpus))


def test_a_pending_record_is_rewritten_by_the_next_plan(corpus):
    index = MemoryIndex()
    corpus.ingest(index)
    doc_id = sorted(index.records)[0]
    index.begin_documents([(doc_id, "docs")])  # as a crash after marking it leaves it
    result = corpus.ingest(index)
    assert result["plan"]["summary"]["docs"]["changed"] == 1
    assert index.records[doc_id].state == RECORD_COMPLETE
