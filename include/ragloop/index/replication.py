"""Replication and consistency: the factor a collection is created with, checked against the
configuration, and the consistency level every read and write of a collection uses."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ragloop.index.connection import ReplicationMismatch

if TYPE_CHECKING:
    from weaviate import WeaviateClient

    from ragloop.config import Replication


log = logging.getLogger(__name__)


# The configuration's `replication` (ragloop.config.Replication) of each collection this process
# has ensured: its factor and the consistency level every write and read of it uses. A collection
# not ensured in this process is used with Weaviate's default level (QUORUM).
REPLICATION: dict[str, Replication] = {}


def use(client: WeaviateClient, name: str):
    """The collection handle, at the configured consistency level when one is known."""
    collection = client.collections.use(name)
    replication = REPLICATION.get(name)
    if replication is None:
        return collection
    from weaviate.classes.config import ConsistencyLevel

    return collection.with_consistency_level(ConsistencyLevel(replication.consistency))


def replication_config(replication: Replication):
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


def replication_of(client: WeaviateClient, name: str) -> dict:
    """The replication a collection was created with: factor, async repair, deletion strategy."""
    config = client.collections.use(name).config.get().replication_config
    strategy = getattr(config, "deletion_strategy", None)
    return {
        "factor": config.factor,
        "async_enabled": bool(getattr(config, "async_enabled", False)),
        "deletion_strategy": str(getattr(strategy, "value", strategy)),
    }


def check_replication(client: WeaviateClient, name: str, replication: Replication) -> None:
    existing = replication_of(client, name)
    if existing["factor"] != replication.factor:
        raise ReplicationMismatch(
            f"Collection {name!r} has replication factor {existing['factor']}, but the configuration asks for "
            f"{replication.factor}. The factor is fixed when a collection is created: set `replication.factor` back "
            f"to {existing['factor']}, or set `collection:` to a new name and re-index."
        )
