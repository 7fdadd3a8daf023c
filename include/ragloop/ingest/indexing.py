"""Index: one batch of new and changed documents split, embedded (what is new), written, and
their stale chunks deleted, as three overlapping stages.

    split (read staged documents, split, scan for credentials, look up reusable vectors)
      -> queue -> embed (only new text) -> queue -> write (chunks, stale chunks, records)

Each stage is a thread working on groups of about GROUP_CHUNKS chunks; the queues between them
hold at most QUEUE_GROUPS groups, so memory is bounded by the queue sizes, not by the batch (the
staged documents are read as the split stage goes). ONNX Runtime and the gRPC client release the
GIL, so embedding one group overlaps writing the one before. The order guarantees are the Index's
(`ragloop.index.base`): the batch's records are marked pending first, a document's stale chunks
go only after its new ones are written, its record becomes complete last. The first error of any
stage stops the others and is raised here: the groups written before it are complete, the rest
keep their old chunks and a pending record (the next plan rewrites them), and nothing is pruned
(prune runs only after every batch succeeded).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragloop.chunking import ChunkingSettings, chunker_for
from ragloop.config import load_config
from ragloop.embedding import make_embedder
from ragloop.errors import IngestError, RagloopError
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import RECORD_COMPLETE, ChunkObject, DocumentRecord, chunk_object, open_weaviate_index
from ragloop.ingest.types import BatchResult, CredentialDocument, IndexCounts, IngestTarget
from ragloop.progress import progress, progress_bar
from ragloop.staging import read_documents, read_json

if TYPE_CHECKING:
    from ragloop.documents import Document
    from ragloop.grading.secrets import SecretScanner
    from ragloop.ingest.planning import WorkItem

GROUP_CHUNKS = 1000  # chunks split, looked up, embedded and written together inside a batch
QUEUE_GROUPS = 2  # groups waiting between two stages: with one in each stage, at most 7 in memory
RECENT_VECTORS = 2 * GROUP_CHUNKS  # vectors embedded in this batch kept for reuse by later groups


def add_index_counts(total: IndexCounts, more: IndexCounts) -> None:
    """Add one batch's counts of a source to `total` (seconds summed, to the hundredth)."""
    total["documents_indexed"] += more["documents_indexed"]
    total["chunks_embedded"] += more["chunks_embedded"]
    total["chunks_reused"] += more["chunks_reused"]
    total["chunks_written"] += more["chunks_written"]
    total["chunks_deleted"] += more["chunks_deleted"]
    total["embedding_tokens"] += more["embedding_tokens"]
    total["seconds"] = round(total["seconds"] + more["seconds"], 2)
    if more.get("credential_documents"):
        total.setdefault("credential_documents", []).extend(more["credential_documents"])


def empty_index_counts() -> IndexCounts:
    return {
        "documents_indexed": 0,
        "chunks_embedded": 0,
        "chunks_reused": 0,
        "chunks_written": 0,
        "chunks_deleted": 0,
        "embedding_tokens": 0,
        "seconds": 0.0,
        "credential_documents": [],
    }


def credential_documents(
    split: list[tuple[Any, Any, list[Any]]], scanner: SecretScanner, quarantine: bool
) -> tuple[list[CredentialDocument], set[str]]:
    """The documents of a group whose chunks hold a credential (one scanner call for all their
    chunks), and the chunk ids to keep out of public search when the source quarantines them."""
    chunks = [(document, chunk) for _, document, doc_chunks in split for chunk in doc_chunks]
    findings = scanner.scan([chunk.text for _, chunk in chunks])
    by_doc: dict[str, CredentialDocument] = {}
    flagged: set[str] = set()
    for (document, chunk), found in zip(chunks, findings, strict=False):
        if not found:
            continue
        entry = by_doc.setdefault(
            document.doc_id,
            {"doc_id": document.doc_id, "source_id": document.source_id, "rules": [], "chunks": 0, "quarantined": quarantine},
        )
        entry["chunks"] += 1
        entry["rules"] += [f.describe() for f in found if f.describe() not in entry["rules"]]
        if quarantine:
            flagged.add(str(chunk.chunk_id))
    return list(by_doc.values()), flagged


def index_batch(
    batch_url: str,
    config_path: str | None = None,
    embedder=None,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
    scanner: SecretScanner | None = None,
) -> BatchResult:
    """The index task: `index_documents` on the collection of the Weaviate of `weaviate_conn_id`."""
    config = load_config(config_path)
    embedder = embedder or make_embedder(config.embedder)
    with open_weaviate_index(config.collection, weaviate_conn_id) as index:
        return index_documents(IngestTarget(config, index, embedder, scanner), batch_url)


@dataclass
class _Group:
    """One group on its way through the stages."""

    source_id: str
    split: list[tuple[WorkItem, Document, list[Any]]]
    credentials: list[CredentialDocument]
    quarantined: set[str]
    vectors: dict[str, list[float]]
    new_texts: dict[str, str] = field(default_factory=dict)
    objects: list[ChunkObject] = field(default_factory=list)
    embedded: int = 0
    tokens: int = 0


@dataclass
class _Failed:
    """A stage's error, passed downstream so the write stage raises it."""

    error: BaseException


class _Stopped(RagloopError):
    """Another stage failed: this one stops (control flow between the stages, never raised to a caller)."""


_END = object()


class _Pipeline:
    """The queues and the stop signal shared by the stages."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.split_out: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_GROUPS)
        self.embed_out: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_GROUPS)

    def put(self, into: queue.Queue[Any], item: Any) -> None:
        while not self.stop.is_set():
            try:
                into.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self, source: queue.Queue[Any]) -> Any:
        while not self.stop.is_set():
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                continue
        raise _Stopped

    def stage(self, name: str, work: Callable[[], None], out: queue.Queue[Any]) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except _Stopped:
                return
            except BaseException as err:  # noqa: BLE001 - handed to the write stage, which raises it
                try:
                    self.put(out, _Failed(err))
                except _Stopped:
                    return

        thread = threading.Thread(target=run, name=f"ragloop-index-{name}", daemon=True)
        thread.start()
        return thread


def index_documents(target: IngestTarget, batch_url: str) -> BatchResult:
    """Split, embed what is new, write, then delete each document's stale chunks: one staged
    batch into `target.index`, pipelined (see the module's docstring for the stages and order).

    Chunks whose text hash already has a vector in the index (in any document) reuse it. A
    document's new chunks are written before its stale ones are deleted, so search never finds
    it missing; chunk ids are uuid5(doc_id, index), so a retry rewrites the same objects.

    Every new or changed chunk is scanned for credentials (the grading checks' scanner, without
    detect-secrets, whose Python line scan costs more than the embedding: gitleaks and our own
    patterns read the chunks; see docs/secrets-and-personal-data.md). Documents holding one are
    counted and named in the batch's counts; a source with `quarantine_credentials: true` stores
    those chunks `quarantined` and internal, out of public search until the document changes.
    """
    started = time.monotonic()
    config, index, embedder = target.config, target.index, target.embedder
    scanner = target.scanner
    if scanner is None:
        # Imported here: the grading package imports ingest (write-back goes through it).
        from ragloop.grading.secrets import SecretScanner

        scanner = SecretScanner(use_detect_secrets=False)
    batch = read_json(batch_url)
    items: list[WorkItem] = batch["items"]
    label = f"batch {batch['number'] + 1}/{batch['of']}"
    stats: dict[str, IndexCounts] = {}
    if not items:
        return {"batch": batch["number"], "documents": 0, "sources": stats, "seconds": 0.0}
    index.prepare(embedder, config.replication)
    # Before any chunk changes: a crash from here on leaves records the next plan does not trust.
    index.begin_documents([(item["doc_id"], item["source_id"]) for item in items])
    pipeline = _Pipeline()
    chunkers: dict[str, Any] = {}

    def split_stage() -> None:
        for group_items, documents in _groups_read(items, batch_url):
            source_id = group_items[0]["source_id"]
            if source_id not in chunkers:
                chunkers[source_id] = chunker_for(embedder, ChunkingSettings(**config.chunking_for(source_id)))
            split = [
                (item, document, chunkers[source_id].split(document))
                for item, document in zip(group_items, documents, strict=True)
            ]
            found, quarantined = credential_documents(split, scanner, config.quarantines_credentials(source_id))
            hashes = {chunk.chunk_hash for _, _, chunks in split for chunk in chunks}
            group = _Group(source_id, split, found, quarantined, index.vectors_for_hashes(hashes))
            for _, _, chunks in split:
                for chunk in chunks:
                    if chunk.chunk_hash not in group.vectors:
                        group.new_texts.setdefault(chunk.chunk_hash, chunk.text)
            pipeline.put(pipeline.split_out, group)
        pipeline.put(pipeline.split_out, _END)

    recent: OrderedDict[str, list[float]] = OrderedDict()

    def embed_stage() -> None:
        while True:
            group = pipeline.get(pipeline.split_out)
            if group is _END or isinstance(group, _Failed):
                pipeline.put(pipeline.embed_out, group)
                return
            for chunk_hash in [h for h in group.new_texts if h in recent]:
                group.vectors[chunk_hash] = recent[chunk_hash]
                del group.new_texts[chunk_hash]
            tokens_before = embedder.usage.tokens
            if group.new_texts:
                fresh = embedder.embed(list(group.new_texts.values()))
                for chunk_hash, vector in zip(group.new_texts, fresh, strict=True):
                    group.vectors[chunk_hash] = vector
                    recent[chunk_hash] = vector
                while len(recent) > RECENT_VECTORS:
                    recent.popitem(last=False)
            group.embedded = len(group.new_texts)
            group.tokens = embedder.usage.tokens - tokens_before
            group.objects = [
                chunk_object(
                    document,
                    chunk,
                    item["doc_hash"],
                    len(chunks),
                    group.vectors[chunk.chunk_hash],
                    quarantined=str(chunk.chunk_id) in group.quarantined,
                )
                for item, document, chunks in group.split
                for chunk in chunks
            ]
            group.vectors = {}  # the objects hold them now
            pipeline.put(pipeline.embed_out, group)

    threads = [
        pipeline.stage("split", split_stage, pipeline.split_out),
        pipeline.stage("embed", embed_stage, pipeline.embed_out),
    ]
    done_docs = 0
    try:
        with progress_bar(len(items), f"{label}: indexing", "doc") as bar:
            group_started = time.monotonic()
            while True:
                group = pipeline.get(pipeline.embed_out)
                if group is _END:
                    break
                if isinstance(group, _Failed):
                    raise group.error
                counts = stats.setdefault(group.source_id, empty_index_counts())
                counts.setdefault("credential_documents", []).extend(group.credentials)
                counts["chunks_written"] += index.write_chunks(group.objects)
                # Only now, with the new chunks in place, do the old ones go (all of them for a
                # document that has no chunks any more).
                counts["chunks_deleted"] += index.delete_stale_chunks(
                    {item["doc_id"]: item["doc_hash"] for item, _, _ in group.split if item["existed"]}
                )
                index.finish_documents(
                    [
                        DocumentRecord(item["doc_id"], item["source_id"], item["doc_hash"], len(chunks), RECORD_COMPLETE)
                        for item, _, chunks in group.split
                    ]
                )
                counts["documents_indexed"] += len(group.split)
                counts["chunks_embedded"] += group.embedded
                counts["chunks_reused"] += len(group.objects) - group.embedded
                counts["embedding_tokens"] += group.tokens
                now = time.monotonic()
                counts["seconds"] = round(counts["seconds"] + now - group_started, 2)
                done_docs += len(group.split)
                bar.update(len(group.split))
                progress(
                    "%s: %d/%d documents, %d chunks written (%d embedded, %d reused) in %.1f s",
                    label,
                    done_docs,
                    len(items),
                    len(group.objects),
                    group.embedded,
                    len(group.objects) - group.embedded,
                    now - group_started,
                )
                group_started = now
    finally:
        pipeline.stop.set()
        for thread in threads:
            thread.join()
    return {"batch": batch["number"], "documents": len(items), "sources": stats, "seconds": round(time.monotonic() - started, 2)}


def _groups_read(items: list[WorkItem], batch_url: str) -> Iterator[tuple[list[WorkItem], list[Document]]]:
    """The batch's documents in groups of one source and about GROUP_CHUNKS estimated chunks, read
    from staging as the groups are needed (one shard at a time)."""
    by_location = {(item["shard"], item["line"]): item for item in items}
    group_items: list[WorkItem] = []
    documents: list[Document] = []
    size = 0
    found: set[tuple[str, int]] = set()
    for location, document in read_documents(by_location):
        item = by_location[location]
        found.add(location)
        if group_items and (group_items[0]["source_id"] != item["source_id"] or size >= GROUP_CHUNKS):
            yield group_items, documents
            group_items, documents, size = [], [], 0
        group_items.append(item)
        documents.append(document)
        size += item["estimated_chunks"]
    if group_items:
        yield group_items, documents
    missing = sorted(set(by_location) - found)
    if missing:
        raise IngestError(f"Staged documents missing from {batch_url}: {missing[:5]}")
