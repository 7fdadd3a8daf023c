"""Reading what is indexed: one streaming pass of every document's hash and chunk count for a
plan, vectors by chunk hash for reuse, chunks by id for grounding."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragloop.index.connection import index_error
from ragloop.index.replication import use

if TYPE_CHECKING:
    from weaviate import WeaviateClient


log = logging.getLogger(__name__)


# Weaviate refuses offset pages past QUERY_MAXIMUM_RESULTS (10,000 by default), and unordered
# offset pages can skip objects; the cursor iterator reads every object exactly once at any size.
ITERATOR_PAGE = 5000  # objects per cursor page: fewer round trips; 5,000 plan properties are small


FILTER_GROUP = 100  # values per contains_any / any_of filter: small requests, bounded memory


@dataclass
class IndexedDocument:
    """What the index holds for one document, summarized from its chunks."""

    source_id: str
    doc_hashes: set[str]
    chunk_indexes: set[int]
    chunk_counts: set[int]

    @property
    def complete_hash(self) -> str | None:
        """The document's hash if its chunks form one complete write (all share one hash and
        exactly indexes 0..n-1 are present); None for a half-written or stale-tailed document,
        which the next run rewrites."""
        if len(self.doc_hashes) != 1 or len(self.chunk_counts) != 1:
            return None
        (count,) = self.chunk_counts
        if self.chunk_indexes != set(range(count)):
            return None
        (doc_hash,) = self.doc_hashes
        return doc_hash

    @property
    def chunks(self) -> int:
        return len(self.chunk_indexes)


# What a plan reads of each chunk.
PLAN_PROPERTIES = ("doc_id", "source_id", "doc_hash", "chunk_index", "chunk_count")


def read_indexed_documents(
    client: WeaviateClient, name: str, source_ids: set[str] | None = None, progress=None
) -> dict[str, IndexedDocument]:
    """One streaming read of the collection: doc_id -> IndexedDocument, for the given sources.

    The cursor iterator cannot filter, so it reads the small plan properties of every object and
    keeps those of the requested sources.
    """
    if not client.collections.exists(name):
        return {}
    collection = use(client, name)
    documents: dict[str, IndexedDocument] = {}
    seen = 0
    try:
        # Only properties the collection has: one indexed by an old release may lack some (Weaviate
        # refuses the whole read then); a chunk without a hash or index reads as incomplete.
        existing = {prop.name for prop in collection.config.get().properties}
        wanted = [p for p in PLAN_PROPERTIES if p in existing]
        for obj in collection.iterator(return_properties=wanted, cache_size=ITERATOR_PAGE):
            seen += 1
            if progress and seen % 50_000 == 0:
                progress(f"read {seen} indexed chunks of {name}")
            props = obj.properties
            source_id = props.get("source_id")
            if source_ids is not None and source_id not in source_ids:
                continue
            doc = documents.get(props["doc_id"])
            if doc is None:
                doc = documents[props["doc_id"]] = IndexedDocument(source_id, set(), set(), set())
            doc.doc_hashes.add(props.get("doc_hash") or "")
            doc.chunk_indexes.add(int(props.get("chunk_index") or 0))
            doc.chunk_counts.add(int(props.get("chunk_count") or 0))
    except Exception as err:
        raise index_error(f"reading collection {name}", err) from err
    return documents


def vectors_for_hashes(client: WeaviateClient, name: str, hashes: set[str]) -> dict[str, list[float]]:
    """A vector for each chunk hash the collection already holds (any document): equal text has
    an equal vector, so these chunks need no embedding."""
    from weaviate.classes.query import Filter

    collection = use(client, name)
    found: dict[str, list[float]] = {}
    pending = sorted(hashes)
    try:
        for start in range(0, len(pending), FILTER_GROUP):
            group = pending[start : start + FILTER_GROUP]
            # A hash can occur in many documents; a limit well above the group size finds each
            # one at least once unless a text repeats hundreds of times, and those are fetched
            # one by one below.
            limit = len(group) * 20
            result = collection.query.fetch_objects(
                filters=Filter.by_property("chunk_hash").contains_any(group),
                return_properties=["chunk_hash"],
                include_vector=True,
                limit=limit,
            )
            for obj in result.objects:
                found.setdefault(obj.properties["chunk_hash"], _default_vector(obj.vector))
            if len(result.objects) >= limit:
                for missing in (h for h in group if h not in found):
                    one = collection.query.fetch_objects(
                        filters=Filter.by_property("chunk_hash").equal(missing), include_vector=True, limit=1
                    )
                    if one.objects:
                        found[missing] = _default_vector(one.objects[0].vector)
    except Exception as err:
        raise index_error(f"looking up vectors of {len(hashes)} chunk hashes in {name}", err) from err
    return found


def _default_vector(vector) -> list[float]:
    if isinstance(vector, dict):
        return list(vector.get("default") or next(iter(vector.values())))
    return list(vector)


def count_chunks(client: WeaviateClient, name: str, doc_id: str | None = None) -> int:
    from weaviate.classes.query import Filter

    collection = use(client, name)
    filters = Filter.by_property("doc_id").equal(doc_id) if doc_id else None
    return int(collection.aggregate.over_all(total_count=True, filters=filters).total_count or 0)


def fetch_chunks(client: WeaviateClient, name: str, chunk_ids: list[str]) -> dict[str, dict]:
    """chunk id -> the chunk as the index holds it (doc_id, source_id, kind, title, url,
    heading_path, text). Ids that are not uuids, or not in the collection, are left out: grading
    judges an answer only against the text the index really holds for what it cites."""
    import uuid as uuid_module

    wanted = []
    for chunk_id in dict.fromkeys(chunk_ids):
        try:
            wanted.append(str(uuid_module.UUID(str(chunk_id))))
        except ValueError:
            continue
    if not wanted or not client.collections.exists(name):
        return {}
    properties = ["doc_id", "source_id", "kind", "title", "url", "heading_path", "text", "visibility"]
    found: dict[str, dict] = {}
    collection = client.collections.use(name)
    try:
        for start in range(0, len(wanted), 500):
            result = collection.query.fetch_objects_by_ids(wanted[start : start + 500], limit=500, return_properties=properties)
            for o in result.objects:
                found[str(o.uuid)] = {p: o.properties.get(p) or "" for p in properties}
    except Exception as err:
        raise index_error(f"reading {len(wanted)} chunks by id from {name}", err) from err
    return found


def collection_counts(client: WeaviateClient) -> dict[str, int]:
    """Object count of every collection."""
    counts = {}
    for name in sorted(client.collections.list_all(simple=True)):
        result = use(client, name).aggregate.over_all(total_count=True)
        counts[name] = int(result.total_count or 0)
    return counts
