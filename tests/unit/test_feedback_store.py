"""Votes that move sources, operators' chunk actions and curated-answer hits in the run store,
on a real SQLite file and a real PostgreSQL database (every test runs on both)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ragloop.feedback.boosts import boost_multiplier
from ragloop.runs import RunIn, RunStore, RunStoreError, VoteIn
from ragloop.runs.store import ChunkActionInvalid


@pytest.fixture
def store(runs_db_url):
    with RunStore(runs_db_url) as store:
        yield store


def a_run(store, *, visibility="internal", answer="Rotate it [1]. Restart [2].", metadata=None, question="How do I rotate keys?"):
    sources = [
        {"doc_id": "d1", "chunk_id": "c1", "score": 0.75, "kind": "docs", "title": "Keys", "visibility": visibility},
        {"doc_id": "d2", "chunk_id": "c2", "score": 0.25, "kind": "slack", "title": "Thread", "visibility": visibility},
        {"doc_id": "d3", "chunk_id": "c3", "score": 0.9, "kind": "docs", "title": "Uncited", "visibility": visibility},
    ]
    run = RunIn(question=question, answer=answer, sources=sources, metadata=metadata or {})
    return store.record_run(run)[0]


def multipliers(store, audience="internal", **kwargs):
    return {c: round(a.multiplier, 4) for c, a in store.chunk_adjustments(["c1", "c2", "c3"], audience=audience, **kwargs).items()}


def test_a_vote_moves_the_cited_chunks_by_their_share_and_each_users_latest_vote_counts(store):
    run_id = a_run(store)
    store.add_vote(run_id, VoteIn(vote="up", user_id="alice"))
    assert multipliers(store) == {"c1": round(boost_multiplier(0.75), 4), "c2": round(boost_multiplier(0.25), 4)}
    store.add_vote(run_id, VoteIn(vote="up", user_id="alice"))  # the same vote again: still one
    assert multipliers(store)["c1"] == round(boost_multiplier(0.75), 4)
    store.add_vote(run_id, VoteIn(vote="down", user_id="alice"))  # changed her mind: only the latest counts
    assert multipliers(store) == {"c1": round(boost_multiplier(-0.75), 4), "c2": round(boost_multiplier(-0.25), 4)}
    assert multipliers(store, boosts_on=False) == {}


def test_one_user_voting_on_many_runs_moves_a_chunk_by_one_vote_at_most(store):
    for _ in range(6):
        store.add_vote(a_run(store), VoteIn(vote="up", user_id="mallory"))
    assert multipliers(store)["c1"] == round(boost_multiplier(1.0), 4)
    store.add_vote(a_run(store), VoteIn(vote="up", user_id="alice"))
    assert multipliers(store)["c1"] == round(boost_multiplier(1.75), 4)


def test_public_ranking_moves_only_with_votes_on_runs_a_public_viewer_could_see(store):
    store.add_vote(a_run(store, visibility="internal"), VoteIn(vote="down", user_id="alice"))
    assert multipliers(store, audience="public") == {}
    assert multipliers(store, audience="internal")["c1"] < 1
    store.add_vote(a_run(store, visibility="public"), VoteIn(vote="up", user_id="bob"))
    assert multipliers(store, audience="public")["c1"] > 1


def test_votes_arriving_with_a_recorded_or_imported_run_count_too(store, tmp_path):
    run = RunIn(
        question="q", answer="[1]", sources=[{"doc_id": "d1", "chunk_id": "c1", "score": 1.0}], votes=[{"vote": "down", "user_id": "u"}]
    )
    store.record_run(run)
    assert multipliers(store) == {"c1": round(boost_multiplier(-1.0), 4)}


def test_pin_reset_and_hide_are_recorded_with_who_when_why_and_shown(store):
    run_id = a_run(store)
    store.add_vote(run_id, VoteIn(vote="down", user_id="alice"))
    store.record_chunk_action("c1", "pin", actor="ops", reason="the canonical page", boost=6.0)
    assert multipliers(store)["c1"] == round(boost_multiplier(6.0), 4)
    store.record_chunk_action("c1", "reset", actor="ops", reason="start over")
    assert "c1" not in multipliers(store)  # the earlier down vote no longer counts
    store.record_chunk_action("c2", "hide", actor="ops", reason="leaks a hostname")
    assert store.chunk_adjustments(["c2"], boosts_on=False)["c2"].hidden
    report = store.boost_report()
    assert [r["chunk_id"] for r in report["demoted"]] == ["c2"] and report["demoted"][0]["down"] == 1
    assert report["demoted"][0]["hidden"] is True
    history = {c["chunk_id"]: c for c in report["controlled"]}
    assert [h["action"] for h in history["c1"]["history"]] == ["reset", "pin"]
    assert history["c1"]["history"][1] | {"acted_at": None} == {
        "action": "pin", "boost": 6.0, "actor": "ops", "reason": "the canonical page", "acted_at": None
    }
    assert history["c2"]["hidden"] is True and history["c1"]["reset_at"]
    store.record_chunk_action("c2", "unhide", actor="ops", reason="fixed at the source")
    assert not store.chunk_adjustments(["c2"]).get("c2", None) or not store.chunk_adjustments(["c2"])["c2"].hidden


@pytest.mark.parametrize(
    ("action", "boost", "reason", "message"),
    [
        ("promote", None, "x", "action must be one of"),
        ("pin", None, "x", "boost must be a number"),
        ("pin", 1e6, "x", "boost must be a number"),
        ("hide", 1.0, "x", "takes no boost"),
        ("hide", None, " ", "who and why are both required"),
    ],
)
def test_a_bad_chunk_action_is_refused_naming_what_is_wrong(store, action, boost, reason, message):
    with pytest.raises(ChunkActionInvalid, match=message):
        store.record_chunk_action("c1", action, actor="ops", reason=reason, boost=boost)


def test_a_curated_hit_is_counted_and_votes_on_it_reach_the_curated_answer(store):
    curated = a_run(store, visibility="public")
    store.set_writeback(curated, doc_id=f"qa/{curated}", collection="C", state="written")
    candidates = store.curated_candidates(audience="public")
    assert [(c.run_id, c.question) for c in candidates] == [(curated, "How do I rotate keys?")]
    hit = a_run(store, visibility="public", metadata={"curated": {"run_id": curated, "similarity": 0.93}}, question="Rotating keys?")
    assert store.curated_hits() == [
        {"run_id": curated, "question": "How do I rotate keys?", "state": "written", "hits": 1,
         "last_hit_at": store.curated_hits()[0]["last_hit_at"], "lowest_similarity": 0.93}
    ]
    store.add_vote(hit, VoteIn(vote="down", user_id="carol", comment="outdated"))
    curated_run = store.get_run(curated)
    assert curated_run["vote_summary"]["down"] == 1
    assert curated_run["votes"][0]["comment"] == f"on curated hit {hit}: outdated"
    # The passed-on vote does not move the chunks twice: the hit's own credits do.
    assert multipliers(store)["c1"] == round(boost_multiplier(-0.75), 4)
    store.set_writeback(curated, doc_id=f"qa/{curated}", collection="C", state="revoked", reason="down vote")
    assert store.curated_candidates() == []


def test_a_hit_naming_an_unknown_curated_run_is_refused(store):
    with pytest.raises(RunStoreError, match=r"metadata\.curated\.run_id 'nope' is not a stored run"):
        a_run(store, metadata={"curated": {"run_id": "nope", "similarity": 1.0}})


def test_migration_5_credits_the_votes_cast_before_it(runs_db_url):
    with RunStore(runs_db_url) as store:
        run_id = a_run(store)
        store.add_vote(run_id, VoteIn(vote="up", user_id="alice"))
        with store.engine.begin() as connection:  # back to schema 4, the vote kept
            for table in ("ragloop_vote_credits", "ragloop_chunk_actions", "ragloop_curated_hits"):
                connection.execute(sa.text(f"DROP TABLE {table}"))
            connection.execute(sa.text("DELETE FROM ragloop_schema WHERE version = 5"))
    with RunStore(runs_db_url) as store:
        assert multipliers(store)["c1"] == round(boost_multiplier(0.75), 4)
