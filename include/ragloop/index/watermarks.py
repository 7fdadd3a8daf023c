"""The API sources' watermarks, kept in the index beside the chunks (<collection>SyncState), so
they move only with what is indexed."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from ragloop.index.connection import WeaviateIndexError, index_error
from ragloop.index.replication import REPLICATION, replication_config, use
from datetime import UTC

if TYPE_CHECKING:
    from weaviate import WeaviateClient


log = logging.getLogger(__name__)


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


def _ensure_state_collection(client: WeaviateClient, name: str) -> None:
    from weaviate.classes.config import Configure, DataType, Property, Tokenization

    state = state_collection_name(name)
    if name in REPLICATION:
        REPLICATION[state] = REPLICATION[name]
    if client.collections.exists(state):
        return
    from ragloop.config import Replication

    try:
        client.collections.create(
            name=state,
            description=f"ragloop watermarks of the API sources indexed in {name}",
            vector_config=Configure.Vectors.self_provided(),
            replication_config=replication_config(REPLICATION.get(name) or Replication()),
            properties=[
                Property(name="source_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
                Property(name="item", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
                Property(name="state_json", data_type=DataType.TEXT, index_searchable=False, index_filterable=False),
                Property(name="stored_at", data_type=DataType.DATE),
            ],
        )
    except Exception as err:
        if not client.collections.exists(state):  # another task created it first: fine
            raise index_error(f"creating collection {state}", err) from err


def read_watermarks(client: WeaviateClient, name: str, source_id: str) -> dict[str, dict]:
    """item -> the stored watermark state of one source; {} when the index holds none of the
    source's chunks (the chunks were dropped or never written: read everything again)."""
    from weaviate.classes.query import Filter

    state = state_collection_name(name)
    if not client.collections.exists(state) or not client.collections.exists(name):
        return {}
    try:
        chunks = (
            use(client, name)
            .aggregate.over_all(total_count=True, filters=Filter.by_property("source_id").equal(source_id))
            .total_count
        )
        if not chunks:
            return {}
        found = {}
        for obj in use(client, state).iterator(return_properties=["source_id", "item", "state_json"]):
            if obj.properties.get("source_id") == source_id:
                found[obj.properties["item"]] = json.loads(obj.properties.get("state_json") or "{}")
        return found
    except Exception as err:
        raise index_error(f"reading the watermarks of {source_id} from {state}", err) from err


def write_watermarks(client: WeaviateClient, name: str, source_id: str, states: dict[str, dict]) -> int:
    """Store (replace) the watermark state of each item of a source."""
    from datetime import datetime

    from weaviate.classes.data import DataObject

    if not states:
        return 0
    _ensure_state_collection(client, name)
    state = state_collection_name(name)
    now = datetime.now(UTC)
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
        result = use(client, state).data.insert_many(objects)
    except Exception as err:
        raise index_error(f"storing watermarks of {source_id} in {state}", err) from err
    if result.errors:
        reasons = "; ".join(f"{objects[i].properties['item']}: {e.message}" for i, e in sorted(result.errors.items()))
        raise WeaviateIndexError(f"Weaviate refused watermarks of {source_id} in {state}: {reasons}")
    return len(objects)
