"""The pure core of the ingest plan: which listed documents are new, changed or unchanged, which
indexed ones to prune, and how the work splits into batches. No Weaviate, no staging: the
inputs are a source's staged listing and the index state already read, so every rule here is
unit-tested on plain data (tests/unit/test_plan_source.py)."""

from __future__ import annotations

import logging
from typing import Any, Protocol, TypedDict
from collections.abc import Mapping

from ragloop.documents import indexed_hash

log = logging.getLogger(__name__)

MAX_INDEX_BATCHES = 64  # mapped index tasks per run; beyond this, batches grow instead


class IndexedState(Protocol):
    """What the plan reads of an indexed document (`Index.read_records` gives these: `DocumentRecord`)."""

    @property
    def source_id(self) -> str: ...

    @property
    def complete_hash(self) -> str | None: ...


class WorkItem(TypedDict):
    """One document to (re)index, as a batch file lists it."""

    doc_id: str
    source_id: str
    shard: str
    line: int
    doc_hash: str
    existed: bool
    estimated_chunks: int


class SourcePlan(TypedDict):
    """A source's entry in plan.json (`entry`) and its documents to index (`work`)."""

    entry: dict[str, Any]
    work: list[WorkItem]


def estimated_chunks(characters: int, max_tokens: int, overlap_tokens: int) -> int:
    # English markdown runs about 4 characters per word piece; chunks average under half the
    # limit, since every section starts a chunk of its own (measured: 112 tokens at 256).
    return max(1, round(characters / 4 / max(16, 0.45 * max_tokens)))


def plan_source(
    listing: Mapping[str, Any],
    indexed: Mapping[str, IndexedState],
    full_refresh: bool,
    signature: str,
    *,
    source_id: str,
    max_tokens: int,
    overlap_tokens: int,
) -> SourcePlan:
    """Compare one source's staged listing with the index state of all planned sources.

    A listed document is new when the index lacks it, changed when its hash with this chunking
    `signature` differs from the indexed one (or a half-written document has none), or on a
    `full_refresh`; otherwise unchanged. What to prune depends on the listing: a complete one
    prunes the source's indexed documents it does not list (nor lists as failed); an incremental
    one the documents it saw withdrawn, and, when the source gave a complete ids-only listing,
    those missing from it too; an incomplete one (a failure that names no document,
    such as a folder that cannot be listed) nothing. A failed file keeps only its own document."""
    counts = {"new": 0, "changed": 0, "unchanged": 0}
    work: list[WorkItem] = []
    for doc_id, (content_hash, shard, line, characters) in listing["documents"].items():
        doc_hash = indexed_hash(content_hash, signature)
        prior = indexed.get(doc_id)
        if prior is None:
            status = "new"
        elif full_refresh or prior.complete_hash != doc_hash:
            status = "changed"
        else:
            status = "unchanged"
        counts[status] += 1
        if status != "unchanged":
            work.append(
                {
                    "doc_id": doc_id,
                    "source_id": source_id,
                    "shard": listing["shards"][shard],
                    "line": line,
                    "doc_hash": doc_hash,
                    "existed": prior is not None,
                    "estimated_chunks": estimated_chunks(characters, max_tokens, overlap_tokens),
                }
            )
    listed = set(listing["documents"]) | set(listing["failed_doc_ids"])
    gone = sorted(d for d, state in indexed.items() if state.source_id == source_id and d not in listed)
    entry: dict[str, Any] = {
        **counts,
        "seen": listing["seen"],
        "extract_seconds": listing["seconds"],
        "failed": len(listing["failures"]),
        "skipped": len(listing["skipped"]),
        "failures": listing["failures"],
        "skipped_items": listing["skipped"],
        "gone": len(gone),
        "mode": listing.get("mode", "full"),
        "watermarks": listing.get("watermarks") or {},
    }
    if listing["complete"]:
        entry["prune"] = gone
    elif listing.get("mode") == "incremental":
        # A window of changes says nothing about documents outside it: only those it saw and
        # left out (now filtered by the config, emptied) go. A full-listing run prunes the rest.
        withdrawn = sorted(d for d in listing.get("withdrawn", []) if d in indexed and d not in listed)
        id_listing = listing.get("id_listing")
        if id_listing and id_listing["complete"]:
            # The source listed every id it holds (Source.list_ids): what neither that listing nor
            # this run's documents hold is gone (`gone` already leaves out what the run read).
            held = set(id_listing["ids"])
            gone_by_ids = [d for d in gone if d not in held]
            entry["prune"] = sorted({*withdrawn, *gone_by_ids})
            entry["prune_note"] = (
                f"incremental run with an ids-only listing of {len(id_listing['ids'])} documents: "
                f"{len(gone_by_ids)} gone from the source and {len(withdrawn)} withdrawn removed"
            )
        else:
            entry["prune"] = withdrawn
            entry["prune_note"] = f"incremental run: {len(withdrawn)} withdrawn documents removed, nothing else pruned " + (
                f"(the ids-only listing is incomplete: {len(id_listing['gaps'])} items failed to list)"
                if id_listing
                else "(a full-listing run prunes documents gone from the source)"
            )
    else:
        entry["prune"] = None
        entry["prune_skipped"] = (
            f"listing incomplete ({len(listing.get('listing_gaps', listing['failures']))} folders or channels "
            f"failed to read): {len(gone)} documents missing from it are kept"
        )
        if gone:
            log.warning("%s: %s", source_id, entry["prune_skipped"])
    return {"entry": entry, "work": work}


def batch_work(work: list[WorkItem], batch_chunks: int, max_batches: int = MAX_INDEX_BATCHES) -> list[list[WorkItem]]:
    """Consecutive batches of about `batch_chunks` estimated chunks; larger when there would be
    more than `max_batches` (a mapped task per batch)."""
    total = sum(item["estimated_chunks"] for item in work)
    target = max(batch_chunks, -(-total // max_batches))
    batches: list[list[WorkItem]] = []
    size = target
    for item in work:
        if size >= target:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += item["estimated_chunks"]
    return batches
