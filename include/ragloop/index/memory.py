"""The in-memory reference Index: the semantics of the Weaviate one, in dicts, for fast tests.

It keeps what `WeaviateIndex` keeps (chunks by uuid with their vectors, one record per document,
watermarks) and applies the same rules: a collection records its embedder and refuses another,
search filters by source, kind and audience before ranking (hybrid: the vector's cosine and a
keyword score over the chunk text, each scaled to 0-1 and fused with HYBRID_ALPHA), written-back
answers take at most their share of the hits, a write of an object some test marks refused fails
naming it. It is not a store for production: nothing persists.
"""

from __future__ import annotations

import math
import re
import threading
from typing import TYPE_CHECKING

from ragloop.index.base import RECORD_PENDING, ChunkObject, DocumentRecord
from ragloop.index.connection import EmbedderMismatch
from ragloop.index.search import DEFAULT_WRITTEN_BACK_SHARE, HYBRID_ALPHA, written_back_cap

if TYPE_CHECKING:
    from ragloop.config import Replication
    from ragloop.embedding import Embedder
    from ragloop.passages import Passage

_WORD = re.compile(r"\w+")


class MemoryIndex:
    """A chunk collection held in this process (thread-safe: the pipelined index task writes
    from its own thread)."""

    def __init__(self, name: str = "MemoryChunks"):
        self._name = name
        self.chunks: dict[str, ChunkObject] = {}
        self.records: dict[str, DocumentRecord] = {}
        self.watermarks: dict[tuple[str, str], dict] = {}
        self.embedder_name: str | None = None
        self.dimension: int | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def prepare(self, embedder: Embedder, replication: Replication | None = None) -> None:
        if self.embedder_name is None:
            self.embedder_name, self.dimension = embedder.name, embedder.dimension
        elif (self.embedder_name, self.dimension) != (embedder.name, embedder.dimension):
            raise EmbedderMismatch(
                f"Collection {self._name!r} was indexed with embedder {self.embedder_name!r} ({self.dimension} "
                f"dimensions), but the configuration asks for {embedder.name!r} ({embedder.dimension} dimensions)"
            )

    def read_records(self, source_ids: set[str] | None = None) -> dict[str, DocumentRecord]:
        with self._lock:
            return {d: r for d, r in self.records.items() if source_ids is None or r.source_id in source_ids}

    def vectors_for_hashes(self, hashes: set[str]) -> dict[str, list[float]]:
        with self._lock:
            found: dict[str, list[float]] = {}
            for obj in self.chunks.values():
                chunk_hash = obj.properties["chunk_hash"]
                if chunk_hash in hashes:
                    found.setdefault(chunk_hash, list(obj.vector))
            return found

    def begin_documents(self, documents: list[tuple[str, str]]) -> None:
        with self._lock:
            for doc_id, source_id in documents:
                self.records[doc_id] = DocumentRecord(doc_id, source_id, "", 0, RECORD_PENDING)

    def write_chunks(self, objects: list[ChunkObject]) -> int:
        with self._lock:
            for obj in objects:
                self.chunks[obj.uuid] = ChunkObject(obj.uuid, dict(obj.properties), list(obj.vector))
        return len(objects)

    def delete_stale_chunks(self, current_hashes: dict[str, str]) -> int:
        with self._lock:
            stale = [
                u
                for u, o in self.chunks.items()
                if o.properties["doc_id"] in current_hashes and o.properties["doc_hash"] != current_hashes[o.properties["doc_id"]]
            ]
            for u in stale:
                del self.chunks[u]
        return len(stale)

    def finish_documents(self, records: list[DocumentRecord]) -> None:
        with self._lock:
            for record in records:
                self.records[record.doc_id] = record

    def delete_documents(self, doc_ids: list[str]) -> int:
        wanted = set(doc_ids)
        with self._lock:
            for doc_id in wanted & set(self.records):
                self.records[doc_id] = DocumentRecord(doc_id, self.records[doc_id].source_id, "", 0, RECORD_PENDING)
            gone = [u for u, o in self.chunks.items() if o.properties["doc_id"] in wanted]
            for u in gone:
                del self.chunks[u]
            for doc_id in wanted:
                self.records.pop(doc_id, None)
        return len(gone)

    def count_chunks(self, doc_id: str | None = None) -> int:
        with self._lock:
            return sum(1 for o in self.chunks.values() if doc_id is None or o.properties["doc_id"] == doc_id)

    def read_watermarks(self, source_id: str) -> dict[str, dict]:
        with self._lock:
            if not any(o.properties["source_id"] == source_id for o in self.chunks.values()):
                return {}
            return {item: dict(state) for (sid, item), state in self.watermarks.items() if sid == source_id}

    def write_watermarks(self, source_id: str, states: dict[str, dict]) -> int:
        with self._lock:
            for item, state in states.items():
                self.watermarks[(source_id, item)] = dict(state)
        return len(states)

    def search(
        self,
        embedder: Embedder,
        query: str,
        limit: int = 5,
        source_ids: list[str] | None = None,
        kinds: list[str] | None = None,
        audience: str = "internal",
        written_back_share: float = DEFAULT_WRITTEN_BACK_SHARE,
    ) -> list[Passage]:
        from ragloop.documents import KINDS, Kind, visible_to
        from ragloop.passages import Passage

        self.prepare(embedder)  # refuses a query vector from another embedder, as Weaviate's does
        visible = set(visible_to(audience))
        with self._lock:
            candidates = [
                o
                for o in self.chunks.values()
                if (not source_ids or o.properties["source_id"] in source_ids)
                and (not kinds or o.properties["kind"] in kinds)
                and o.properties.get("visibility", "public") in visible
            ]
        if not candidates:
            return []
        query_vector = embedder.embed([query])[0]
        words = set(_WORD.findall(query.lower()))
        vector_scores = [_cosine(query_vector, o.vector) for o in candidates]
        keyword_scores = [float(len(words & set(_WORD.findall(str(o.properties["text"]).lower())))) for o in candidates]
        fused = [
            HYBRID_ALPHA * v + (1 - HYBRID_ALPHA) * k
            for v, k in zip(_scaled(vector_scores), _scaled(keyword_scores), strict=True)
        ]
        ranked = sorted(zip(fused, candidates, strict=True), key=lambda pair: (-pair[0], pair[1].uuid))[:limit]
        hits = [
            Passage(
                doc_id=o.properties["doc_id"],
                source_id=o.properties.get("source_id") or "",
                kind=o.properties.get("kind") or "",
                title=o.properties.get("title") or "",
                url=o.properties.get("url") or "",
                heading_path=o.properties.get("heading_path") or "",
                text=o.properties.get("text") or "",
                score=round(score, 4),
                chunk_id=o.uuid,
                visibility=o.properties.get("visibility") or "",
            )
            for score, o in ranked
        ]
        cap = limit if kinds else written_back_cap(limit, written_back_share)
        written_back = [h for h in hits if h.kind == Kind.QA]
        if len(written_back) > cap:
            others = [k for k in KINDS if k != Kind.QA]
            rest = self.search(embedder, query, limit, source_ids, others, audience, written_back_share=1.0)
            hits = sorted(written_back[:cap] + rest, key=lambda h: -h.score)[:limit]
        return hits


def _cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=False)) / norm if norm else 0.0


def _scaled(scores: list[float]) -> list[float]:
    low, high = min(scores), max(scores)
    return [(s - low) / (high - low) if high > low else (1.0 if high > 0 else 0.0) for s in scores]
