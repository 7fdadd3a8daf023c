"""Issue 26: the per-document records on real Weaviate. A plan reads one record per document; a
collection indexed before records existed gets them automatically; and an index task killed
(SIGKILL, a real process) between its chunk writes and its record write converges on the re-run
with nothing lost or duplicated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from conftest import REPO, indexed_chunks, write_config

pytestmark = pytest.mark.integration


def ingest(config, run_id, **kwargs):
    from ragloop.ingest import ingest as run

    return run(run_id, str(config), **kwargs)


def chunk_hashes(client, collection: str) -> dict[str, list[str]]:
    return {d: [c["chunk_hash"] for c in cs] for d, cs in indexed_chunks(client, collection).items()}


def records_agree_with_chunks(client, collection: str) -> list[str]:
    """What is wrong: a complete record whose chunks are not exactly its count, all of its hash."""
    from ragloop.index import read_records

    chunks = indexed_chunks(client, collection)
    wrong = []
    for doc_id, record in read_records(client, collection).items():
        if record.complete_hash is None:
            continue
        held = chunks.get(doc_id, [])
        if len(held) != record.chunk_count or {c["doc_hash"] for c in held} != {record.doc_hash}:
            wrong.append(f"{doc_id}: record {record.chunk_count} chunks of {record.doc_hash[:8]}, index {len(held)}")
    return wrong


# Runs in a child process: the index task, with groups of 40 chunks, killed by SIGKILL right after
# the second group's chunks were written and its stale chunks deleted, before its records are.
CRASHING_INDEX_TASK = """
import os, signal, sys
import ragloop.ingest.indexing
import ragloop.index.records as records
from ragloop.index import RECORD_COMPLETE
from ragloop.ingest import index_batch

ragloop.ingest.indexing.GROUP_CHUNKS = 40
real_write_records = records.write_records
finished = []

def write_records_or_die(client, name, written):
    if written and all(r.state == RECORD_COMPLETE for r in written):
        finished.append(len(written))
        if len(finished) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_write_records(client, name, written)

records.write_records = write_records_or_die
config, batches = sys.argv[1], sys.argv[2:]
for batch in batches:
    index_batch(batch, config)
print("not killed")
"""


def test_index_task_killed_between_chunks_and_records_converges(tmp_path, weaviate_server, weaviate_client, collection_name):
    from corpus import delete_some, edit_one_line, generate

    from ragloop.catalog import INGEST_DAG_ID
    from ragloop.index import read_records
    from ragloop.ingest import extract_source, plan_ingest
    from ragloop.staging import DagRunRef

    docs = tmp_path / "docs"
    paths = generate(docs, 60, seed=3)
    config = write_config(tmp_path, collection_name, docs, embedder="hash")
    ingest(config, "before")
    edit_one_line(paths, 1.0)  # every document changes
    longest = max(paths, key=lambda p: p.stat().st_size)
    longest.write_text(longest.read_text()[:300])  # one shrinks: its tail chunks become stale
    gone = delete_some([p for p in paths if p != longest], 0.05)

    crash_run = DagRunRef(INGEST_DAG_ID, "crash")
    extract_source("docs", crash_run, str(config))
    plan = plan_ingest(crash_run, ["docs"], str(config))
    child = subprocess.run([sys.executable, "-c", CRASHING_INDEX_TASK, str(config), *plan["batches"]],
                           capture_output=True, text=True, timeout=600, cwd=REPO)
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr

    records = read_records(weaviate_client, collection_name)
    assert sum(1 for r in records.values() if r.complete_hash is None) > 0  # the killed groups' documents
    assert records_agree_with_chunks(weaviate_client, collection_name) == []

    rerun = ingest(config, "after-crash")
    assert rerun["sources"]["docs"]["documents"]["changed"] > 0
    assert rerun["sources"]["docs"]["documents"]["deleted"] == len(gone)
    (tmp_path / "ref").mkdir()
    reference_config = write_config(tmp_path / "ref", collection_name + "Ref", docs, embedder="hash")
    reference = ingest(reference_config, "reference")
    assert chunk_hashes(weaviate_client, collection_name) == chunk_hashes(weaviate_client, collection_name + "Ref")
    assert rerun["collection_chunks"] == reference["collection_chunks"]  # nothing duplicated
    assert records_agree_with_chunks(weaviate_client, collection_name) == []
    assert set(read_records(weaviate_client, collection_name)) == set(read_records(weaviate_client, collection_name + "Ref"))
    again = ingest(config, "converged")
    assert again["totals"] == {"embedded": 0, "reused": 0, "written": 0, "deleted": 0}


def test_a_collection_without_records_is_migrated_automatically(tmp_path, weaviate_server, weaviate_client, collection_name):
    """A schema-4 collection (no records beside it): the next ingest writes a record per document
    from the chunks, trusts only documents whose chunks form one write, and marks the collection
    schema 5."""
    from corpus import generate
    from weaviate.classes.query import Filter

    from ragloop.index import DESCRIPTION_PREFIX, SCHEMA_VERSION, read_records, records_collection_name

    docs = tmp_path / "docs"
    generate(docs, 30, seed=9)
    config = write_config(tmp_path, collection_name, docs, embedder="hash")
    first = ingest(config, "first")
    handle = weaviate_client.collections.use(collection_name)
    # Back to schema 4: no records collection, and the description says 4.
    weaviate_client.collections.delete(records_collection_name(collection_name))
    recorded = json.loads(handle.config.get().description[len(DESCRIPTION_PREFIX):])
    handle.config.update(description=DESCRIPTION_PREFIX + json.dumps({**recorded, "schema_version": 4}, sort_keys=True))
    # One document half-written, as a crash under schema 4 could leave it: its first chunk gone.
    chunks = indexed_chunks(weaviate_client, collection_name)
    half = next(d for d, cs in sorted(chunks.items()) if len(cs) > 1)
    handle.data.delete_many(where=Filter.by_property("doc_id").equal(half) & Filter.by_property("chunk_index").equal(0))

    after = ingest(config, "after-migration")
    counted = after["sources"]["docs"]["documents"]
    assert (counted["unchanged"], counted["changed"], counted["new"]) == (len(chunks) - 1, 1, 0)
    assert after["totals"]["written"] == len(chunks[half])  # only the half-written one is rewritten
    assert after["collection_chunks"] == first["collection_chunks"]
    assert json.loads(handle.config.get().description[len(DESCRIPTION_PREFIX):])["schema_version"] == SCHEMA_VERSION == 5
    assert set(read_records(weaviate_client, collection_name)) == set(chunks)
    assert records_agree_with_chunks(weaviate_client, collection_name) == []
