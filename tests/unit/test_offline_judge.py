"""The offline judge on the hand-labelled runs: its agreement with the labels is printed and
must stay at or above the figures stated next to its thresholds in ragloop/grading/offline_judge.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ragloop import grading

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from judge import agreement, load_labelled, measure_all


@pytest.fixture(scope="module")
def labelled():
    rows = load_labelled()
    return rows, measure_all(rows)


def test_the_labelled_set_is_well_formed_and_passes_the_checks(labelled):
    from ragloop.runs import RunIn

    rows, _ = labelled
    assert len(rows) >= 30 and len({r["id"] for r in rows}) == len(rows)
    assert {r["good"] for r in rows} == {True, False} and {r["relevant"] for r in rows} == {True, False}
    for row in rows:
        RunIn.model_validate({k: v for k, v in row["run"].items() if k != "vote_summary"})
        assert row["good"] == (row["relevant"] and row["grounded"] and not row["run"]["vote_summary"]["down"]), row["id"]
        # The set is about the judge's thresholds: no run in it may be vetoed by the checks.
        assert grading.run_checks(row["run"]) == [], row["id"]


def test_offline_judge_agreement_with_the_labels(labelled):
    rows, measures = labelled
    result = agreement(rows, measures, grading.RELEVANCE_THRESHOLD, grading.SUPPORT_THRESHOLD, grading.GROUNDED_THRESHOLD)
    print(f"\noffline judge agreement on {len(rows)} labelled runs: {result} (stated: {grading.LABELLED_AGREEMENT})")
    for key, stated in grading.LABELLED_AGREEMENT.items():
        assert result[key] >= stated, f"{key} agreement {result[key]} fell below the stated {stated}"


def test_offline_verdicts_match_the_measures(labelled):
    """The judge's own verdicts (not only the calibration's arithmetic) use the thresholds."""
    rows, measures = labelled
    judge = grading.OfflineJudge()
    for row, measure in list(zip(rows, measures, strict=False))[:8]:
        verdicts = {v.criterion: v for v in judge.grade(row["run"], list(grading.CRITERIA))}
        assert verdicts["relevance"].passed == (measure["relevance"] >= grading.RELEVANCE_THRESHOLD)
        assert verdicts["relevance"].judge == "offline:all-MiniLM-L6-v2" and verdicts["relevance"].version == "offline-1"
        votes = row["run"]["vote_summary"]
        helpful = verdicts["helpfulness"]
        if votes["up"] + votes["down"]:
            assert helpful.passed == (votes["up"] / (votes["up"] + votes["down"]) >= 0.7) and helpful.judge == "offline:votes"
        else:
            assert helpful.passed is None and helpful.score is None and "no votes yet" in helpful.reason
        assert verdicts["publicness"].passed is True
