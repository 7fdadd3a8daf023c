"""The ids-only listing of the Source contract (Onyx's "slim" listing), on a real Weaviate with a
source defined in a temporary project outside ragloop: an incremental run of a source that
offers `list_ids` prunes the notes gone from the source; without it, or when that listing is
incomplete, the incremental run prunes nothing."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import indexed_chunks
from custom_source_project import write_project

pytestmark = pytest.mark.integration

NOTES = [
    {"id": "deploy-freeze", "title": "Deploy freeze", "updated": "2026-11-01",
     "body": "# Deploy freeze\n\nThe deploy freeze starts every Friday at 15:00 UTC."},
    {"id": "pager-rota", "title": "Pager rota", "updated": "2026-11-02",
     "body": "# Pager rota\n\nThe pager rota changes hands on Tuesdays at 10:00."},
    {"id": "coffee", "title": "Coffee", "updated": "2026-11-03",
     "body": "# Coffee\n\nThe coffee machine on floor 3 is descaled on Mondays."},
]


@pytest.fixture
def project(tmp_path, monkeypatch, weaviate_server):
    folder = write_project(tmp_path / "acme")
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m == "acme_kb" or m.startswith("acme_kb.")]:
        del sys.modules[name]


def write_notes(folder, notes, index=True):
    (folder / "notes.jsonl").write_text("".join(json.dumps(note) + "\n" for note in notes))
    if index:
        (folder / "index.txt").write_text("".join(note["id"] + "\n" for note in notes))
    else:
        (folder / "index.txt").unlink(missing_ok=True)


def ingest(folder, collection, class_name, run_id, full_listing=False):
    """The ingest stages in order, as the DAG runs them, for one source of the project's."""
    import yaml

    from ragloop.ingest.extract import extract_source
    from ragloop.ingest.indexing import index_batch
    from ragloop.ingest.plan import plan_ingest
    from ragloop.ingest.prune import prune_sources
    from ragloop.staging import DagRunRef

    config = folder / "sources.yaml"
    config.write_text(yaml.safe_dump({
        "collection": collection, "embedder": "hash", "staging": f"file://{folder / 'staging'}",
        "sources": [{"id": "notes", "type": f"acme_kb.notes:{class_name}", "path": str(folder / "notes.jsonl")}],
    }))
    dag_run = DagRunRef("acme_notes_ingest", run_id)
    extract_source("notes", dag_run, str(config), full_listing)
    plan = plan_ingest(dag_run, ["notes"], str(config))
    for batch in plan["batches"]:
        index_batch(batch, str(config))
    return prune_sources(dag_run, str(config))["sources"]["notes"]


@pytest.mark.parametrize(("class_name", "offers_ids"), [("SlimNotesSource", True), ("PolledNotesSource", False)])
def test_an_incremental_run_prunes_from_the_ids_only_listing(project, weaviate_client, collection_name, class_name,
                                                            offers_ids):
    write_notes(project, NOTES)
    first = ingest(project, collection_name, class_name, "first", full_listing=True)
    assert first["documents_deleted"] == 0
    assert set(indexed_chunks(weaviate_client, collection_name)) == {f"notes:{n['id']}" for n in NOTES}

    # The coffee note is deleted and nothing else changes: the incremental read yields nothing.
    write_notes(project, NOTES[:2])
    second = ingest(project, collection_name, class_name, "second")
    left = set(indexed_chunks(weaviate_client, collection_name))
    if offers_ids:
        assert left == {"notes:deploy-freeze", "notes:pager-rota"}
        assert second["documents_deleted"] == 1
        assert "ids-only listing of 2 documents: 1 gone from the source" in second["prune"]
    else:
        assert left == {f"notes:{n['id']}" for n in NOTES}  # only a full-listing run would notice
        assert second["documents_deleted"] == 0


def test_an_incomplete_ids_only_listing_prunes_nothing(project, weaviate_client, collection_name):
    write_notes(project, NOTES)
    ingest(project, collection_name, "SlimNotesSource", "first", full_listing=True)
    write_notes(project, NOTES[:2], index=False)  # the index file cannot be read: a gap naming no note
    second = ingest(project, collection_name, "SlimNotesSource", "second")
    assert set(indexed_chunks(weaviate_client, collection_name)) == {f"notes:{n['id']}" for n in NOTES}
    assert second["documents_deleted"] == 0
    assert "the ids-only listing is incomplete: 1 items failed to list" in second["prune"]


def test_ids_only_listing_keeps_a_note_read_in_this_run(project, weaviate_client, collection_name):
    """A note changed in this run but missing from a stale index file is re-indexed, not pruned:
    the documents the run read count as listed."""
    write_notes(project, NOTES)
    ingest(project, collection_name, "SlimNotesSource", "first", full_listing=True)
    changed = {**NOTES[2], "updated": "2026-11-20", "body": "# Coffee\n\nThe machine is descaled on Fridays now."}
    write_notes(project, [*NOTES[:2], changed])
    (project / "index.txt").write_text("deploy-freeze\npager-rota\n")
    second = ingest(project, collection_name, "SlimNotesSource", "second")
    chunks = indexed_chunks(weaviate_client, collection_name)
    assert set(chunks) == {f"notes:{n['id']}" for n in NOTES}
    assert "Fridays now" in chunks["notes:coffee"][0]["text"]
    assert second["documents_deleted"] == 0
