"""Human review before write-back: which good answers wait for a person's approval (the config's
`review:`, per app or per cited source), what the reviewer is shown (question, answer, cited
passages as the index holds them, grades, votes), and recording the decision.

A decision is stored where grades are: an approval is a grade of the criterion `human_review`
by the judge `human:<reviewer>` (so the operator page counts it and the written-back answer's
provenance names it); a rejection is that grade failed, plus a revocation by hand with the
reviewer's reason, so the answer is kept out, and its content blocked, as `ragloop qa revoke`
keeps it out. No Airflow here: the feedback DAG's HITL operator (ragloop.airflow.review_operator) calls
`record_review` with what the person chose."""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
from datetime import UTC, datetime

from ragloop.config import load_config
from ragloop.documents import qa_doc_id
from ragloop.errors import RagloopError
from ragloop.grading.checks import cited_numbers
from ragloop.grading.grounding import UnitGrounder
from ragloop.grading.review_rules import (
    APPROVE,
    HUMAN_REVIEW,
    HUMAN_REVIEW_VERSION,
    REJECT,
    held_for_review,
)
from ragloop.grading.types import ReviewDecision, ReviewRequest
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.progress import progress
from ragloop.runs import RunStore, WritebackState, latest_votes
from ragloop.runs.models import voter

if TYPE_CHECKING:
    from ragloop.runs.models import QaRun

log = logging.getLogger(__name__)

MAX_PASSAGE_CHARS = 1500  # of each cited passage in the review body; the reviewer opens the URL for more


class ReviewError(RagloopError):
    """A review decision that cannot be recorded (unknown run, unknown option)."""


def _quoted(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in (text or "").strip().splitlines()) or "> (empty)"


def review_body(run: QaRun, latest: dict[str, dict], collection: str) -> str:
    """What the reviewer reads (markdown): the question, the answer, each cited passage as the
    index holds it now, the grades and the votes. `run` as `publishable` returns it."""
    sources = run.get("sources") or []
    lines = [
        f"**Question** (run `{run['run_id']}`, app `{run.get('app') or '-'}`, asked {run.get('created_at', '')})",
        "",
        _quoted(run["question"]),
        "",
        f"**Answer** (model `{run.get('model') or '-'}`)",
        "",
        _quoted(run["answer"]),
        "",
        "**Cited passages** (as the index holds them now)",
        "",
    ]
    for number in sorted(n for n in cited_numbers(run["answer"]) if 1 <= n <= len(sources)):
        source = sources[number - 1]
        text = source.get("text") or ""
        if len(text) > MAX_PASSAGE_CHARS:
            text = text[:MAX_PASSAGE_CHARS] + " …"
        lines += [
            f"[{number}] {source.get('title') or source.get('doc_id')} ({source.get('url') or source.get('doc_id')})",
            "",
            _quoted(text),
            "",
        ]
    lines += ["**Grades**", ""]
    for criterion, grade in sorted(latest.items()):
        verdict = "undecided" if grade["passed"] is None else "pass" if grade["passed"] else "fail"
        score = "" if grade["score"] is None else f" ({grade['score']:.2f})"
        lines.append(
            f"- {criterion}@{grade['criterion_version']} by {grade['judge']}: {verdict}{score}: {(grade['reason'] or '')[:300]}"
        )
    votes = list(latest_votes(run.get("votes") or []).values())
    lines += ["", "**Votes**", ""]
    lines += [f"- {v['vote']} by {voter(v)}" + (f": {v['comment']}" if v.get("comment") else "") for v in votes] or ["- none"]
    lines += [
        "",
        f"{APPROVE} writes this answer back into `{collection}`; {REJECT} keeps it out for good, as a revocation "
        "by hand does. Give your reason in the form: it is recorded with the decision.",
    ]
    return "\n".join(lines)


def review_requests(config_path: str | None = None, weaviate_conn_id: str = WEAVIATE_CONN_ID) -> list[ReviewRequest]:
    """One request per answer that write-back would publish now but that waits for review: it
    passed grading, has no down vote, passes the publication checks, and nobody decided on it yet.
    Empty when review is off."""
    from ragloop.grading.choice import criterion_versions
    from ragloop.grading.writeback import eligible_runs, local_embedder, publishable, revoked_answers

    config = load_config(config_path)
    if not config.review.enabled:
        progress("Review is off (no review: in %s): nothing waits for approval", config.path)
        return []
    with RunStore.default() as store:
        candidates, latest = eligible_runs(store, criterion_versions(config))
        written = {w["run_id"] for w in store.writebacks(WritebackState.WRITTEN)}
        revoked = revoked_answers(store)
    held = held_for_review(config, candidates, latest, written, weaviate_conn_id)
    waiting = [r for r in candidates if r["run_id"] in held]
    if not waiting:
        progress("No answer waits for review")
        return []
    ready, refused = publishable(waiting, config.collection, weaviate_conn_id, UnitGrounder(local_embedder(config)), revoked)
    for run_id, reason in refused.items():
        progress("Run %s is not proposed for review: %s", run_id, reason)
    requests: list[ReviewRequest] = []
    for run in ready:
        question = " ".join(run["question"].split())
        requests.append(
            {
                "qa_run_id": run["run_id"],
                "config_path": str(config.path),
                "weaviate_conn_id": weaviate_conn_id,
                "subject": f"Write back this answer? {question[:150]}{'…' if len(question) > 150 else ''}",
                "body": review_body(run, latest[run["run_id"]], config.collection),
            }
        )
        progress("Run %s %s", run["run_id"], held[run["run_id"]])
    return requests


def recorded_decision(
    qa_run_id: str, config_path: str | None = None, weaviate_conn_id: str = WEAVIATE_CONN_ID
) -> ReviewDecision | None:
    """The decision a person already gave on a run's answer, or None. A review task asks only
    about runs nobody decided on (`review_requests`), so a decision found by a later try of the
    same task was recorded by an earlier try that Airflow then failed after the fact (its
    stale-success race, see docs/review.md): that try's decision stands, and a rejection's
    revocation is made again (it is idempotent) in case the try died before it."""
    from ragloop.grading.writeback import revoke_by_hand

    with RunStore.default() as store:
        grade = store.latest_grades([qa_run_id]).get(qa_run_id, {}).get(HUMAN_REVIEW)
    if grade is None:
        return None
    reviewer = str(grade["judge"]).removeprefix("human:")
    if grade["passed"]:
        return {"qa_run_id": qa_run_id, "decision": "approved", "reviewer": reviewer, "reason": grade["reason"] or ""}
    revoke_by_hand(qa_run_id, f"rejected in review by {reviewer}: {grade['reason']}", config_path, weaviate_conn_id)
    return {"qa_run_id": qa_run_id, "decision": "rejected", "reviewer": reviewer, "reason": grade["reason"] or ""}


def record_review(
    qa_run_id: str,
    chosen: str,
    reviewer: str,
    reason: str = "",
    config_path: str | None = None,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> ReviewDecision:
    """Record a person's decision on a run's answer: `chosen` is APPROVE or REJECT."""
    from ragloop.grading.writeback import revoke_by_hand

    if chosen not in (APPROVE, REJECT):
        raise ReviewError(f"review of run {qa_run_id}: unknown option {chosen!r} (expected {APPROVE} or {REJECT})")
    reason = " ".join((reason or "").split())
    judge = f"human:{reviewer or 'unknown'}"
    passed = chosen == APPROVE
    recorded = reason or ("approved in review" if passed else "rejected in review (no reason given)")
    grade = {
        "criterion": HUMAN_REVIEW,
        "criterion_version": HUMAN_REVIEW_VERSION,
        "judge": judge[:200],
        "score": 1.0 if passed else 0.0,
        "passed": passed,
        "reason": recorded,
        "veto": None,
        "tokens": None,
    }
    with RunStore.default() as store:
        store.record_grades(qa_run_id, [grade], datetime.now(UTC))  # RunNotFound names the run
    if passed:
        log.info("Run %s approved by %s for write-back", qa_run_id, reviewer)
        return {"qa_run_id": qa_run_id, "decision": "approved", "reviewer": reviewer, "reason": recorded}
    why = f"rejected in review by {reviewer}: {recorded}"
    revoke_by_hand(qa_run_id, why, config_path, weaviate_conn_id)
    log.info("Run %s rejected by %s: %s; kept out of %s", qa_run_id, reviewer, recorded, qa_doc_id(qa_run_id))
    return {"qa_run_id": qa_run_id, "decision": "rejected", "reviewer": reviewer, "reason": recorded}
