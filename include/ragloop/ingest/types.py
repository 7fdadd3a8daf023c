"""What the ingest stages hand each other and return to the CLI. TypedDicts, not classes: they
cross task boundaries as XCom, which stores JSON. `IngestTarget` is the exception: what a stage
works on in-process (the loaded configuration, the Index, the embedder), never sent as XCom."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NotRequired, TypedDict

if TYPE_CHECKING:
    from ragloop.config import Config
    from ragloop.embedding import Embedder
    from ragloop.grading.secrets import SecretScanner
    from ragloop.index.base import Index


@dataclass(frozen=True)
class IngestTarget:
    """What planning, indexing and prune work on, given to them whole: the loaded configuration,
    the Index (Weaviate, or the in-memory reference in tests) and the embedder. `scanner`: the
    credential scanner of new chunks (None: the grading checks' own, made on first use)."""

    config: Config
    index: Index
    embedder: Embedder
    scanner: SecretScanner | None = None


class ExtractResult(TypedDict):
    """One source read and staged (the extract task's XCom)."""

    source_id: str
    listing: str  # URL of the staged listing the plan compares with the index
    seen: int
    documents: int
    failed: int
    skipped: int
    complete: bool  # the listing holds all the source has, so what it lacks may be pruned
    seconds: float


class IdListing(TypedDict):
    """A source's ids-only listing (`Source.list_ids`), staged in its listing for the plan."""

    ids: list[str]  # every doc_id the source holds now (and those of items that failed to list)
    complete: bool  # no failure that names no document: what it lacks may be pruned
    gaps: list[dict[str, str]]  # the failures that made it incomplete ({"item", "reason"})


class PlanResult(TypedDict):
    """The plan task's result; XCom carries only `batches`, the rest is in the staged plan."""

    batches: list[str]  # URLs of the staged batches the index task is mapped over
    plan: str  # URL of the staged plan, read back by prune and report
    summary: dict[str, dict]  # per source: the counts of the plan (new, changed, unchanged...)
    indexed_documents: int
    seconds: float


class CredentialDocument(TypedDict):
    """A document whose chunks hold a credential: named, never quoted (rule ids only)."""

    doc_id: str
    source_id: str
    rules: list[str]  # e.g. ["github-pat (gitleaks)"]
    chunks: int  # how many of its chunks hold one
    quarantined: bool  # kept out of public search (the source's quarantine_credentials)


class IndexCounts(TypedDict):
    """What indexing did for one source, in one batch or summed over a run."""

    documents_indexed: int
    chunks_embedded: int
    chunks_reused: int
    chunks_written: int
    chunks_deleted: int
    embedding_tokens: int
    seconds: float
    credential_documents: NotRequired[list[CredentialDocument]]  # new or changed documents holding a credential


class BatchResult(TypedDict):
    """One index task's result."""

    batch: int
    documents: int
    sources: dict[str, IndexCounts]
    seconds: float


class SourcePruned(TypedDict):
    documents_deleted: int
    chunks_deleted: int
    prune: str  # "done", or why nothing was pruned
    doc_ids: NotRequired[list[str]]  # the documents pruned (absent when nothing was)
    watermarks: NotRequired[dict[str, str | None]]  # item -> the watermark stored by this run


class PruneResult(TypedDict):
    sources: dict[str, SourcePruned]
    seconds: float


class DocumentCounts(TypedDict):
    seen: int
    new: int
    changed: int
    unchanged: int
    deleted: int
    failed: int
    skipped: int


class ChunkCounts(TypedDict):
    embedded: int
    reused: int
    written: int
    deleted: int


class CredentialReport(TypedDict):
    """Documents of a source found holding a credential in this run (new or changed ones)."""

    documents: int
    quarantined: int
    named: list[CredentialDocument]  # the first FAILURES_SHOWN


class SourceReport(TypedDict):
    documents: DocumentCounts
    chunks: ChunkCounts
    embedding_tokens: int
    seconds: dict[str, float | None]  # extract, index, prune
    prune: str
    mode: str  # "full" or "incremental"
    watermarks: dict[str, str | None]
    failures: list[dict]  # {"item", "reason"}, the first FAILURES_SHOWN
    credentials: NotRequired[CredentialReport]
    skipped_items: list[dict]
    error: NotRequired[str]  # the source was not ingested, and why


class IngestReport(TypedDict):
    """The report of one ingest run (or several merged, for `ragloop ingest`)."""

    dag_id: str
    dag_run_id: str
    weaviate: str
    staging: str
    collection: str
    collection_chunks: int
    sources: dict[str, SourceReport]
    totals: ChunkCounts
    embedding_tokens: int
    seconds: dict[str, float | None]  # plan, index, prune
    errors: list[str]


class ListingIngest(TypedDict):
    """What `ragloop.ingest.listing.ingest_listings` did with the staged listings of one run:
    the plan, each index batch's result, and the prune (the documents it removed included)."""

    plan: PlanResult
    batches: list[BatchResult]
    prune: PruneResult
