"""Written-back answers never crowd out the docs (issue 22): with 15 written-back answers on
one topic, every top-5 hit of a question on it was a written-back answer; search and `ask`'s
retrieval now give them at most `written_back_share` of the top k (default one of five)."""

from __future__ import annotations

from datetime import datetime, UTC

import pytest

from conftest import copy_samples, write_config

pytestmark = pytest.mark.integration

COLLECTION = "CrowdingSamples"
# Fifteen questions on tokens and keys: each gets its extractive answer written back as the
# feedback loop would (qa_document over the answer and its sources).
WRITTEN_BACK_QUESTIONS = [
    "How do I rotate an SDK key without downtime?", "How long does the old key keep working after rotation?",
    "What is the grace period when rotating SDK keys?", "How do I create an admin token?",
    "How long do admin tokens last by default?", "What is the maximum lifetime of a token?",
    "How do I revoke a token?", "What scopes can an admin token have?", "What prefix do server SDK keys have?",
    "Can client keys be public?", "How are tokens stored?", "What happens to tokens when a user is deleted?",
    "How often is the last used timestamp of a token updated?", "How do I create a new SDK key for a service?",
    "What error do SDKs get when their old key stops working?",
]  # fmt: skip
QUESTIONS = [
    "How do I rotate an SDK key?", "How long is a token valid?", "How do I revoke an admin token?",
    "Which key should a browser app use?", "What does the checksum in a token do?",
    "When does an old SDK key stop working?", "How do I give a token only read access to flags?",
    "What does fern token list show?",
]  # fmt: skip


@pytest.fixture(scope="module")
def crowded(tmp_path_factory, weaviate_server):
    from ragloop.chunking import ChunkingSettings, chunker_for
    from ragloop.embedding import make_embedder
    from ragloop.index import connect
    from ragloop.ingest import ingest

    folder = tmp_path_factory.mktemp("crowding")
    config = write_config(folder, COLLECTION, copy_samples(folder))
    assert ingest("crowding-tests", str(config))["sources"]["docs"]["documents"]["failed"] == 0
    embedder = make_embedder("local")
    chunker = chunker_for(embedder, ChunkingSettings())
    objects = []
    with connect() as weaviate_client:
        write_answers(weaviate_client, embedder, chunker, objects)
    return embedder


def write_answers(weaviate_client, embedder, chunker, objects) -> None:
    from ragloop.answer import extractive_answer, retrieve
    from ragloop.grading.writeback import qa_document
    from ragloop.runs.models import QaRun
    from ragloop.index.writing import chunk_object, write_objects

    for number, question in enumerate(WRITTEN_BACK_QUESTIONS):
        sources = retrieve(weaviate_client, COLLECTION, embedder, [question], 5)
        run: QaRun = {"run_id": f"crowd{number:02d}", "question": question, "answer": extractive_answer(question, sources),
               "created_at": datetime.now(UTC).isoformat(), "model": "extractive",
               "sources": [{**s.to_json(), "visibility": "public"} for s in sources]}
        document = qa_document(run, {})
        chunks = chunker.split(document)
        vectors = embedder.embed([c.text for c in chunks])
        objects += [chunk_object(document, c, "test", len(chunks), v) for c, v in zip(chunks, vectors, strict=False)]
    write_objects(weaviate_client, COLLECTION, objects)


def share_of_written_back(client, embedder, share: float) -> tuple[int, int, int]:
    """(hits that are written-back answers, hits, questions whose every hit is one)."""
    from ragloop.index import search

    per_question = [search(client, COLLECTION, embedder, q, limit=5, written_back_share=share) for q in QUESTIONS]
    hits = [h for found in per_question for h in found]
    crowded_out = sum(all(h.kind == "qa" for h in found) for found in per_question)
    return sum(h.kind == "qa" for h in hits), len(hits), crowded_out


def test_written_back_answers_take_at_most_one_of_five(crowded, weaviate_client, drill):
    unbounded, total, no_docs = share_of_written_back(weaviate_client, crowded, 1.0)
    print(f"\nwithout a bound: {unbounded} of {total} top-5 hits over {len(QUESTIONS)} questions are written-back answers; "
          f"{no_docs} questions get no doc at all")
    assert no_docs >= 1 and unbounded >= 0.5 * total  # the crowding of issue 22, reproduced
    bounded, total, no_docs = share_of_written_back(weaviate_client, crowded, 0.2)
    print(f"with the default bound (0.2): {bounded} of {total}; {no_docs} questions without a doc")
    drill("crowding: 15 written-back answers on one topic, 8 questions, top 5", f"at most {len(QUESTIONS)} of {total} hits qa",
          f"{bounded} of {total} hits qa (unbounded: {unbounded})", ok=bounded <= len(QUESTIONS))
    assert total == 5 * len(QUESTIONS)
    from ragloop.index import search

    for question in QUESTIONS:
        hits = search(weaviate_client, COLLECTION, crowded, question, limit=5)
        assert sum(h.kind == "qa" for h in hits) <= 1 and len(hits) == 5, question
    # Asking for written-back answers by kind is not bounded; a share of 0 keeps them out.
    assert all(h.kind == "qa" for h in search(weaviate_client, COLLECTION, crowded, QUESTIONS[0], limit=5, kinds=["qa"]))
    assert share_of_written_back(weaviate_client, crowded, 0.0)[0] == 0 and no_docs == 0


def test_retrieval_for_answers_keeps_the_bound_over_all_rewrites(crowded, weaviate_client):
    from ragloop.answer import retrieve

    sources = retrieve(weaviate_client, COLLECTION, crowded, QUESTIONS[:4], 5)
    assert sum(s.written_back for s in sources) <= 1 and len(sources) == 5
    assert sum(s.written_back for s in retrieve(weaviate_client, COLLECTION, crowded, QUESTIONS[:4], 5, written_back_share=1.0)) >= 4


def test_the_share_is_read_from_sources_yaml(tmp_path):
    from ragloop.config import ConfigError, load_config

    path = tmp_path / "sources.yaml"
    path.write_text("collection: X\nwritten_back_share: 0.4\n")
    assert load_config(str(path)).written_back_share == 0.4
    path.write_text("collection: X\nwritten_back_share: 2\n")
    with pytest.raises(ConfigError, match="written_back_share must be a number from 0 to 1"):
        load_config(str(path))
