"""Human review before write-back and the LLM path's reply problems, without servers: the config
switch, who waits, what the reviewer reads, the review task's options, and how a reply that gave
no verdict is classified. End to end under the scheduler: tests/integration/test_review.py."""

from __future__ import annotations

import pytest

from ragloop.config import ConfigError, Review, load_config
from ragloop.grading.llm_judge import reply_problem
from ragloop.grading.review import review_body
from ragloop.grading.review_rules import APPROVE, REJECT, approved, review_reason


def write(tmp_path, text: str):
    path = tmp_path / "sources.yaml"
    path.write_text(f"sources:\n  - {{id: docs, type: docs, path: {tmp_path}}}\n" + text)
    return path


def test_review_is_off_unless_configured(tmp_path):
    assert not load_config(write(tmp_path, "")).review.enabled
    assert not load_config(write(tmp_path, "review: none\n")).review.enabled
    assert load_config(write(tmp_path, "review: all\n")).review == Review(everything=True)
    review = load_config(write(tmp_path, "review: {apps: [widget], sources: [docs]}\n")).review
    assert review.enabled and review.apps == {"widget"} and review.sources == {"docs"}


@pytest.mark.parametrize(("text", "message"), [
    ("review: sometimes\n", r"sources.yaml:3: review must be none, all, or a mapping"),
    ("review: {app: [x]}\n", r"sources.yaml:3: unknown review key 'app'"),
    ("review: {apps: widget}\n", r"review.apps must be a list of non-empty strings"),
    ("review: {sources: [slack]}\n", r"review.sources names 'slack', not a source of this file \(known: docs\)"),
])
def test_review_mistakes_name_the_line_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_who_waits_for_review():
    run = {"run_id": "r1", "app": "widget"}
    assert review_reason(Review(), run, {"docs"}) is None
    assert review_reason(Review(everything=True), run, set()) == "review: all"
    assert review_reason(Review(apps=frozenset({"widget"})), run, set()) == "recorded by app 'widget'"
    assert review_reason(Review(apps=frozenset({"other"})), run, {"docs"}) is None
    assert review_reason(Review(sources=frozenset({"docs"})), {"run_id": "r2", "app": None}, {"docs", "slack"}) == "cites source 'docs'"
    assert approved({"human_review": {"passed": True}}) and not approved({"human_review": {"passed": False}}) and not approved({})


def test_the_reviewer_reads_question_answer_cited_passages_grades_and_votes():
    run = {
        "run_id": "r1", "app": "widget", "created_at": "2026-12-01T10:00:00+00:00", "model": "extractive",
        "question": "How long does an old key work?",
        "answer": "The old key keeps working for the grace period [2].\n{{ dag_run.conf }}",
        "sources": [{"doc_id": "docs:a.md", "title": "A", "url": "https://docs.example/a", "text": "not cited"},
                    {"doc_id": "docs:b.md", "title": "Rotation", "url": "https://docs.example/b",
                     "text": "Rotation issues a new key.\nThe old key keeps working for the grace period."}],
        "votes": [{"vote": "up", "user_id": "u1", "comment": "exactly right"}],
    }
    latest = {"relevance": {"criterion_version": "2", "judge": "offline:local", "score": 0.91, "passed": True,
                            "reason": "on the question"}}
    body = review_body(run, latest, "Docs")
    assert "> How long does an old key work?" in body and "> {{ dag_run.conf }}" in body
    assert "[2] Rotation (https://docs.example/b)" in body and "> The old key keeps working for the grace period." in body
    assert "not cited" not in body  # only the passages the answer cites
    assert "- relevance@2 by offline:local: pass (0.91): on the question" in body
    assert "- up by u1: exactly right" in body and "`Docs`" in body


def test_the_review_task_offers_approve_and_reject_and_renders_no_template():
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from ragloop.airflow.review_operator import ReviewAnswerOperator

    assert (APPROVE, REJECT) == (ApprovalOperator.APPROVE, ApprovalOperator.REJECT)
    op = ReviewAnswerOperator(task_id="review_answer", qa_run_id="r1", config_path=None, weaviate_conn_id="weaviate_default",
                              subject="Write back?", body="{{ 7 * 7 }}")
    assert op.options == ["Approve", "Reject"] and not op.multiple and "reason" in op.params
    assert tuple(op.template_fields) == ()
    held = op.execute_complete({}, {"error": "timed out", "error_type": "timeout"})
    assert held == {"qa_run_id": "r1", "decision": "held", "reviewer": "", "reason": "no decision in time"}


@pytest.mark.parametrize(("text", "finish", "error", "kind"), [
    ('{"score": 0.9, "reason": "fine', "length", "not JSON (Unterminated string at column 23)", "too_long"),
    ("I'm sorry, but I can't grade this answer.", "stop", "not JSON (Expecting value at column 1)", "refusal"),
    ("Sorry, as an AI I cannot judge.", "stop", "not JSON (Expecting value at column 1)", "refusal"),
    ("Score: 0.8. The answer is relevant.", "stop", "not JSON (Expecting value at column 1)", "malformed_json"),
    ('{"score": 8, "reason": "good"}', "stop", "score: Input should be less than or equal to 1", "invalid_verdict"),
    ('["score", 1]', "stop", "not a JSON object", "malformed_json"),
])
def test_a_reply_without_a_verdict_is_classified(text, finish, error, kind):
    assert reply_problem(text, finish, error) == kind


def test_a_retried_review_task_keeps_the_decision_an_earlier_try_recorded(tmp_path, monkeypatch):
    """Airflow can fail a review task after the person answered (its stale-success race): the
    retry returns the recorded decision, asks nobody again and records no second grade."""
    import json
    from types import SimpleNamespace

    from airflow.providers.standard.operators.hitl import HITLOperator

    from ragloop.grading.review import record_review
    from ragloop.airflow.review_operator import ReviewAnswerOperator
    from ragloop.runs import RunIn, RunStore

    monkeypatch.setenv("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "runs.db")}))
    with RunStore.default() as store:
        run_id, _ = store.record_run(RunIn(question="q?", answer="a [1].", model="m", prompt_name="answer"))
    op = ReviewAnswerOperator(task_id="review_answer", qa_run_id=run_id, config_path=None, weaviate_conn_id="weaviate_default",
                              subject="Write back?", body="b")
    # Airflow's own request (it needs a running task's supervisor): seen as "asked".
    monkeypatch.setattr(HITLOperator, "execute", lambda self, context: "asked")
    retried = {"ti": SimpleNamespace(try_number=2)}
    assert op.execute(retried) == "asked"  # nothing recorded yet: the retry asks (the earlier try died before an answer)
    assert record_review(run_id, APPROVE, "ann", "checked")["decision"] == "approved"
    assert op.execute(retried) == {"qa_run_id": run_id, "decision": "approved", "reviewer": "ann", "reason": "checked"}
    with RunStore.default() as store:
        grades = [g for g in store.get_run(run_id)["grades"] if g["criterion"] == "human_review"]
    assert len(grades) == 1
