"""The pure feedback maths: how a vote splits over cited chunks, how credits add up per voter,
the bounded multiplier, decay, and the curated-answer match."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ragloop.feedback.boosts import (
    MAX_MULTIPLIER,
    MIN_MULTIPLIER,
    BoostPolicy,
    CitedChunk,
    StoredCredit,
    add_up,
    boost_multiplier,
    cited_numbers,
    vote_credits,
)
from ragloop.feedback.curated import CuratedAnswer, best_match

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SOURCES = [
    CitedChunk("c1", "d1", "docs", "One", 0.9),
    CitedChunk("c2", "d2", "docs", "Two", 0.3),
    CitedChunk("c3", "d3", "slack", "Three", 0.6),
]


def test_the_multiplier_is_one_at_zero_and_bounded_and_monotonic():
    assert boost_multiplier(0) == pytest.approx(1.0)
    values = [boost_multiplier(b / 2) for b in range(-200, 201)]
    assert values == sorted(values)
    assert min(values) > MIN_MULTIPLIER and max(values) < MAX_MULTIPLIER
    assert boost_multiplier(1000) == pytest.approx(MAX_MULTIPLIER)
    assert boost_multiplier(-1000) == pytest.approx(MIN_MULTIPLIER)
    # Damped: one vote moves a score by under a fifth.
    assert 1.0 < boost_multiplier(1) < 1.2 and 0.8 < boost_multiplier(-1) < 1.0


def test_a_vote_is_split_over_the_cited_chunks_by_retrieval_score():
    credits = vote_credits(SOURCES, "Rotate the key [1]. Then restart [3].", "up")
    assert {c.chunk_id: round(c.credit, 4) for c in credits} == {"c1": 0.6, "c3": 0.4}
    down = vote_credits(SOURCES, "Rotate the key [1, 3].", "down")
    assert {c.chunk_id: round(c.credit, 4) for c in down} == {"c1": -0.6, "c3": -0.4}


def test_an_answer_citing_nothing_spreads_the_vote_over_every_retrieved_chunk():
    credits = vote_credits(SOURCES, "No markers here.", "up")
    assert sum(c.credit for c in credits) == pytest.approx(1.0)
    assert {c.chunk_id for c in credits} == {"c1", "c2", "c3"}


def test_chunks_without_scores_share_equally_and_out_of_range_citations_are_ignored():
    unscored = [CitedChunk("a", "d", "docs", "", None), CitedChunk("b", "d", "docs", "", 0.0)]
    assert [c.credit for c in vote_credits(unscored, "[1][2][9]", "up")] == [0.5, 0.5]
    assert vote_credits([CitedChunk("", "d", "docs", "", 1.0)], "[1]", "up") == []
    with pytest.raises(ValueError, match="up or down"):
        vote_credits(SOURCES, "[1]", "sideways")


def test_citations_read_as_grading_reads_them():
    from ragloop.grading.checks import cited_numbers as grading_cited

    for text in ["[1]", "[1, 3] and [2][4]", "[12345] [0]", "none", "[1,2,3]"]:
        assert cited_numbers(text) == grading_cited(text)


def test_one_voter_moves_a_chunk_by_at_most_one_vote_however_many_runs():
    credits = [StoredCredit("c1", "mallory", "docs", 1.0, NOW) for _ in range(50)]
    credits += [StoredCredit("c1", "alice", "docs", -0.4, NOW), StoredCredit("c2", "alice", "docs", 0.25, NOW)]
    assert add_up(credits, NOW) == pytest.approx({"c1": 0.6, "c2": 0.25})


def test_decay_halves_a_vote_per_half_life_for_the_kinds_named_only():
    policy = BoostPolicy(half_life_days={"slack": 30})
    old = NOW - timedelta(days=60)
    credits = [StoredCredit("s", "u", "slack", 1.0, old), StoredCredit("d", "u", "docs", 1.0, old)]
    assert add_up(credits, NOW, policy) == pytest.approx({"s": 0.25, "d": 1.0})


def test_the_closest_curated_question_above_the_threshold_is_served():
    a = CuratedAnswer("r1", "qa/r1", "How do I rotate keys?", "Like this [1].")
    b = CuratedAnswer("r2", "qa/r2", "How do I restart?", "So.")
    candidates = [(a, [1.0, 0.0]), (b, [0.8, 0.6])]
    match = best_match([0.9, 0.1], candidates, threshold=0.9)
    assert match is not None and match.curated.run_id == "r1" and match.similarity > 0.99
    assert best_match([0.0, 1.0], candidates, threshold=0.9) is None
    assert best_match([0.0, 1.0], [], threshold=0.0) is None


def test_operator_actions_fold_into_the_chunks_control():
    from ragloop.feedback.boosts import ChunkAction, adjustment, fold_actions

    def act(action, minutes, boost=None):
        return ChunkAction("c", action, "ops", "why", NOW + timedelta(minutes=minutes), boost)

    control = fold_actions([act("pin", 1, 4.0), act("hide", 2)])
    assert (control.pinned, control.hidden) == (4.0, True)
    assert adjustment(control, -9.0, boosts_on=True).hidden
    assert adjustment(control, -9.0, boosts_on=False).hidden  # hiding does not wait for the switch
    control = fold_actions([act("pin", 1, 4.0), act("hide", 2), act("unhide", 3)])
    assert adjustment(control, -9.0, boosts_on=True).multiplier == pytest.approx(boost_multiplier(4.0))
    assert adjustment(control, -9.0, boosts_on=False).multiplier == 1.0
    reset = fold_actions([act("pin", 1, 4.0), act("reset", 5)])
    assert reset.pinned is None and reset.reset_at == NOW + timedelta(minutes=5)
    assert adjustment(fold_actions([act("pin", 1, 4.0), act("unpin", 2)]), -3.0, boosts_on=True).multiplier < 1


def test_the_feedback_ranking_section_is_off_by_default_and_checked(tmp_path):
    from ragloop.config import ConfigError, load_config

    path = tmp_path / "sources.yaml"
    path.write_text("collection: C\nsources: []\n")
    assert load_config(path).feedback_ranking.boosts is False
    assert load_config(path).feedback_ranking.curated_answers is False
    path.write_text("collection: C\nfeedback_ranking:\n  boosts: true\n  half_life_days: {slack: 30}\nsources: []\n")
    ranking = load_config(path).feedback_ranking
    assert ranking.boosts and dict(ranking.half_life_days) == {"slack": 30.0}
    for bad, message in [
        ("boosts: yes please", "feedback_ranking.boosts must be true or false"),
        ("curated_threshold: 1.5", "curated_threshold must be a number above 0 and at most 1"),
        ("half_life_days: {slack: -1}", "half_life_days must map kinds to a positive number"),
        ("boost: true", "unknown keys boost"),
    ]:
        path.write_text(f"collection: C\nfeedback_ranking:\n  {bad}\nsources: []\n")
        with pytest.raises(ConfigError, match=f"sources.yaml:2: .*{message}"):
            load_config(path)
