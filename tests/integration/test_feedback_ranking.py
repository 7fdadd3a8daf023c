"""Feedback that moves retrieval, end to end in process: the sample docs in a real Weaviate, the
local model, a real run store; `ask` with hidden chunks, operator pins and vote boosts, and a
curated answer served first with votes on it reaching the curated run."""

from __future__ import annotations

import pytest
import yaml

from conftest import copy_samples, write_config
from ragloop.answer import ask, curated_answer, format_answer
from ragloop.feedback.boosts import boost_multiplier
from ragloop.runs import RunRecorder, RunStore, VoteIn

pytestmark = pytest.mark.integration

QUESTION = "How long does an old SDK key keep working after rotation?"
PARAPHRASE = "After rotation, how long does an old SDK key keep working?"
UNRELATED = "Which signal makes fernd reopen its log files?"


@pytest.fixture(scope="module")
def knowledge_base(tmp_path_factory, weaviate_server):
    from ragloop.ingest import ingest

    folder = tmp_path_factory.mktemp("feedback-ranking")
    config = write_config(folder, "FeedbackRanking", copy_samples(folder), product="Fernwood")
    report = ingest("feedback-ranking-tests", str(config))
    assert report["sources"]["docs"]["documents"]["failed"] == 0
    return folder, config


def configured(knowledge_base, name: str, **ranking) -> str:
    folder, config = knowledge_base
    data = yaml.safe_load(config.read_text())
    data["feedback_ranking"] = ranking
    path = folder / f"sources-{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def store(tmp_path):
    with RunStore(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        yield store


def test_hidden_chunks_are_never_retrieved_and_pins_and_votes_move_the_rest(knowledge_base, store):
    boosted = configured(knowledge_base, "boosts", boosts=True)
    plain = configured(knowledge_base, "plain")
    before = ask(QUESTION, config_path=boosted, store=store)
    first, second = before.sources[0], before.sources[1]

    store.record_chunk_action(first.chunk_id, "hide", actor="ops", reason="outdated page")
    for config in (boosted, plain):  # hiding does not wait for the boosts switch
        assert first.chunk_id not in [s.chunk_id for s in ask(QUESTION, config_path=config, store=store).sources]
    store.record_chunk_action(first.chunk_id, "unhide", actor="ops", reason="fixed")

    store.record_chunk_action(second.chunk_id, "pin", actor="ops", reason="the canonical answer", boost=100)
    pinned = ask(QUESTION, config_path=boosted, store=store)
    assert pinned.sources[0].chunk_id == second.chunk_id
    assert pinned.sources[0].score == pytest.approx(second.score * boost_multiplier(100), abs=1e-3)
    assert ask(QUESTION, config_path=plain, store=store).sources[0].chunk_id == first.chunk_id  # boosts off: no pin
    store.record_chunk_action(second.chunk_id, "reset", actor="ops", reason="done")

    # Three users vote down an answer that cites the first chunk: its score is multiplied by its
    # (damped) boost, and the order follows the adjusted scores.
    with RunRecorder(app="tests", store=store):
        voted = ask(QUESTION, config_path=boosted, store=store)
    cited_first = voted.sources[0].chunk_id == first.chunk_id and "[1]" in voted.text
    assert cited_first, voted.text
    for user in ("ann", "bo", "cy"):
        store.add_vote(voted.run_id, VoteIn(vote="down", user_id=user))
    multiplier = store.chunk_adjustments([first.chunk_id])[first.chunk_id].multiplier
    assert 0.5 < multiplier < 1
    after = {s.chunk_id: s for s in ask(QUESTION, config_path=boosted, store=store).sources}
    assert after[first.chunk_id].score == pytest.approx(first.score * multiplier, abs=1e-3)
    scores = [s.score for s in after.values()]
    assert scores == sorted(scores, reverse=True)
    assert ask(QUESTION, config_path=plain, store=store).sources[0].chunk_id == first.chunk_id
    report = store.boost_report()
    assert report["demoted"][0]["chunk_id"] == first.chunk_id and report["demoted"][0]["down"] == 3


def test_a_curated_answer_is_served_first_and_votes_on_the_hit_reach_it(knowledge_base, store):
    curated_config = configured(knowledge_base, "curated", curated_answers=True)
    with RunRecorder(app="tests", store=store) as recorder:
        original = ask(QUESTION, config_path=curated_config)
        assert original.mode != "curated"  # nothing written back yet
        store.set_writeback(original.run_id, doc_id=f"qa:{original.run_id}", collection="FeedbackRanking", state="written")

        hit = ask(PARAPHRASE, config_path=curated_config, user_id="dee")
        assert hit.mode == "curated" and hit.text == original.text
        assert hit.curated["run_id"] == original.run_id and hit.curated["similarity"] >= 0.9
        assert [s.chunk_id for s in hit.sources] == [s.chunk_id for s in original.sources]
        assert f"curated answer of run {original.run_id}" in format_answer(hit)

        miss = ask(UNRELATED, config_path=curated_config)
        assert miss.mode != "curated"
        off = ask(PARAPHRASE, config_path=configured(knowledge_base, "off"))
        assert off.mode != "curated"  # off by default

        served = curated_answer(PARAPHRASE, config_path=curated_config)  # an app's own path
        assert served is not None and served.run_id in recorder.run_ids
    run = store.get_run(hit.run_id)
    assert run["metadata"]["curated"]["run_id"] == original.run_id and run["model"] == "curated"
    assert store.curated_hits()[0] | {"last_hit_at": None} == {
        "run_id": original.run_id, "question": QUESTION, "state": "written", "hits": 2,
        "last_hit_at": None, "lowest_similarity": store.curated_hits()[0]["lowest_similarity"],
    }
    store.add_vote(hit.run_id, VoteIn(vote="down", user_id="dee", comment="that key is gone now"))
    assert store.get_run(original.run_id)["vote_summary"]["down"] == 1
