"""ShardWriter keeps a shard's lines and writes them when the shard closes: every document is
still where `add` said it went, and a document JSON cannot hold fails naming its shard."""

from __future__ import annotations

import pytest

from ragloop.documents import Document
from ragloop.staging import DOCS_PER_SHARD, ShardWriter, StagingError, read_documents


def document(number: int, **metadata) -> Document:
    return Document(doc_id=f"docs:{number}", source_id="docs", kind="docs", title=f"page {number}",
                    content=f"text of page {number}", metadata=metadata)


@pytest.fixture
def folder(tmp_path):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(f"file://{tmp_path}/shards")


def test_every_document_reads_back_from_where_add_put_it(folder):
    writer = ShardWriter(folder)
    count = DOCS_PER_SHARD + 3  # two shards, the second one short
    where = {document(n).doc_id: writer.add(document(n)) for n in range(count)}
    writer.close()
    assert len(writer.shards) == 2
    read = {doc.doc_id: location for location, doc in read_documents(where.values())}
    assert read == where


def test_a_value_json_cannot_hold_fails_naming_the_shard_and_the_rest_is_written(folder):
    writer = ShardWriter(folder)
    kept = writer.add(document(1))
    with pytest.raises(StagingError, match=r"writing .*documents-00000\.jsonl failed: TypeError"):
        writer.add(document(2, when=object()))
    writer.close()
    assert [doc.doc_id for _, doc in read_documents([kept])] == ["docs:1"]
