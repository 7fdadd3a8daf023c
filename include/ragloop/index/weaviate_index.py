"""The Index interface over one Weaviate collection: the real implementation.

It holds a client it does not own (`open_weaviate_index` opens one from an Airflow connection and
closes it), and delegates to the modules that speak Weaviate: schema, records, reading, writing,
watermarks and search.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import reading, records, schema, watermarks, writing
from ragloop.index.connection import connect
from ragloop.index.search import search as hybrid_search

if TYPE_CHECKING:
    from collections.abc import Iterator

    from weaviate import WeaviateClient

    from ragloop.config import Replication
    from ragloop.embedding import Embedder
    from ragloop.index.base import ChunkObject, DocumentRecord
    from ragloop.passages import Passage


class WeaviateIndex:
    """A chunk collection in Weaviate, its document records and its watermarks."""

    def __init__(self, client: WeaviateClient, name: str):
        self.client = client
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def prepare(self, embedder: Embedder, replication: Replication | None = None) -> None:
        schema.ensure_collection(self.client, self._name, embedder, replication)

    def read_records(self, source_ids: set[str] | None = None) -> dict[str, DocumentRecord]:
        return records.read_records(self.client, self._name, source_ids)

    def vectors_for_hashes(self, hashes: set[str]) -> dict[str, list[float]]:
        return reading.vectors_for_hashes(self.client, self._name, hashes) if hashes else {}

    def begin_documents(self, documents: list[tuple[str, str]]) -> None:
        writing.begin_documents(self.client, self._name, documents)

    def write_chunks(self, objects: list[ChunkObject]) -> int:
        return writing.write_objects(self.client, self._name, objects) if objects else 0

    def delete_stale_chunks(self, current_hashes: dict[str, str]) -> int:
        return writing.delete_stale_chunks(self.client, self._name, current_hashes) if current_hashes else 0

    def finish_documents(self, done: list[DocumentRecord]) -> None:
        records.write_records(self.client, self._name, done)

    def delete_documents(self, doc_ids: list[str]) -> int:
        return writing.delete_documents(self.client, self._name, doc_ids) if doc_ids else 0

    def count_chunks(self, doc_id: str | None = None) -> int:
        if not self.client.collections.exists(self._name):
            return 0
        return reading.count_chunks(self.client, self._name, doc_id)

    def read_watermarks(self, source_id: str) -> dict[str, dict]:
        return watermarks.read_watermarks(self.client, self._name, source_id)

    def write_watermarks(self, source_id: str, states: dict[str, dict]) -> int:
        return watermarks.write_watermarks(self.client, self._name, source_id, states)

    def search(
        self,
        embedder: Embedder,
        query: str,
        limit: int = 5,
        source_ids: list[str] | None = None,
        kinds: list[str] | None = None,
        audience: str = "internal",
    ) -> list[Passage]:
        return hybrid_search(self.client, self._name, embedder, query, limit, source_ids, kinds, audience=audience)


@contextmanager
def open_weaviate_index(name: str, conn_id: str = WEAVIATE_CONN_ID) -> Iterator[WeaviateIndex]:
    """The collection `name` of the Weaviate of Airflow connection `conn_id`; closed on exit."""
    with connect(conn_id) as client:
        yield WeaviateIndex(client, name)
