"""The ingest task bodies on real Weaviate (hash embedder where the vectors' meaning does not
matter): no empty moment during a replace, bad files, Weaviate dying mid-write, and a collection
larger than one offset page."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import TEST_STATE, copy_samples, indexed_chunks, weaviate_conn_json, write_config

pytestmark = pytest.mark.integration


def ingest(config, run_id, **kwargs):
    from ragloop.ingest import ingest as run

    return run(run_id, str(config), **kwargs)


def test_replace_never_leaves_a_document_without_chunks(tmp_path, weaviate_server, weaviate_client, collection_name,
                                                       monkeypatch):
    """Checked where a gap cannot hide: every delete the ingest sends to Weaviate (the client's
    `delete_many`, whichever code path calls it) is intercepted, and the index's own state is
    read just before and just after it: the new version of the document must be whole in the
    index before anything is deleted, and still whole after. A reader polling the count could
    miss a short gap between two of its reads; this cannot. The reader stays as a second view."""
    from weaviate.classes.query import Filter
    from weaviate.collections.data import _DataCollection

    from ragloop.index import count_chunks

    docs = tmp_path / "docs"
    docs.mkdir()
    body = "\n\n".join(f"## Part {i}\n\n" + " ".join(f"word{i}x{j}" for j in range(150)) for i in range(300))
    (docs / "big.md").write_text("---\ntitle: Big\n---\n" + body)
    config = write_config(tmp_path, collection_name, docs, embedder="hash")
    first = ingest(config, "first")
    total = first["collection_chunks"]
    assert total >= 300
    handle = weaviate_client.collections.use(collection_name)
    old_hashes = {o.properties["doc_hash"] for o in handle.iterator(return_properties=["doc_hash"])}
    assert len(old_hashes) == 1
    old_hash = old_hashes.pop()

    def new_version_chunks() -> int:
        where = Filter.by_property("doc_id").equal("docs:big.md") & Filter.by_property("doc_hash").not_equal(old_hash)
        return int(handle.aggregate.over_all(total_count=True, filters=where).total_count or 0)

    deletes: list[tuple[int, int]] = []  # (new-version chunks just before a delete, just after)
    real_delete_many = _DataCollection.delete_many

    def observed_delete_many(self, *args, **kwargs):
        before = new_version_chunks()
        result = real_delete_many(self, *args, **kwargs)
        deletes.append((before, new_version_chunks()))
        return result

    monkeypatch.setattr(_DataCollection, "delete_many", observed_delete_many)

    # A new title changes the text of every chunk: the whole document is replaced.
    (docs / "big.md").write_text("---\ntitle: Bigger\n---\n" + body)
    counts: list[int] = []
    stop = threading.Event()

    def watch():
        from ragloop.index import connect

        with connect() as client:
            while not stop.is_set():
                counts.append(count_chunks(client, collection_name, "docs:big.md"))
                time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        second = ingest(config, "second")
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert second["sources"]["docs"]["documents"]["changed"] == 1
    assert second["sources"]["docs"]["chunks"]["embedded"] == total
    assert deletes, "the replace deleted nothing through Weaviate's delete_many: the old chunks were not removed"
    assert all(before == after == total for before, after in deletes), \
        f"a delete ran while the new version was not whole in the index (new chunks before, after; {total} expected): {deletes}"
    old_left = Filter.by_property("doc_id").equal("docs:big.md") & Filter.by_property("doc_hash").equal(old_hash)
    assert handle.aggregate.over_all(total_count=True, filters=old_left).total_count == 0  # the old version, gone
    assert min(counts, default=1) > 0, f"the document had no chunks at some moment: {counts[:50]}"
    assert count_chunks(weaviate_client, collection_name, "docs:big.md") == total


def test_bad_files_are_named_counted_and_the_rest_is_indexed(tmp_path, weaviate_server, weaviate_client, collection_name, caplog):
    docs = copy_samples(tmp_path)
    (docs / "latin.md").write_bytes(b"# Bad bytes\n\nNot text: \x81\x8d\x8f\x90\x9d here.\n")
    (docs / "empty.md").write_text("   \n\n")
    (docs / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    (docs / "huge.md").write_text("# Huge\n\n" + ("lorem ipsum dolor sit amet " * 200_000))  # about 5 MB
    (docs / "frontmatter.md").write_text("---\ntitle: [unclosed\n---\n# Front\n\nBody.\n")
    config = write_config(tmp_path, collection_name, docs, embedder="hash")
    caplog.set_level("INFO")
    report = ingest(config, "bad-files")
    source = report["sources"]["docs"]
    failed = {f["item"]: f["reason"] for f in source["failures"]}
    skipped = {f["item"]: f["reason"] for f in source["skipped_items"]}
    assert set(failed) == {"latin.md", "image.md", "huge.md", "frontmatter.md"}
    assert "UTF-8" in failed["latin.md"] and "binary" in failed["image.md"]
    assert "max_file_bytes" in failed["huge.md"] and "front matter" in failed["frontmatter.md"]
    assert set(skipped) == {"empty.md"}
    assert source["documents"]["failed"] == 4 and source["documents"]["skipped"] == 1
    for name in [*failed, *skipped]:
        assert any(name in record.getMessage() for record in caplog.records), f"no log line names {name}"
    indexed = indexed_chunks(weaviate_client, collection_name)
    sample_files = [p for p in (tmp_path / "docs").rglob("*") if p.suffix in (".md", ".rst")]
    assert len(indexed) == len(sample_files) - 5
    assert source["prune"] == "done"  # failed files keep their own documents; the listing is complete (issue 22)


def test_weaviate_stopped_mid_index_then_rerun_converges(tmp_path, weaviate_server, monkeypatch, collection_name):
    """A Weaviate of its own, stopped while the index task writes; after a restart a re-run gives
    exactly the chunks of a fresh reference ingest, per document."""
    from corpus import edit_one_line, generate

    import ragloop.index.writing
    from ragloop.index import WeaviateIndexError, connect
    from ragloop.catalog import INGEST_DAG_ID
    from ragloop.ingest import extract_source, index_batch, plan_ingest
    from ragloop.staging import DagRunRef
    from ragloop.local.weaviate_local import LocalWeaviate

    server = LocalWeaviate.with_free_ports(TEST_STATE / "weaviate-crash")
    server.state_dir.mkdir(parents=True, exist_ok=True)
    server.start(timeout=120)
    monkeypatch.setenv("AIRFLOW_CONN_WEAVIATE_DEFAULT", weaviate_conn_json(server))
    try:
        docs = tmp_path / "docs"
        paths = generate(docs, 400, seed=3)
        config = write_config(tmp_path, collection_name, docs, embedder="hash")
        ingest(config, "before")
        edit_one_line(paths, 1.0)  # every document changes: several write groups to interrupt

        crash_run = DagRunRef(INGEST_DAG_ID, "crash")
        extract_source("docs", crash_run, str(config))
        plan = plan_ingest(crash_run, ["docs"], str(config))
        write_objects = ragloop.index.writing.write_objects
        writes = []

        def write_then_stop_weaviate(*args, **kwargs):
            # The server goes down right after the first group of new chunks landed and before
            # their stale predecessors were deleted: the worst moment for consistency.
            written = write_objects(*args, **kwargs)
            writes.append(written)
            if len(writes) == 1:
                server.stop()
            return written

        monkeypatch.setattr(ragloop.index.writing, "write_objects", write_then_stop_weaviate)
        def index_every_batch() -> None:
            for batch in plan["batches"]:
                index_batch(batch, str(config))

        with pytest.raises(WeaviateIndexError, match=f"Weaviate at {server.url}"):
            index_every_batch()
        assert len(writes) == 1
        monkeypatch.setattr(ragloop.index.writing, "write_objects", write_objects)

        server.start(timeout=120)
        rerun = ingest(config, "after-restart")
        assert rerun["sources"]["docs"]["documents"]["changed"] > 0
        (tmp_path / "ref").mkdir()
        reference_config = write_config(tmp_path / "ref", collection_name + "Ref", docs, embedder="hash")
        reference = ingest(reference_config, "reference")
        with connect() as client:
            converged, fresh = indexed_chunks(client, collection_name), indexed_chunks(client, collection_name + "Ref")
        assert {d: [c["chunk_hash"] for c in cs] for d, cs in converged.items()} == \
               {d: [c["chunk_hash"] for c in cs] for d, cs in fresh.items()}
        assert rerun["collection_chunks"] == reference["collection_chunks"]
        again = ingest(config, "converged")
        assert again["totals"] == {"embedded": 0, "reused": 0, "written": 0, "deleted": 0}
    finally:
        server.stop()


def test_collection_larger_than_an_offset_page(tmp_path, weaviate_server, weaviate_client, collection_name):
    """Past Weaviate's 10,000-result offset cap: a no-change run embeds and writes nothing, and
    deleting files prunes exactly their chunks."""
    from corpus import delete_some, generate

    docs = tmp_path / "docs"
    paths = generate(docs, 3000, seed=5)
    config = write_config(tmp_path, collection_name, docs, embedder="hash")
    first = ingest(config, "large-1")
    assert first["collection_chunks"] > 10_000, first["collection_chunks"]

    again = ingest(config, "large-2")
    assert again["sources"]["docs"]["documents"]["unchanged"] == len(paths)
    assert again["totals"] == {"embedded": 0, "reused": 0, "written": 0, "deleted": 0}

    before = indexed_chunks(weaviate_client, collection_name)
    gone = delete_some(paths, 0.1)
    pruned = ingest(config, "large-3")
    gone_ids = {f"docs:{p.relative_to(docs).as_posix()}" for p in gone}
    assert pruned["sources"]["docs"]["documents"]["deleted"] == len(gone)
    assert pruned["totals"]["deleted"] == sum(len(before[d]) for d in gone_ids)
    after = indexed_chunks(weaviate_client, collection_name)
    assert set(after) == set(before) - gone_ids
    assert pruned["collection_chunks"] == sum(map(len, after.values()))


def test_refused_objects_fail_the_write_with_their_ids_and_reasons(weaviate_server, weaviate_client, collection_name):
    """A batch in which Weaviate refuses some objects never counts as written: the error names
    every refused object (uuid, document, chunk) and Weaviate's reason."""
    from ragloop.embedding import HashEmbedder
    from ragloop.index import ChunkObject, IndexWriteError, count_chunks, ensure_collection, write_objects

    embedder = HashEmbedder()
    ensure_collection(weaviate_client, collection_name, embedder)

    def chunk(doc_id: str, index: int, vector: list[float]) -> ChunkObject:
        from ragloop.documents import chunk_uuid

        return ChunkObject(
            uuid=chunk_uuid(doc_id, index),
            properties={"doc_id": doc_id, "source_id": "docs", "kind": "docs", "doc_hash": "h", "chunk_hash": f"c{index}",
                        "title": doc_id, "text": f"text {index}", "heading_path": "", "url": "", "chunk_index": index,
                        "chunk_count": 3, "metadata_json": "{}"},
            vector=vector,
        )

    good = embedder.embed(["a", "b"])
    assert write_objects(weaviate_client, collection_name, [chunk("docs:ok.md", 0, good[0])]) == 1
    batch = [chunk("docs:a.md", 0, good[1]), chunk("docs:bad.md", 1, [0.5] * 7), chunk("docs:a.md", 2, good[0])]
    with pytest.raises(IndexWriteError) as refused:
        write_objects(weaviate_client, collection_name, batch)
    message = str(refused.value)
    assert "refused 1 of 3 chunks" in message
    assert f"{batch[1].uuid} (docs:bad.md chunk 1)" in message and "length" in message
    assert count_chunks(weaviate_client, collection_name, "docs:bad.md") == 0
