"""The feedback-lift bench's figures (bench/lift_metrics.py) and its days (bench/lift_data.py) on
hand cases: recall@5 and MRR@5 of a labelled document, a written-back answer counting when it
cites that document, harm against no feedback, and the schedule of first and repeated questions."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from lift_data import doc_id_of, repeat_text, schedule
from lift_metrics import Hit, Outcome, first_rank, harm, mrr, recall_at, summarise

GOOD = "so:so-7.md"


def test_rank_counts_the_document_or_an_answer_citing_it():
    hits = [Hit("so:so-1.md"), Hit("qa:run-a", frozenset({"so:so-2.md"})), Hit("qa:run-b", frozenset({GOOD})), Hit(GOOD)]
    assert first_rank(hits, GOOD) == 3  # the written-back answer that cites it comes first
    assert first_rank(hits, "so:so-2.md") == 2
    assert first_rank(hits, "so:so-9.md") is None
    # Only the top k count: the document at rank 6 is a miss at k=5.
    assert first_rank([Hit(f"so:so-{n}.md") for n in range(10, 15)] + [Hit(GOOD)], GOOD) is None


def test_recall_and_mrr_on_a_hand_case():
    ranks = [1, 2, None, 5]
    assert recall_at(ranks, 5) == pytest.approx(3 / 4)
    assert recall_at(ranks, 1) == pytest.approx(1 / 4)
    assert mrr(ranks, 5) == pytest.approx((1 + 1 / 2 + 0 + 1 / 5) / 4)
    assert mrr(ranks, 2) == pytest.approx((1 + 1 / 2) / 4)  # rank 5 is cut at k=2
    assert recall_at([]) is None and mrr([]) is None


def test_harm_counts_demoted_and_lost_good_sources():
    baseline = {"1/first": 1, "2/first": 3, "3/first": None, "4/repeat": 2, "5/repeat": None}
    variant = [Outcome("1/first", "first", 2), Outcome("2/first", "first", None), Outcome("3/first", "first", None),
               Outcome("4/repeat", "repeat", 1), Outcome("5/repeat", "repeat", 4), Outcome("6/repeat", "repeat", 1)]
    found = harm(baseline, variant)
    assert (found.demoted, found.lost, found.demoted_ids) == (2, 1, ["1/first", "2/first"])
    assert found.promoted == 2  # 4/repeat moved up, 5/repeat found where it was not; 6 has no baseline


def test_summary_splits_first_and_repeat_and_counts_wrong_curated_hits():
    outcomes = [Outcome("1/first", "first", 1), Outcome("1/repeat", "repeat", 1, curated=True, curated_correct=True),
                Outcome("2/repeat", "repeat", None, curated=True, curated_correct=False), Outcome("3/first", "first", 4)]
    summary = summarise(outcomes)
    assert summary["all"]["recall@5"] == 0.75 and summary["all"]["mrr"] == pytest.approx(round((1 + 1 + 0.25) / 4, 3))
    assert summary["repeat"] == {"questions": 2, "recall@5": 0.5, "mrr": 0.5, "curated_share": 1.0, "curated_hits": 2,
                                 "wrong_curated_hits": 1}
    assert summary["first"]["mrr"] == pytest.approx(0.625) and summary["first"]["curated_hits"] == 0


def test_repeat_text_keeps_prose_and_drops_code():
    body = ("I'm writing a DAG that uses a **PythonOperator**.\n\n    with DAG('x') as dag:\n        op = PythonOperator()\n\n"
            "How am I supposed to pass the callable from another file? It fails.")
    text = repeat_text(body, words=12)
    assert "with DAG" not in text and "**" not in text
    assert text == "I'm writing a DAG that uses a PythonOperator. How am I supposed to pass the callable from another file?"


def test_schedule_asks_each_thread_first_then_in_other_words_a_day_later():
    threads = [SimpleNamespace(thread_id=n, title=f"title {n}", question=f"body of question {n} in more words.") for n in range(4)]
    days = schedule(threads, days=2)
    asked = [[q.question_id for q in day.questions] for day in days]
    assert asked == [["0/first", "2/first"], ["1/first", "3/first", "0/repeat", "2/repeat"], ["1/repeat", "3/repeat"]]
    assert {q.expected_doc_id for q in days[2].questions} == {doc_id_of(1), doc_id_of(3)}
