"""The Index interface: what planning, indexing and prune need of the store that holds the chunks.

`ragloop.index.weaviate_index.WeaviateIndex` is the real implementation and
`ragloop.index.memory.MemoryIndex` the in-memory reference with the same semantics (audience and
source filters, write-new-before-delete-old, reuse of a vector by chunk hash, one record per
document). Planning, indexing and prune take an Index as an argument, as LangChain's indexing API
takes its record manager and vector store, so their logic is unit-tested on the reference and the
contract tests (tests/unit/test_index_contract.py) hold both implementations to one behaviour.

A document's record (`DocumentRecord`) is what a plan reads: one object per document, written
after its chunks. Every change of a document follows one order, so a crash at any point leaves a
state the next plan rewrites instead of trusting:

1. `begin_documents`: the record becomes `pending` (the document may now be half-written);
2. `write_chunks`: the new chunks (ids uuid5(doc_id, index): a retry overwrites the same ones);
3. `delete_stale_chunks`: the document's chunks of another hash (only now, with the new ones in);
4. `finish_documents`: the record becomes complete with the new hash and chunk count.

Deleting a document marks its record pending, deletes its chunks, then deletes the record: every
chunk in the index belongs to a document that has a record, so a plan that reads only records
still sees every document it may have to rewrite or prune.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ragloop.config import Replication
    from ragloop.embedding import Embedder
    from ragloop.passages import Passage


RECORD_COMPLETE = "complete"
RECORD_PENDING = "pending"


@dataclass(frozen=True)
class DocumentRecord:
    """What the index holds for one document: written after its chunks (see the module's order)."""

    doc_id: str
    source_id: str
    doc_hash: str  # the hash its chunks were written with ("" while pending)
    chunk_count: int
    state: str = RECORD_COMPLETE  # RECORD_COMPLETE, or RECORD_PENDING while being changed

    @property
    def complete_hash(self) -> str | None:
        """The document's hash when its last write finished; None while a change is under way
        (or was interrupted), which makes the next plan rewrite it."""
        return self.doc_hash if self.state == RECORD_COMPLETE else None


@dataclass(frozen=True)
class ChunkObject:
    """A chunk as stored: its id, its properties and its vector."""

    uuid: str
    properties: dict[str, Any]
    vector: list[float]


@runtime_checkable
class Index(Protocol):
    """One collection of chunks with its document records and the API sources' watermarks."""

    @property
    def name(self) -> str:
        """The collection's name (what sources.yaml calls `collection`)."""
        ...

    def prepare(self, embedder: Embedder, replication: Replication | None = None) -> None:
        """Create the collection for `embedder`, or check that it was built with it (raises
        EmbedderMismatch), migrating an older one in place."""
        ...

    def read_records(self, source_ids: set[str] | None = None) -> dict[str, DocumentRecord]:
        """doc_id -> record, for the given sources (all when None): one object per document."""
        ...

    def vectors_for_hashes(self, hashes: set[str]) -> dict[str, list[float]]:
        """A vector for each chunk hash already indexed (in any document)."""
        ...

    def begin_documents(self, documents: list[tuple[str, str]]) -> None:
        """Mark these (doc_id, source_id) pending before any of their chunks change."""
        ...

    def write_chunks(self, objects: list[ChunkObject]) -> int:
        """Insert or replace chunks by uuid; raises IndexWriteError naming every refused one."""
        ...

    def delete_stale_chunks(self, current_hashes: dict[str, str]) -> int:
        """Delete each document's chunks that carry another hash than the one given."""
        ...

    def finish_documents(self, records: list[DocumentRecord]) -> None:
        """Store complete records, after the documents' chunks are written and stale ones gone."""
        ...

    def delete_documents(self, doc_ids: list[str]) -> int:
        """Delete documents (their chunks, then their records); returns the chunks deleted."""
        ...

    def count_chunks(self, doc_id: str | None = None) -> int: ...

    def read_watermarks(self, source_id: str) -> dict[str, dict]:
        """item -> the stored watermark state of an API source ({} when none of its chunks is indexed)."""
        ...

    def write_watermarks(self, source_id: str, states: dict[str, dict]) -> int: ...

    def search(
        self,
        embedder: Embedder,
        query: str,
        limit: int = 5,
        source_ids: list[str] | None = None,
        kinds: list[str] | None = None,
        audience: str = "internal",
    ) -> list[Passage]:
        """The best `limit` chunks for `query` that `audience` may see."""
        ...
