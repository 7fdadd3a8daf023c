"""Index: one batch of new and changed documents split, embedded (what is new), written, and
their stale chunks deleted."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ragloop.chunking import ChunkingSettings, chunker_for
from ragloop.config import load_config
from ragloop.embedding import make_embedder
from ragloop.errors import IngestError
from ragloop.hooks.endpoint import WEAVIATE_CONN_ID
from ragloop.index import (
    chunk_object,
    connect,
    delete_documents,
    delete_stale_chunks,
    ensure_collection,
    vectors_for_hashes,
    write_objects,
)
from ragloop.ingest.types import BatchResult, CredentialDocument, IndexCounts
from ragloop.progress import progress, progress_bar
from ragloop.staging import read_documents, read_json

if TYPE_CHECKING:
    from ragloop.grading.secrets import SecretScanner

GROUP_CHUNKS = 1000  # chunks split, looked up, embedded and written together inside a batch


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
    split: list[tuple[dict, Any, list[Any]]], scanner: SecretScanner, quarantine: bool
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
    """Split, embed what is new, write, then delete each document's stale chunks.

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
    config = load_config(config_path)
    batch = read_json(batch_url)
    items = batch["items"]
    embedder = embedder or make_embedder(config.embedder)
    if scanner is None:
        # Imported here: the grading package imports ingest (write-back goes through it).
        from ragloop.grading.secrets import SecretScanner

        scanner = SecretScanner(use_detect_secrets=False)
    chunkers: dict[str, Any] = {}
    by_location = {(item["shard"], item["line"]): item for item in items}
    documents = dict(read_documents(by_location))
    missing = set(by_location) - set(documents)
    if missing:
        raise IngestError(f"Staged documents missing from {batch_url}: {sorted(missing)[:5]}")
    stats: dict[str, IndexCounts] = {}
    # One source per group (sources keep their own chunking), about GROUP_CHUNKS chunks each.
    groups: list[list[dict]] = []
    for item in items:
        if (
            not groups
            or groups[-1][0]["source_id"] != item["source_id"]
            or sum(i["estimated_chunks"] for i in groups[-1]) >= GROUP_CHUNKS
        ):
            groups.append([])
        groups[-1].append(item)

    label = f"batch {batch['number'] + 1}/{batch['of']}"
    done_docs = 0
    with connect(weaviate_conn_id) as client, progress_bar(len(items), f"{label}: indexing", "doc") as bar:
        ensure_collection(client, config.collection, embedder, config.replication)
        for group in groups:
            group_started = time.monotonic()
            source_id = group[0]["source_id"]
            counts = stats.setdefault(source_id, empty_index_counts())
            if source_id not in chunkers:
                chunkers[source_id] = chunker_for(embedder, ChunkingSettings(**config.chunking_for(source_id)))
            split = [
                (item, document, chunkers[source_id].split(document))
                for item in group
                for document in [documents[(item["shard"], item["line"])]]
            ]
            found, quarantined = credential_documents(split, scanner, config.quarantines_credentials(source_id))
            counts.setdefault("credential_documents", []).extend(found)
            hashes = {chunk.chunk_hash for _, _, chunks in split for chunk in chunks}
            vectors = vectors_for_hashes(client, config.collection, hashes)
            new_texts: dict[str, str] = {}
            for _, _, chunks in split:
                for chunk in chunks:
                    if chunk.chunk_hash not in vectors:
                        new_texts.setdefault(chunk.chunk_hash, chunk.text)
            tokens_before = embedder.usage.tokens
            if new_texts:
                for chunk_hash, vector in zip(new_texts, embedder.embed(list(new_texts.values())), strict=False):
                    vectors[chunk_hash] = vector
            objects = [
                chunk_object(
                    document,
                    chunk,
                    item["doc_hash"],
                    len(chunks),
                    vectors[chunk.chunk_hash],
                    quarantined=str(chunk.chunk_id) in quarantined,
                )
                for item, document, chunks in split
                for chunk in chunks
            ]
            counts["chunks_written"] += write_objects(client, config.collection, objects)
            # Only now, with the new chunks in place, do the old ones go.
            rewritten = {item["doc_id"]: item["doc_hash"] for item, _, chunks in split if item["existed"] and chunks}
            emptied = [item["doc_id"] for item, _, chunks in split if item["existed"] and not chunks]
            counts["chunks_deleted"] += delete_stale_chunks(client, config.collection, rewritten)
            counts["chunks_deleted"] += delete_documents(client, config.collection, emptied)
            counts["documents_indexed"] += len(group)
            counts["chunks_embedded"] += len(new_texts)
            counts["chunks_reused"] += len(objects) - len(new_texts)
            counts["embedding_tokens"] += embedder.usage.tokens - tokens_before
            counts["seconds"] = round(counts["seconds"] + time.monotonic() - group_started, 2)
            done_docs += len(group)
            bar.update(len(group))
            progress(
                "%s: %d/%d documents, %d chunks written (%d embedded, %d reused) in %.1f s",
                label,
                done_docs,
                len(items),
                len(objects),
                len(new_texts),
                len(objects) - len(new_texts),
                time.monotonic() - group_started,
            )
    return {"batch": batch["number"], "documents": len(items), "sources": stats, "seconds": round(time.monotonic() - started, 2)}
