"""Everything that talks to Weaviate: the connection, the collection schema, reading what is
indexed, writing and deleting chunks, and search.

The collection is the only record of what is indexed: every chunk carries its document's hash
(`doc_hash`) and chunk count (`chunk_count`), so a plan can tell unchanged, changed and
half-written documents apart from the index alone, with no side database that could drift.

A connection becomes a client in `ragloop.hooks.weaviate.RagloopWeaviateHook` and nowhere else;
`connect` adds the messages that name the Weaviate that failed.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from weaviate import WeaviateClient

    from ragloop.config import Replication

    from ragloop.embedding import Embedder

from ragloop.errors import RagloopError
from ragloop.hooks.endpoint import WEAVIATE_CONN_ID, WeaviateEndpoint, client_kwargs

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3  # 2: chunk_count; 3: visibility
# The collection's description carries the embedder it was built with, so the record lives with
# the vectors it describes and cannot drift from them.
DESCRIPTION_PREFIX = "ragloop "


class WeaviateIndexError(RagloopError):
    """Index problem with a message meant for a person."""


class EmbedderMismatch(WeaviateIndexError):
    pass


class ReplicationMismatch(WeaviateIndexError):
    pass


# --- replication and consistency ----------------------------------------------------------------

# The configuration's `replication` (ragloop.config.Replication) of each collection this process
# has ensured: its factor and the consistency level every write and read of it uses. A collection
# not ensured in this process is used with Weaviate's default level (QUORUM).
_REPLICATION: dict[str, "Replication"] = {}


def _use(client: "WeaviateClient", name: str):
    """The collection handle, at the configured consistency level when one is known."""
    collection = client.collections.use(name)
    replication = _REPLICATION.get(name)
    if replication is None:
        return collection
    from weaviate.classes.config import ConsistencyLevel

    return collection.with_consistency_level(ConsistencyLevel(replication.consistency))


def _replication_config(replication: "Replication"):
    """Weaviate's replication settings for `replication`: the factor; DeleteOnConflict, under
    which an object deleted on any replica is deleted on all (repair never resurrects a deleted
    chunk or a revoked answer); and asynchronous repair when there are replicas, so a node that
    was down catches up by itself."""
    from weaviate.classes.config import Configure, ReplicationDeletionStrategy

    return Configure.replication(
        factor=replication.factor,
        async_enabled=replication.factor > 1,
        deletion_strategy=ReplicationDeletionStrategy.DELETE_ON_CONFLICT,
    )


def replication_of(client: "WeaviateClient", name: str) -> dict:
    """The replication a collection was created with: factor, async repair, deletion strategy."""
    config = client.collections.use(name).config.get().replication_config
    strategy = getattr(config, "deletion_strategy", None)
    return {
        "factor": config.factor,
        "async_enabled": bool(getattr(config, "async_enabled", False)),
        "deletion_strategy": str(getattr(strategy, "value", strategy)),
    }


def _check_replication(client: "WeaviateClient", name: str, replication: "Replication") -> None:
    existing = replication_of(client, name)
    if existing["factor"] != replication.factor:
        raise ReplicationMismatch(
            f"Collection {name!r} has replication factor {existing['factor']}, but the configuration asks for "
            f"{replication.factor}. The factor is fixed when a collection is created: set `replication.factor` back "
            f"to {existing['factor']}, or set `collection:` to a new name and re-index."
        )


def endpoint_from_connection(conn_id: str = WEAVIATE_CONN_ID) -> WeaviateEndpoint:
    """Where the connection points (see `RagloopWeaviateHook` for what its fields mean)."""
    from ragloop.hooks.weaviate import RagloopWeaviateHook, WeaviateConnectionError

    try:
        return RagloopWeaviateHook(conn_id).endpoint()
    except WeaviateConnectionError as err:
        raise WeaviateIndexError(str(err)) from None


@contextmanager
def connect(conn_id: str = WEAVIATE_CONN_ID) -> Iterator["WeaviateClient"]:
    """A Weaviate client for the Airflow connection, made by the hook; closed on exit."""
    from ragloop.hooks.weaviate import RagloopWeaviateHook, WeaviateConnectionError, connect_client

    try:
        endpoint, kwargs = RagloopWeaviateHook(conn_id).connect_args()
    except WeaviateConnectionError as err:
        raise WeaviateIndexError(str(err)) from None
    try:
        client = connect_client(endpoint, kwargs)
    except Exception as err:
        raise WeaviateIndexError(
            f"Cannot reach Weaviate at {endpoint.url} (gRPC {endpoint.grpc_host}:{endpoint.grpc_port}) "
            f"from connection {conn_id!r}: {err}. Start the local server with `ragloop weaviate start`, "
            "or point the connection at a running Weaviate."
        ) from err
    try:
        yield client
    except WeaviateIndexError as err:
        if endpoint.url not in str(err):
            err.args = (f"{err} [Weaviate at {endpoint.url}]",)
        raise
    except _weaviate_base_error() as err:
        # Whatever the call, say which Weaviate failed: the client's own message often does not.
        raise WeaviateIndexError(f"Weaviate at {endpoint.url} failed: {type(err).__name__}: {err}") from err
    finally:
        client.close()


def _weaviate_base_error() -> type[Exception]:
    from weaviate.exceptions import WeaviateBaseError

    return WeaviateBaseError


@contextmanager
def connect_local(host: str, http_port: int, grpc_port: int) -> Iterator["WeaviateClient"]:
    """A client for the local server on these ports (anonymous), before any connection exists."""
    import weaviate

    client = weaviate.connect_to_custom(**client_kwargs(WeaviateEndpoint(host, http_port, host, grpc_port)))
    try:
        yield client
    finally:
        client.close()


def collection_counts(client: "WeaviateClient") -> dict[str, int]:
    """Object count of every collection."""
    counts = {}
    for name in sorted(client.collections.list_all(simple=True)):
        result = _use(client, name).aggregate.over_all(total_count=True)
        counts[name] = int(result.total_count or 0)
    return counts


def _embedder_record(embedder: "Embedder") -> dict:
    """What the collection records of its embedder: name, dimension and, for a quantised model,
    the quantisation (an int8 model's vectors differ from the float model's)."""
    record = {"embedder": embedder.name, "dimension": embedder.dimension}
    quantization = getattr(embedder, "quantization", None)
    if quantization:
        record["quantization"] = quantization
    return record


def _describe(embedder: "Embedder") -> str:
    return DESCRIPTION_PREFIX + json.dumps({**_embedder_record(embedder), "schema_version": SCHEMA_VERSION}, sort_keys=True)


def _config_for(record: dict) -> str:
    from ragloop.embedding import config_for_embedder

    return config_for_embedder(str(record.get("embedder")))


def _said(record: dict) -> str:
    quantization = f", {record['quantization']}" if record.get("quantization") else ""
    return f"{record.get('embedder')!r} ({record.get('dimension')} dimensions{quantization})"


def recorded_embedder(client: "WeaviateClient", name: str) -> dict | None:
    """The embedder a collection was built with, or None when the collection does not exist."""
    if not client.collections.exists(name):
        return None
    description = client.collections.use(name).config.get().description or ""
    if not description.startswith(DESCRIPTION_PREFIX):
        raise WeaviateIndexError(
            f"Collection {name!r} exists but was not created by ragloop (no embedder record in its "
            "description). Choose another `collection:` name in sources.yaml."
        )
    return json.loads(description[len(DESCRIPTION_PREFIX) :])


def ensure_collection(
    client: "WeaviateClient", name: str, embedder: "Embedder", replication: "Replication | None" = None
) -> bool:
    """Create the chunk collection for `embedder`, or check that an existing one matches it.

    Returns True when the collection was created. Vectors of different embedders live in
    different spaces, so a collection built with one is never written with another.
    `replication` (the configuration's; default a single copy) sets the factor of a new
    collection, is checked against an existing one, and sets the consistency level of this
    process's writes and reads of it (None: create with one copy, check nothing).
    """
    from ragloop.config import Replication

    recorded = recorded_embedder(client, name)
    if recorded is not None:
        wanted = _embedder_record(embedder)
        if any(recorded.get(key) != wanted.get(key) for key in ("embedder", "dimension", "quantization")):
            raise EmbedderMismatch(
                f"Collection {name!r} was indexed with embedder {_said(recorded)}, but the configuration asks "
                f"for {_said(wanted)}; vectors of different embedders cannot be mixed. To re-index "
                f"with the new embedder, set `collection:` in sources.yaml to a new name and run `ragloop ingest`; "
                f"remove the old collection with `ragloop index drop {name} --yes` when nothing uses it. To keep "
                f"using this collection, set `embedder:` back to {_config_for(recorded)}."
            )
        if recorded.get("schema_version", 1) < SCHEMA_VERSION:
            _upgrade_schema(client, name, embedder)
        if replication is not None:  # None: a reader (search) that takes the collection as it is
            _check_replication(client, name, replication)
            _REPLICATION[name] = replication
        return False

    from weaviate.classes.config import Configure, DataType, Property, Tokenization

    replication = replication or Replication()

    def keyword(prop: str) -> Property:
        # Exact-match fields: filterable, not part of BM25 text search.
        return Property(
            name=prop,
            data_type=DataType.TEXT,
            tokenization=Tokenization.FIELD,
            index_filterable=True,
            index_searchable=False,
        )

    client.collections.create(
        name=name,
        description=_describe(embedder),
        vector_config=Configure.Vectors.self_provided(),
        replication_config=_replication_config(replication),
        properties=[
            keyword("doc_id"),
            keyword("source_id"),
            keyword("kind"),
            keyword("doc_hash"),
            keyword("chunk_hash"),
            keyword("visibility"),
            Property(name="title", data_type=DataType.TEXT),
            Property(name="text", data_type=DataType.TEXT),
            Property(name="heading_path", data_type=DataType.TEXT),
            Property(name="url", data_type=DataType.TEXT, index_searchable=False),
            Property(name="chunk_index", data_type=DataType.INT),
            Property(name="chunk_count", data_type=DataType.INT),
            Property(name="updated_at", data_type=DataType.DATE),
            Property(name="metadata_json", data_type=DataType.TEXT, index_searchable=False, index_filterable=False),
        ],
    )
    _REPLICATION[name] = replication
    log.info(
        "Created collection %s for embedder %s (%d dimensions, %d replicas, consistency %s)",
        name,
        embedder.name,
        embedder.dimension,
        replication.factor,
        replication.consistency,
    )
    return True


def drop_collection(client: "WeaviateClient", name: str) -> bool:
    """Delete a collection and the watermarks kept beside it (they describe its contents)."""
    state = state_collection_name(name)
    if client.collections.exists(state):
        client.collections.delete(state)
    if not client.collections.exists(name):
        return False
    client.collections.delete(name)
    return True


# --- watermarks of API sources ------------------------------------------------------------------

# Where a live API source (a Slack channel, a GitHub repository) was read up to lives in a small
# collection beside the chunks it describes: one object per (source, item), keyed by a uuid5, so
# storing is an idempotent upsert. Dropping the chunk collection drops it too, and a source with
# no chunks in the index ignores its watermarks (see `read_watermarks`), so they cannot drift
# from what is indexed.
STATE_SUFFIX = "SyncState"


def state_collection_name(name: str) -> str:
    return f"{name}{STATE_SUFFIX}"


def _state_uuid(source_id: str, item: str) -> str:
    import uuid

    from ragloop.documents import RAGLOOP_NAMESPACE

    return str(uuid.uuid5(RAGLOOP_NAMESPACE, f"watermark\x00{source_id}\x00{item}"))


def _ensure_state_collection(client: "WeaviateClient", name: str) -> None:
    from weaviate.classes.config import Configure, DataType, Property, Tokenization

    state = state_collection_name(name)
    if name in _REPLICATION:
        _REPLICATION[state] = _REPLICATION[name]
    if client.collections.exists(state):
        return
    from ragloop.config import Replication

    try:
        client.collections.create(
            name=state,
            description=f"ragloop watermarks of the API sources indexed in {name}",
            vector_config=Configure.Vectors.self_provided(),
            replication_config=_replication_config(_REPLICATION.get(name) or Replication()),
            properties=[
                Property(name="source_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
                Property(name="item", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
                Property(name="state_json", data_type=DataType.TEXT, index_searchable=False, index_filterable=False),
                Property(name="stored_at", data_type=DataType.DATE),
            ],
        )
    except Exception as err:
        if not client.collections.exists(state):  # another task created it first: fine
            raise _index_error(f"creating collection {state}", err) from err


def read_watermarks(client: "WeaviateClient", name: str, source_id: str) -> dict[str, dict]:
    """item -> the stored watermark state of one source; {} when the index holds none of the
    source's chunks (the chunks were dropped or never written: read everything again)."""
    from weaviate.classes.query import Filter

    state = state_collection_name(name)
    if not client.collections.exists(state) or not client.collections.exists(name):
        return {}
    try:
        chunks = (
            _use(client, name)
            .aggregate.over_all(total_count=True, filters=Filter.by_property("source_id").equal(source_id))
            .total_count
        )
        if not chunks:
            return {}
        found = {}
        for obj in _use(client, state).iterator(return_properties=["source_id", "item", "state_json"]):
            if obj.properties.get("source_id") == source_id:
                found[obj.properties["item"]] = json.loads(obj.properties.get("state_json") or "{}")
        return found
    except Exception as err:
        raise _index_error(f"reading the watermarks of {source_id} from {state}", err) from err


def write_watermarks(client: "WeaviateClient", name: str, source_id: str, states: dict[str, dict]) -> int:
    """Store (replace) the watermark state of each item of a source."""
    from datetime import datetime, timezone

    from weaviate.classes.data import DataObject

    if not states:
        return 0
    _ensure_state_collection(client, name)
    state = state_collection_name(name)
    now = datetime.now(timezone.utc)
    objects = [
        DataObject(
            uuid=_state_uuid(source_id, item),
            properties={
                "source_id": source_id,
                "item": item,
                "stored_at": now,
                "state_json": json.dumps(value, sort_keys=True, default=str),
            },
        )
        for item, value in sorted(states.items())
    ]
    try:
        result = _use(client, state).data.insert_many(objects)
    except Exception as err:
        raise _index_error(f"storing watermarks of {source_id} in {state}", err) from err
    if result.errors:
        reasons = "; ".join(f"{objects[i].properties['item']}: {e.message}" for i, e in sorted(result.errors.items()))
        raise WeaviateIndexError(f"Weaviate refused watermarks of {source_id} in {state}: {reasons}")
    return len(objects)


# What chunks indexed before visibility existed (schema 3) are given: a source's default by its
# kind. Written-back answers may quote Slack, so they are internal until written back again.
BACKFILL_VISIBILITY = {"slack": "internal", "qa": "internal"}


def _upgrade_schema(client: "WeaviateClient", name: str, embedder: "Embedder") -> None:
    """Schema 1 (the foundation release) had no chunk_count; add it. Existing chunks then read as
    incomplete documents, so the next ingest rewrites them (reusing their vectors). Schema 2 had
    no visibility: add it and give every chunk its kind's default (BACKFILL_VISIBILITY, else
    public) before the collection is marked upgraded, so no query filtered by audience ever meets
    a chunk without one. A docs or GitHub source configured `internal` changes its documents'
    hashes, so the next ingest rewrites them as internal."""
    from weaviate.classes.config import DataType, Property, Tokenization

    collection = _use(client, name)
    existing = {prop.name for prop in collection.config.get().properties}
    if "chunk_count" not in existing:
        collection.config.add_property(Property(name="chunk_count", data_type=DataType.INT))
    if "visibility" not in existing:
        collection.config.add_property(
            Property(
                name="visibility",
                data_type=DataType.TEXT,
                tokenization=Tokenization.FIELD,
                index_filterable=True,
                index_searchable=False,
            )
        )
    updated = 0
    try:
        for item in collection.iterator(return_properties=["kind", "visibility"]):
            if not item.properties.get("visibility"):
                visibility = BACKFILL_VISIBILITY.get(item.properties.get("kind") or "", "public")
                collection.data.update(uuid=item.uuid, properties={"visibility": visibility})
                updated += 1
    except Exception as err:
        raise _index_error(f"giving the chunks of {name} their visibility (schema {SCHEMA_VERSION})", err) from err
    if updated:
        log.info("Gave %d chunks of %s a visibility by their kind", updated, name)
    collection.config.update(description=_describe(embedder))
    log.info("Upgraded collection %s to schema version %d", name, SCHEMA_VERSION)


# --- reading what is indexed --------------------------------------------------------------------

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


def read_indexed_documents(
    client: "WeaviateClient", name: str, source_ids: set[str] | None = None, progress=None
) -> dict[str, IndexedDocument]:
    """One streaming read of the collection: doc_id -> IndexedDocument, for the given sources.

    The cursor iterator cannot filter, so it reads the small plan properties of every object and
    keeps those of the requested sources.
    """
    if not client.collections.exists(name):
        return {}
    collection = _use(client, name)
    documents: dict[str, IndexedDocument] = {}
    seen = 0
    try:
        for obj in collection.iterator(
            return_properties=["doc_id", "source_id", "doc_hash", "chunk_index", "chunk_count"],
            cache_size=ITERATOR_PAGE,
        ):
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
        raise _index_error(f"reading collection {name}", err) from err
    return documents


def _index_error(action: str, err: Exception) -> WeaviateIndexError:
    if isinstance(err, WeaviateIndexError):
        return err
    return WeaviateIndexError(f"Weaviate failed while {action}: {type(err).__name__}: {err}")


def vectors_for_hashes(client: "WeaviateClient", name: str, hashes: set[str]) -> dict[str, list[float]]:
    """A vector for each chunk hash the collection already holds (any document): equal text has
    an equal vector, so these chunks need no embedding."""
    from weaviate.classes.query import Filter

    collection = _use(client, name)
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
        raise _index_error(f"looking up vectors of {len(hashes)} chunk hashes in {name}", err) from err
    return found


def _default_vector(vector) -> list[float]:
    if isinstance(vector, dict):
        return list(vector.get("default") or next(iter(vector.values())))
    return list(vector)


# --- writing and deleting -----------------------------------------------------------------------


class IndexWriteError(WeaviateIndexError):
    """Some objects of a batch were refused; the message lists them."""


WRITE_GROUP = 250  # objects per insert_many request
# insert_many requests in flight at once: while Weaviate stores some groups, the client builds the
# next one's protobuf message. Measured on the 2-core machine, 7,590 chunks written in the
# pipeline's groups of 1,000, two rounds: 500 x 2 in flight 7.26/8.42 s, 1,000 x 2 8.46/7.82 s,
# 250 x 2 6.41/7.65 s, 250 x 4 6.31/6.38 s; the client's own fixed_size(1000, 2) batch 6.17/7.28 s.
WRITE_CONCURRENCY = 4


@dataclass
class ChunkObject:
    """A chunk as stored: its id, its properties and its vector."""

    uuid: str
    properties: dict
    vector: list[float]


def chunk_object(document, chunk, doc_hash: str, chunk_count: int, vector: list[float]) -> ChunkObject:
    return ChunkObject(
        uuid=chunk.chunk_id,
        properties={
            "doc_id": document.doc_id,
            "source_id": document.source_id,
            "kind": document.kind,
            "doc_hash": doc_hash,
            "chunk_hash": chunk.chunk_hash,
            "visibility": document.visibility,
            "title": document.title,
            "text": chunk.text,
            "heading_path": " > ".join(chunk.heading_path),
            "url": document.url,
            "chunk_index": chunk.index,
            "chunk_count": chunk_count,
            "updated_at": document.updated_at,
            "metadata_json": json.dumps(document.metadata, sort_keys=True, ensure_ascii=False, default=str),
        },
        vector=vector,
    )


def write_objects(client: "WeaviateClient", name: str, objects: list[ChunkObject]) -> int:
    """Insert or replace objects by uuid. Every refused object is reported: a batch with any
    failure raises IndexWriteError naming the objects and reasons, never counts as success."""
    from concurrent.futures import ThreadPoolExecutor

    from weaviate.classes.data import DataObject

    collection = _use(client, name)
    failures: list[str] = []
    written = 0

    def send(group: list[ChunkObject]):
        try:
            return collection.data.insert_many([DataObject(uuid=o.uuid, properties=o.properties, vector=o.vector) for o in group])
        except Exception as err:
            raise _index_error(f"writing {len(group)} chunks to {name}", err) from err

    groups = [objects[start : start + WRITE_GROUP] for start in range(0, len(objects), WRITE_GROUP)]
    with ThreadPoolExecutor(max_workers=min(WRITE_CONCURRENCY, len(groups) or 1), thread_name_prefix="weaviate-write") as pool:
        # map() yields in order and re-raises the first failed request's error here.
        for group, result in zip(groups, pool.map(send, groups)):
            for index, error in sorted(result.errors.items()):
                obj = group[index]
                failures.append(f"{obj.uuid} ({obj.properties['doc_id']} chunk {obj.properties['chunk_index']}): {error.message}")
            written += len(group) - len(result.errors)
    if failures:
        shown = "\n  ".join(failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        raise IndexWriteError(f"Weaviate refused {len(failures)} of {len(objects)} chunks in {name}:\n  {shown}{more}")
    return written


def _delete_where(client: "WeaviateClient", name: str, where, what: str) -> int:
    """delete_many until nothing matches: one call deletes at most QUERY_MAXIMUM_RESULTS objects."""
    collection = _use(client, name)
    deleted = 0
    for _ in range(10_000):
        try:
            result = collection.data.delete_many(where=where)
        except Exception as err:
            raise _index_error(f"deleting {what} from {name}", err) from err
        if result.failed:
            raise WeaviateIndexError(f"Weaviate failed to delete {result.failed} objects ({what}) from {name}")
        deleted += result.successful
        if result.matches == 0 or result.successful == 0:
            return deleted
    raise WeaviateIndexError(f"Deleting {what} from {name} did not finish")


def delete_stale_chunks(client: "WeaviateClient", name: str, current_hashes: dict[str, str]) -> int:
    """Delete each document's chunks that carry another hash than the one just written.

    Called only after the document's new chunks are written: the document is never without
    chunks, and whatever an interrupted earlier run left behind goes too.
    """
    from weaviate.classes.query import Filter

    deleted = 0
    items = sorted(current_hashes.items())
    for start in range(0, len(items), FILTER_GROUP):
        group = items[start : start + FILTER_GROUP]
        where = (
            Filter.any_of(
                [
                    Filter.by_property("doc_id").equal(doc_id) & Filter.by_property("doc_hash").not_equal(doc_hash)
                    for doc_id, doc_hash in group
                ]
            )
            if len(group) > 1
            else (Filter.by_property("doc_id").equal(group[0][0]) & Filter.by_property("doc_hash").not_equal(group[0][1]))
        )
        deleted += _delete_where(client, name, where, f"stale chunks of {len(group)} documents")
    return deleted


def delete_documents(client: "WeaviateClient", name: str, doc_ids: list[str]) -> int:
    """Delete every chunk of the given documents; returns the number of chunks deleted."""
    from weaviate.classes.query import Filter

    deleted = 0
    ids = sorted(doc_ids)
    for start in range(0, len(ids), FILTER_GROUP):
        group = ids[start : start + FILTER_GROUP]
        deleted += _delete_where(client, name, Filter.by_property("doc_id").contains_any(group), f"{len(group)} documents")
    return deleted


def count_chunks(client: "WeaviateClient", name: str, doc_id: str | None = None) -> int:
    from weaviate.classes.query import Filter

    collection = _use(client, name)
    filters = Filter.by_property("doc_id").equal(doc_id) if doc_id else None
    return int(collection.aggregate.over_all(total_count=True, filters=filters).total_count or 0)


def fetch_chunks(client: "WeaviateClient", name: str, chunk_ids: list[str]) -> dict[str, dict]:
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
        raise _index_error(f"reading {len(wanted)} chunks by id from {name}", err) from err
    return found


# --- search -------------------------------------------------------------------------------------


@dataclass
class Hit:
    doc_id: str
    source_id: str
    kind: str
    title: str
    url: str
    heading_path: str
    text: str
    score: float
    chunk_id: str
    visibility: str = "public"

    def to_json(self) -> dict:
        return dict(self.__dict__)


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
) -> list[Hit]:
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
        result = _use(client, name).query.hybrid(
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
        raise _index_error(f"searching {name}", err) from err
    return [
        Hit(
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
