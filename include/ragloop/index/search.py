"""Hybrid search (vector + BM25) with filters by source, kind and audience."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ragloop.index.connection import WeaviateIndexError, index_error
from ragloop.index.replication import use
from ragloop.index.schema import ensure_collection

if TYPE_CHECKING:
    from weaviate import WeaviateClient

    from ragloop.embedding import Embedder


from ragloop.passages import Passage

log = logging.getLogger(__name__)


# Hybrid search weights, measured by bench/retrieval.py (41 labelled questions over the samples,
# all-MiniLM-L6-v2): alpha 0.5 with BM25 over title^2, heading_path^2 and text gave MRR@5 0.833,
# below vector alone (0.874), because question-shaped queries matched the FAQ's question
# headings twice over. BM25 over the chunk text alone (which already starts with the heading
# path, title first) at alpha 0.6-0.8 gave 0.904-0.909 (hit@1 0.878); 0.7 sits mid-plateau.
HYBRID_ALPHA = 0.7


KEYWORD_PROPERTIES = ["text"]


def search(
    client: "WeaviateClient",
    name: str,
    embedder: "Embedder",
    query: str,
    limit: int = 5,
    source_ids: list[str] | None = None,
    kinds: list[str] | None = None,
    alpha: float | None = None,
    audience: str = "internal",
) -> list[Passage]:
    """Hybrid search: the query's vector and BM25 over the chunk text, fused by relative score
    (alpha 1 is the vector alone, 0 keywords alone; None: HYBRID_ALPHA). `audience` "public"
    retrieves public chunks only; the filter is part of the query, so nothing above the audience
    is ever returned, not even to be dropped here. Callers that serve people (`ask`, the CLI)
    pass the caller's audience."""
    from weaviate.classes.query import Filter, HybridFusion, MetadataQuery

    if not client.collections.exists(name):
        raise WeaviateIndexError(f"Collection {name!r} does not exist yet: run `ragloop ingest` first")
    ensure_collection(client, name, embedder)  # refuses a query vector from another embedder
    filters = []
    if source_ids:
        filters.append(Filter.by_property("source_id").contains_any(list(source_ids)))
    if kinds:
        filters.append(Filter.by_property("kind").contains_any(list(kinds)))
    from ragloop.documents import VISIBILITIES, visible_to

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
            limit=limit,
            filters=where,
            return_metadata=MetadataQuery(score=True),
            return_properties=["doc_id", "source_id", "kind", "title", "url", "heading_path", "text", "visibility"],
        )
    except Exception as err:
        raise index_error(f"searching {name}", err) from err
    return [
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
