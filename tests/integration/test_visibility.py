"""Visibility per source (issue 16): every chunk carries its source's `visibility`, search and
ask never retrieve above the caller's audience, and an answer drawn from an internal Slack thread
is written back as internal, so a public question never sees that thread, before or after
write-back. Real Weaviate, the local model, the sample docs and Slack export, a SQLite run store."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO, copy_samples
from ragloop.runs import RunRecorder, RunStore, VoteIn

pytestmark = pytest.mark.integration

SLACK_Q = "Behind Traefik our apps log that the flag stream is interrupted every 60 seconds. What setting fixes it?"
SLACK_PARAPHRASE = "Traefik cuts the fernwood flag stream every minute; which timeout do I raise?"
SLACK_THREAD = "samples-slack:C01FERNHELP/1740993120.000000"


@pytest.fixture(scope="module")
def knowledge_base(tmp_path_factory, weaviate_server):
    from ragloop.ingest import ingest

    folder = tmp_path_factory.mktemp("visibility")
    config = folder / "sources.yaml"
    config.write_text(yaml.safe_dump({
        "collection": "VisibilitySamples", "embedder": "local", "staging": f"file://{folder / 'staging'}",
        "sources": [
            {"id": "samples-docs", "type": "docs", "path": str(copy_samples(folder)), "url_template": "https://docs.example/{path}"},
            {"id": "samples-slack", "type": "slack", "export": str(REPO / "include" / "samples" / "slack")},  # internal by default
        ]}))
    for source_type in ("docs", "slack"):
        report = ingest(f"visibility-{source_type}", str(config), source_type=source_type)
        assert all(s["documents"]["failed"] == 0 for s in report["sources"].values()), report
    return config


def hits(client, question: str, audience: str, limit: int = 10):
    from ragloop.embedding import make_embedder
    from ragloop.index import search

    return search(client, "VisibilitySamples", make_embedder("local"), question, limit=limit, audience=audience)


def test_visibility_is_checked_in_the_config():
    from ragloop.config import ConfigError, load_config

    path = REPO / ".ragloop-visibility-test.yaml"
    path.write_text(yaml.safe_dump({"collection": "X", "sources": [
        {"id": "d", "type": "docs", "path": "include/samples/docs", "visibility": "secret"}]}))
    try:
        with pytest.raises(ConfigError, match="visibility must be one of public, internal, not 'secret'"):
            load_config(str(path))
    finally:
        path.unlink()


def test_a_public_question_never_sees_an_internal_slack_thread_before_or_after_write_back(
        knowledge_base, weaviate_client, tmp_path, monkeypatch, airflow_db, drill):
    from ragloop.answer import ask
    from ragloop.grading import grade_batch, select_runs, write_back
    from ragloop.staging import DagRunRef

    config = str(knowledge_base)
    internal = hits(weaviate_client, SLACK_Q, "internal")
    assert internal[0].doc_id == SLACK_THREAD and internal[0].visibility == "internal"
    assert {h.visibility for h in internal if h.kind == "docs"} == {"public"}
    public = hits(weaviate_client, SLACK_Q, "public", limit=50)
    leaked = [h for h in public if h.kind == "slack" or h.visibility != "public"]
    drill("visibility: public question answered by an internal Slack thread", "0 internal hits", f"{len(leaked)} internal hits")
    assert public and not [h for h in public if h.kind == "slack" or h.visibility != "public"]

    monkeypatch.setenv("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "runs.db")}))
    with RunStore(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        with RunRecorder(app="tests", store=store):
            asked_in = ask(SLACK_Q, config_path=config, audience="internal", limit=3)
            asked_out = ask(SLACK_Q, config_path=config, audience="public", limit=5)
        assert asked_in.sources[0].doc_id == SLACK_THREAD and asked_in.sources[0].visibility == "internal"
        assert not [s for s in asked_out.sources if s.kind == "slack"]
        store.add_vote(asked_in.run_id, VoteIn(vote="up", user_id="u1"))
        store.add_vote(asked_out.run_id, VoteIn(vote="up", user_id="u1"))
        for batch in select_runs(config):
            grade_batch(batch, config)
        result = write_back(DagRunRef("ragloop_grade_feedback", "visibility-1"), config)
        assert asked_in.run_id in {r["run_id"] for r in store.writebacks("written")}, result

    qa_internal = [h for h in hits(weaviate_client, SLACK_PARAPHRASE, "internal", limit=20) if h.kind == "qa"]
    assert f"qa:{asked_in.run_id}" in {h.doc_id for h in qa_internal}
    assert {h.visibility for h in qa_internal if h.doc_id == f"qa:{asked_in.run_id}"} == {"internal"}
    after = hits(weaviate_client, SLACK_PARAPHRASE, "public", limit=50) + hits(weaviate_client, SLACK_Q, "public", limit=50)
    seen = [h for h in after if h.visibility != "public" or h.kind == "slack" or h.doc_id == f"qa:{asked_in.run_id}"]
    drill("visibility: same question, public, after its internal answer was written back", "0 internal hits",
          f"{len(seen)} internal hits")
    assert not [h for h in after if h.visibility != "public" or h.kind == "slack" or h.doc_id == f"qa:{asked_in.run_id}"]


def test_a_collection_from_before_visibility_is_migrated_never_left_unfiltered(weaviate_client, collection_name):
    """A schema-2 collection (no visibility property) is upgraded on first use: every chunk gets
    its kind's default before any audience filter runs, so an old Slack chunk is never public."""
    from weaviate.classes.config import Configure, DataType, Property
    from weaviate.classes.data import DataObject

    from ragloop import index
    from ragloop.embedding import make_embedder
    from ragloop.index.schema import _embedder_record

    embedder = make_embedder("hash")
    record = {**_embedder_record(embedder), "schema_version": 2}
    weaviate_client.collections.create(
        name=collection_name, description=index.DESCRIPTION_PREFIX + json.dumps(record, sort_keys=True),
        vector_config=Configure.Vectors.self_provided(),
        properties=[Property(name=p, data_type=DataType.TEXT) for p in ("doc_id", "source_id", "kind", "text", "title", "url", "heading_path")]
        + [Property(name="chunk_count", data_type=DataType.INT)])
    vector = embedder.embed(["old thread about the flag stream"])[0]
    weaviate_client.collections.use(collection_name).data.insert_many([
        DataObject(properties={"doc_id": "s:1", "source_id": "s", "kind": "slack", "text": "old thread about the flag stream",
                               "title": "t", "chunk_count": 1}, vector=vector),
        DataObject(properties={"doc_id": "d:1", "source_id": "d", "kind": "docs", "text": "old page about the flag stream",
                               "title": "t", "chunk_count": 1}, vector=vector)])
    public = index.search(weaviate_client, collection_name, embedder, "flag stream", audience="public")
    assert [h.doc_id for h in public] == ["d:1"]
    everything = index.search(weaviate_client, collection_name, embedder, "flag stream", audience="internal")
    assert {(h.doc_id, h.visibility) for h in everything} == {("s:1", "internal"), ("d:1", "public")}
