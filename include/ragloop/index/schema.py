"""The collection schema: created for the configured embedder (recorded in its description and
refused on a mismatch), upgraded in place between schema versions, dropped by hand."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from ragloop.index.connection import EmbedderMismatch, WeaviateIndexError, index_error
from ragloop.index.records import create_records_collection, migrate_records, records_collection_name
from ragloop.index.replication import REPLICATION, check_replication, replication_config, use
from ragloop.index.watermarks import state_collection_name

if TYPE_CHECKING:
    from weaviate import WeaviateClient

    from ragloop.config import Replication
    from ragloop.embedding import Embedder


log = logging.getLogger(__name__)


SCHEMA_VERSION = 5  # 2: chunk_count; 3: visibility; 4: quarantined; 5: document records beside the chunks


# The collection's description carries the embedder it was built with, so the record lives with
# the vectors it describes and cannot drift from them.
DESCRIPTION_PREFIX = "ragloop "


def _embedder_record(embedder: Embedder) -> dict:
    """What the collection records of its embedder: name, dimension and, for a quantised model,
    the quantisation (an int8 model's vectors differ from the float model's)."""
    record = {"embedder": embedder.name, "dimension": embedder.dimension}
    quantization = getattr(embedder, "quantization", None)
    if quantization:
        record["quantization"] = quantization
    return record


def _describe(embedder: Embedder) -> str:
    return DESCRIPTION_PREFIX + json.dumps({**_embedder_record(embedder), "schema_version": SCHEMA_VERSION}, sort_keys=True)


def _config_for(record: dict) -> str:
    from ragloop.embedding import config_for_embedder

    return config_for_embedder(str(record.get("embedder")))


def _said(record: dict) -> str:
    quantization = f", {record['quantization']}" if record.get("quantization") else ""
    return f"{record.get('embedder')!r} ({record.get('dimension')} dimensions{quantization})"


def recorded_embedder(client: WeaviateClient, name: str) -> dict | None:
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


# Collections this process created or dropped, counted per name: a reader that checked a
# collection (ragloop.index.search) checks it again after either, without waiting for its TTL.
COLLECTION_CHANGES: dict[str, int] = {}


def _changed(name: str) -> None:
    COLLECTION_CHANGES[name] = COLLECTION_CHANGES.get(name, 0) + 1


def ensure_collection(client: WeaviateClient, name: str, embedder: Embedder, replication: Replication | None = None) -> bool:
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
        if replication is not None:  # None: a reader (search) that takes the collection as it is
            check_replication(client, name, replication)
            REPLICATION[name] = replication
        if recorded.get("schema_version", 1) < SCHEMA_VERSION:
            _upgrade_schema(client, name, embedder)
        elif not client.collections.exists(records_collection_name(name)):
            # Records dropped by hand (or lost): rebuilt from the chunks, as a migration does.
            migrate_records(client, name)
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
        replication_config=replication_config(replication),
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
            # The chunk holds a credential and its source quarantines them (stored internal too).
            Property(name="quarantined", data_type=DataType.BOOL),
        ],
    )
    REPLICATION[name] = replication
    create_records_collection(client, name)
    log.info(
        "Created collection %s for embedder %s (%d dimensions, %d replicas, consistency %s)",
        name,
        embedder.name,
        embedder.dimension,
        replication.factor,
        replication.consistency,
    )
    _changed(name)
    return True


def drop_collection(client: WeaviateClient, name: str) -> bool:
    """Delete a collection and the watermarks and document records kept beside it (they describe
    its contents)."""
    for beside in (state_collection_name(name), records_collection_name(name)):
        if client.collections.exists(beside):
            client.collections.delete(beside)
    if not client.collections.exists(name):
        return False
    client.collections.delete(name)
    _changed(name)
    return True


# What chunks indexed before visibility existed (schema 3) are given: a source's default by its
# kind. Written-back answers may quote Slack, so they are internal until written back again.
BACKFILL_VISIBILITY = {"slack": "internal", "qa": "internal"}


def _upgrade_schema(client: WeaviateClient, name: str, embedder: Embedder) -> None:
    """Schema 1 (the foundation release) had no chunk_count; add it. Existing chunks then read as
    incomplete documents, so the next ingest rewrites them (reusing their vectors). Schema 2 had
    no visibility: add it and give every chunk its kind's default (BACKFILL_VISIBILITY, else
    public) before the collection is marked upgraded, so no query filtered by audience ever meets
    a chunk without one. A docs or GitHub source configured `internal` changes its documents'
    hashes, so the next ingest rewrites them as internal. Schema 4 had no document records:
    `migrate_records` writes them from the chunks."""
    from weaviate.classes.config import DataType, Property, Tokenization

    collection = use(client, name)
    existing = {prop.name for prop in collection.config.get().properties}
    if "chunk_count" not in existing:
        collection.config.add_property(Property(name="chunk_count", data_type=DataType.INT))
    if "quarantined" not in existing:  # schema 4; absent on older chunks reads as not quarantined
        collection.config.add_property(Property(name="quarantined", data_type=DataType.BOOL))
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
        raise index_error(f"giving the chunks of {name} their visibility (schema {SCHEMA_VERSION})", err) from err
    if updated:
        log.info("Gave %d chunks of %s a visibility by their kind", updated, name)
    # Schema 5: one record per document, read from the chunks, before the collection is marked
    # upgraded (a plan of an upgraded collection reads records only).
    migrate_records(client, name)
    collection.config.update(description=_describe(embedder))
    log.info("Upgraded collection %s to schema version %d", name, SCHEMA_VERSION)
