"""Hybrid search (vector + BM25) with filters by source, kind and audience."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ragloop.index.connection import WeaviateIndexError, index_error
from ragloop.index.replication import use
from ragloop.index.schema import ensure_collection
from ragloop.passages import Passage

if TYPE_CHECKING:
    from weaviate import WeaviateClient

    from ragloop.embedding import Embedder
    from ragloop.feedback.boosts import ChunkAdjustment

# What search asks about the chunks it found: chunk id -> how to adjust it (the run store's
# `chunk_adjustments` bound to a viewer's audience and the boost policy). Chunks not named are
# left as they are.
Adjuster = Callable[[list[str]], "Mapping[str, ChunkAdjustment]"]


log = logging.getLogger(__name__)


# Hybrid search weights. Out of sample (bench/results/retrieval.json, docs/evidence.md): 921 public
# Stack Overflow `airflow` threads, a thread's title asked against every thread's answers, split by
# thread id. On the tune split MRR@5 is flat from alpha 0.4 to 0.7 (0.415-0.419; best 0.4); on the
# report split 0.4 gives 0.415 and 0.7 gives 0.423 (vector alone 0.365, BM25 alone 0.355), so 0.7
# stays. BM25 runs over the chunk text alone (which starts with the heading path, title first):
# over title^2 and heading_path^2 too, question-shaped queries matched FAQ headings twice over
# (bench/questions.yaml, the regression set written here: MRR@5 0.833 then, 0.907 now).
HYBRID_ALPHA = 0.7


KEYWORD_PROPERTIES = ["text"]

# Written-back answers (kind qa) never crowd out the docs: they take at most this share of the
# top k (rounded up: one of five). Without a bound, about 15 written-back answers on one topic
# filled every top-5 hit, and the docs they quote were no longer shown. sources.yaml's
# `written_back_share` sets it (Config.written_back_share; 1 lifts the bound).
DEFAULT_WRITTEN_BACK_SHARE = 0.2

# With feedback adjustments, search ranks this many times `limit` candidates: a boost (at most
# x2) can lift a chunk from below the cut, and hidden chunks leave room that the next ones fill.
ADJUSTED_POOL = 3


# A search checks its collection (it exists, it was built by this embedder, its schema is
# current) once per client and collection within this many seconds. A kept client
# (ragloop.airflow.hooks.weaviate) serves many queries, and a check is up to four HTTP requests: about a
# fifth of an offline ask, and four round trips behind a remote Weaviate (docs/performance-
# embedder.md). The bound is how long a collection dropped and rebuilt with another embedder by
# another process could go unnoticed by this one; this process's own creates and drops are seen
# at once (schema.COLLECTION_CHANGES), and a dropped collection fails the query itself.
CHECK_TTL_SECONDS = 30.0
_checked: weakref.WeakKeyDictionary[WeaviateClient, dict[tuple[str, str], tuple[float, int]]] = weakref.WeakKeyDictionary()
_checked_lock = threading.Lock()


def check_collection(client: WeaviateClient, name: str, embedder: Embedder) -> None:
    """Refuse a search of a collection that does not exist or was built by another embedder
    (upgrading an old one's schema on the way), unless this client checked it lately."""
    from ragloop.index.schema import COLLECTION_CHANGES

    key = (name, embedder.name)
    now = time.monotonic()
    with _checked_lock:
        seen = _checked.get(client, {}).get(key)
    if seen is not None and now - seen[0] < CHECK_TTL_SECONDS and seen[1] == COLLECTION_CHANGES.get(name, 0):
        return
    if not client.collections.exists(name):
        raise WeaviateIndexError(f"Collection {name!r} does not exist yet: run `ragloop ingest` first")
    ensure_collection(client, name, embedder)  # refuses a query vector from another embedder
    with _checked_lock:
        _checked.setdefault(client, {})[key] = (now, COLLECTION_CHANGES.get(name, 0))


def written_back_cap(limit: int, share: float) -> int:
    """How many of `limit` hits written-back answers may take."""
    return limit if share >= 1 else min(limit, math.ceil(round(limit * max(share, 0.0), 6)))


def search(
    client: WeaviateClient,
    name: str,
    embedder: Embedder,
    query: str,
    limit: int = 5,
    source_ids: list[str] | None = None,
    kinds: list[str] | None = None,
    alpha: float | None = None,
    audience: str = "internal",
    written_back_share: float = DEFAULT_WRITTEN_BACK_SHARE,
    adjust: Adjuster | None = None,
) -> list[Passage]:
    """Hybrid search: the query's vector and BM25 over the chunk text, fused by relative score
    (alpha 1 is the vector alone, 0 keywords alone; None: HYBRID_ALPHA). `audience` "public"
    retrieves public chunks only; the filter is part of the query, so nothing above the audience
    is ever returned, not even to be dropped here. Callers that serve people (`ask`, the CLI)
    pass the caller's audience. Unless `kinds` asks for kinds by name, written-back answers take
    at most `written_back_share` of the hits (see written_back_cap): when more come back, the
    same search without them fills the rest (each query's fused scores are 0-1 relative scores,
    so the two lists are merged by score). `adjust` (feedback from votes and operators): hidden
    chunks are left out and the others' fused scores multiplied by their bounded boost, over
    ADJUSTED_POOL times `limit` candidates, before the cut."""
    from weaviate.classes.query import Filter, HybridFusion, MetadataQuery

    check_collection(client, name, embedder)
    filters = []
    if source_ids:
        filters.append(Filter.by_property("source_id").contains_any(list(source_ids)))
    if kinds:
        filters.append(Filter.by_property("kind").contains_any(list(kinds)))
    from ragloop.documents import KINDS, VISIBILITIES, Kind, visible_to

    if set(visible_to(audience)) != set(VISIBILITIES):
        filters.append(Filter.by_property("visibility").contains_any(visible_to(audience)))
    where = Filter.all_of(filters) if len(filters) > 1 else (filters[0] if filters else None)
    vector = embedder.embed([query])[0]
    try:
        result = use(client, name).query.hybrid(
            query=query,
            vector=vector,
            alpha=HYBRID_ALPHA if alpha is None else alpha,
            query_properties=KEYWORD_PROPERTIES,
            fusion_type=HybridFusion.RELATIVE_SCORE,
            limit=limit * ADJUSTED_POOL if adjust else limit,
            filters=where,
            return_metadata=MetadataQuery(score=True),
            return_properties=["doc_id", "source_id", "kind", "title", "url", "heading_path", "text", "visibility"],
        )
    except Exception as err:
        raise index_error(f"searching {name}", err) from err
    hits = [
        Passage(
            doc_id=o.properties["doc_id"],
            source_id=o.properties.get("source_id") or "",
            kind=o.properties.get("kind") or "",
            title=o.properties.get("title") or "",
            url=o.properties.get("url") or "",
            heading_path=o.properties.get("heading_path") or "",
            text=o.properties.get("text") or "",
            score=round(float(o.metadata.score or 0.0), 4),
            chunk_id=str(o.uuid),
            visibility=o.properties.get("visibility") or "",
        )
        for o in result.objects
    ]
    if adjust is not None:
        hits = apply_adjustments(hits, adjust)
    hits = hits[:limit]
    cap = limit if kinds else written_back_cap(limit, written_back_share)
    written_back = [h for h in hits if h.kind == Kind.QA]
    if len(written_back) > cap:
        others = [k for k in KINDS if k != Kind.QA]
        rest = search(
            client, name, embedder, query, limit, source_ids, others, alpha, audience, written_back_share=1.0, adjust=adjust
        )
        hits = sorted(written_back[:cap] + rest, key=lambda h: -h.score)[:limit]
    return hits


def apply_adjustments(hits: list[Passage], adjust: Adjuster) -> list[Passage]:
    """Hidden chunks left out; every other score multiplied by its chunk's boost; best first."""
    adjustments = adjust([h.chunk_id for h in hits])
    kept = []
    for hit in hits:
        found = adjustments.get(hit.chunk_id)
        if found is None:
            kept.append(hit)
        elif not found.hidden:
            kept.append(dataclasses.replace(hit, score=round(hit.score * found.multiplier, 4)))
    return sorted(kept, key=lambda h: -h.score)
