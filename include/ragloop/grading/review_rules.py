"""Which good answers wait for a person's approval before write-back (the config's `review:`,
per app or per cited source) and whether a person approved one: the rules write-back applies
(`held_for_review`) and the review tasks show. Below both ragloop.grading.writeback and
ragloop.grading.review, which asks for and records the decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragloop.config import Config, Review
from ragloop.grading.checks import cited_numbers
from ragloop.grading.grounding import chunk_ids_of
from ragloop.index import connect, fetch_chunks

if TYPE_CHECKING:
    from ragloop.runs.models import QaRun

HUMAN_REVIEW = "human_review"  # the criterion a review decision is stored under
HUMAN_REVIEW_VERSION = "1"
APPROVE, REJECT = "Approve", "Reject"  # the options the reviewer picks from (ApprovalOperator's words)


def review_reason(review: Review, run: QaRun, cited_source_ids: set[str]) -> str | None:
    """Why this run waits for review under `review`, or None when it does not."""
    if review.everything:
        return "review: all"
    if run.get("app") in review.apps:
        return f"recorded by app {run['app']!r}"
    sources = sorted(cited_source_ids & review.sources)
    if sources:
        return f"cites source {sources[0]!r}"
    return None


def approved(latest: dict[str, dict]) -> bool:
    """Whether a person approved the run (its latest `human_review` grade passed)."""
    grade = latest.get(HUMAN_REVIEW)
    return bool(grade and grade["passed"] is True)


def cited_source_ids(runs: list[QaRun], indexed: dict[str, dict]) -> dict[str, set[str]]:
    """run id -> the source ids of the chunks its answer cites, as the index holds them."""
    found: dict[str, set[str]] = {}
    for run in runs:
        sources = run.get("sources") or []
        chunk_ids = [
            str(sources[n - 1].get("chunk_id") or "") for n in cited_numbers(run.get("answer") or "") if 1 <= n <= len(sources)
        ]
        found[run["run_id"]] = {indexed[c]["source_id"] for c in chunk_ids if c in indexed and indexed[c].get("source_id")}
    return found


def held_for_review(
    config: Config,
    candidates: list[QaRun],
    latest: dict[str, dict[str, dict]],
    written_before: set[str],
    weaviate_conn_id: str,
) -> dict[str, str]:
    """run id -> why it waits: the candidates for write-back that need review and have no
    approval. An answer written back before review was switched on stays (it is not revoked by
    the switch; revoke it by hand if it must go). Review off: nothing waits."""
    review = config.review
    if not review.enabled:
        return {}
    waiting = [r for r in candidates if r["run_id"] not in written_before and not approved(latest.get(r["run_id"], {}))]
    if not waiting:
        return {}
    indexed: dict[str, dict] = {}
    if review.sources:
        with connect(weaviate_conn_id) as client:
            indexed = fetch_chunks(client, config.collection, chunk_ids_of(waiting))
    sources = cited_source_ids(waiting, indexed)
    held = {}
    for run in waiting:
        why = review_reason(review, run, sources[run["run_id"]])
        if why:
            held[run["run_id"]] = f"waits for review ({why})"
    return held
