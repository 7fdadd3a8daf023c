"""The ingest DAG through Airflow's dag.test() on real Weaviate with the real local model:
first run, no-change run, a one-paragraph edit, a deleted file, and a listing with a failed file."""

from __future__ import annotations

import pytest

from conftest import copy_samples, indexed_chunks, write_config

pytestmark = pytest.mark.integration


def run_ingest(config, **conf):
    from ragloop.airflow.dagrun import run_dag

    result = run_dag("ragloop_ingest_docs", {"config": str(config), "sources": [], "full_refresh": False, **conf}, retries=0)
    return result.returns["report"], result


def doc_files(docs):
    return sorted(p for p in docs.rglob("*") if p.suffix in (".md", ".rst") and not p.name.startswith("changelog"))


def assert_complete(chunks: dict[str, list[dict]]):
    for doc_id, doc_chunks in chunks.items():
        counts = {c["chunk_count"] for c in doc_chunks}
        assert len(counts) == 1, doc_id
        assert [c["chunk_index"] for c in doc_chunks] == list(range(counts.pop())), doc_id
        assert len({c["doc_hash"] for c in doc_chunks}) == 1, doc_id


def test_ingest_dag_is_incremental_to_the_chunk(tmp_path, airflow_db, weaviate_server, weaviate_client, collection_name):
    from ragloop.embedding import LocalEmbedder
    from ragloop.index import search

    docs = copy_samples(tmp_path)
    config = write_config(tmp_path, collection_name, docs, source={"exclude": ["**/changelog*"]})
    files = doc_files(docs)
    doc_ids = {f"docs:{p.relative_to(docs).as_posix()}" for p in files}

    # 1. First run: every file is indexed, completely.
    report, result = run_ingest(config)
    source = report["sources"]["docs"]
    assert source["documents"]["new"] == len(files) and source["documents"]["failed"] == 0
    chunks = indexed_chunks(weaviate_client, collection_name)
    assert set(chunks) == doc_ids
    assert_complete(chunks)
    total = sum(map(len, chunks.values()))
    assert source["chunks"]["written"] == total == report["collection_chunks"]
    assert 0 < source["chunks"]["embedded"] <= total and source["embedding_tokens"] > 0
    assert result.task_states["index[0]"] == "success"

    # The report is also the extra of an asset event for the collection.
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(select(AssetEvent).order_by(AssetEvent.id.desc()).limit(1)).one()
        assert event.extra["collection"] == collection_name and event.extra["sources"]["docs"]["documents"]["new"] == len(files)

    # 2. Nothing changed: nothing embedded, nothing written, nothing deleted.
    report, result = run_ingest(config)
    source = report["sources"]["docs"]
    assert source["documents"]["unchanged"] == len(files)
    assert report["totals"] == {"embedded": 0, "reused": 0, "written": 0, "deleted": 0}
    assert result.task_states.get("index") in (None, "skipped") or not any(k.startswith("index[") for k in result.task_states)

    # 3. One paragraph of one file edited: only its new text is embedded; stale chunks go.
    doc_id = "docs:guides/webhooks.md"
    target = docs / "guides" / "webhooks.md"
    lines = target.read_text().split("\n")
    body_start = lines.index("---", 1) + 1 if lines[0] == "---" else 0  # past the front matter
    index = next(i for i, line in enumerate(lines) if i >= body_start and len(line) > 80 and line[0].isalpha())
    old_line = lines[index]
    lines[index] = "Every delivery also carries a zanzibar-quokka nonce that receivers must echo back within one minute."
    target.write_text("\n".join(lines))
    hashes_before = {c["chunk_hash"] for doc in chunks.values() for c in doc}
    report, _ = run_ingest(config)
    source = report["sources"]["docs"]
    assert (source["documents"]["changed"], source["documents"]["unchanged"]) == (1, len(files) - 1)
    after = indexed_chunks(weaviate_client, collection_name)
    assert_complete(after)
    new_hashes = {c["chunk_hash"] for c in after[doc_id]} - hashes_before
    assert 0 < source["chunks"]["embedded"] == len(new_hashes) < len(after[doc_id]) + 1
    assert source["chunks"]["embedded"] < len(chunks[doc_id]) or len(chunks[doc_id]) <= 2
    assert source["chunks"]["written"] == len(after[doc_id])
    assert not any(old_line[:60] in c["text"] for c in after[doc_id])
    for other in doc_ids - {doc_id}:
        assert [c["chunk_hash"] for c in after[other]] == [c["chunk_hash"] for c in chunks[other]]
    hits = search(weaviate_client, collection_name, LocalEmbedder(), "zanzibar-quokka nonce echo", limit=3)
    assert hits[0].doc_id == doc_id and "zanzibar-quokka" in hits[0].text

    # 4. A deleted file: its chunks are pruned.
    (docs / "troubleshooting" / "server-wont-start.md").unlink()
    report, _ = run_ingest(config)
    source = report["sources"]["docs"]
    assert source["documents"]["deleted"] == 1 and source["prune"] == "done"
    after = indexed_chunks(weaviate_client, collection_name)
    assert "docs:troubleshooting/server-wont-start.md" not in after
    assert source["chunks"]["deleted"] == len(chunks["docs:troubleshooting/server-wont-start.md"])

    # 5. A failed file keeps only its own document: a file deleted in the same run is still pruned (issue 22).
    (docs / "guides" / "multi-environment.md").unlink()
    (docs / "guides" / "broken.md").write_bytes(b"# Broken\n\x00\x01binary")
    report, _ = run_ingest(config)
    source = report["sources"]["docs"]
    assert source["documents"]["failed"] == 1 and source["documents"]["deleted"] == 1
    assert "guides/broken.md" in source["failures"][0]["item"]
    assert source["prune"] == "done"
    assert "docs:guides/multi-environment.md" not in indexed_chunks(weaviate_client, collection_name)
