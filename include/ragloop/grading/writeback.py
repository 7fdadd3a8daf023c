"""Writing good runs back into the knowledge base as `qa` documents, and revoking them: by the
feedback DAG (`write_back`) or by hand (`revoke_by_hand`); `list_written_back` reads the index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime

from ragloop.config import load_config
from ragloop.documents import QA_SOURCE_ID, Document, Kind, Visibility, qa_doc_id, qa_run_id
from ragloop.grading.checks import answer_body, cited_numbers, normalise, normalized, run_checks
from ragloop.grading.grounding import (
    SOURCE_NOT_INDEXED,
    SOURCE_TEXT_DIFFERS,
    UnitGrounder,
    chunk_ids_of,
    unsupported_units,
    verify_sources,
)
from ragloop.grading.choice import criterion_versions
from ragloop.grading.review_rules import held_for_review
from ragloop.grading.types import UngradedRun, WritebackResult
from ragloop.grading.verdicts import CHECKS
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import connect, delete_documents, fetch_chunks, read_indexed_documents
from ragloop.ingest import finish_staging, ingest_staged_listings, pruned_doc_ids, stage_documents
from ragloop.ingest.indexing import add_index_counts, empty_index_counts
from ragloop.progress import progress
from ragloop.links import safe_link
from ragloop.runs import RunStore, WritebackState, latest_votes, writeback_state
from ragloop.runs.models import voter
from ragloop.sources.base import ExtractReport
from ragloop.staging import DagRunRef

if TYPE_CHECKING:
    from ragloop.runs.models import QaRun


def qa_document(run: QaRun, latest: dict[str, dict]) -> Document:
    """A good run as a Document of kind `qa`: the question as title, the answer, links to the
    sources it cites (numbered as in the answer), and its provenance in the metadata. `run` is the
    run as `publishable` returns it: its sources as the index holds them, every field checked."""
    sources = run.get("sources") or []
    cited = sorted(n for n in cited_numbers(run["answer"]) if 1 <= n <= len(sources))
    lines = [answer_body(run["answer"]), "", "Sources:"]
    for number in cited:
        source = sources[number - 1]
        # A published answer is markdown that other surfaces render: only a URL that may be a link
        # (http, https, ragloop) becomes one; any other is left out and the doc id stands for it.
        target = safe_link(source.get("url")) or source.get("doc_id")
        lines.append(f"- [{number}] [{source.get('title') or source.get('doc_id')}](<{target}>)")
    title = " ".join(run["question"].split())
    # An answer drawn from any internal passage is internal: it never reaches public retrieval.
    public = all(s.get("visibility") == Visibility.PUBLIC for s in sources)
    return Document(
        doc_id=qa_doc_id(run["run_id"]),
        source_id=QA_SOURCE_ID,
        kind=Kind.QA.value,
        title=title if len(title) <= 300 else title[:299] + "…",
        content="\n".join(lines),
        url=f"ragloop://runs/{run['run_id']}",
        updated_at=datetime.fromisoformat(run["created_at"]),
        metadata={
            "run_id": run["run_id"],
            "asked_at": run["created_at"],
            "model": run["model"],
            "cited_sources": [sources[n - 1].get("doc_id") for n in cited],
            "graded_by": grader_versions(latest),
        },
        visibility=Visibility.PUBLIC.value if public else Visibility.INTERNAL.value,
    )


PUBLISH_VETOES = {
    "secret",
    "email",
    "phone",
    "iban",
    "card_number",
    "ssn",
    "prompt_injection",
    SOURCE_NOT_INDEXED,
    SOURCE_TEXT_DIFFERS,
}
REVOKED_CONTENT = "revoked_content"

# --- revocation by content -----------------------------------------------------------------------
# A revocation judges an answer's content, not its run id: extractive answers are deterministic,
# so the same question asked again records the same answer under a new run id. A revoked
# answer's fingerprint (sha256 of its body, normalised: NFKC, format characters gone, case,
# punctuation and spacing folded, citations kept out) blocks that text for good. Near-duplicates
# are blocked too: answer similarity of at least NEAR_DUPLICATE_SIMILARITY (all-MiniLM-L6-v2
# cosine; 0.95 is a changed word or two, reordered citations, another quote mark: wording, not
# content) on a question at least NEAR_QUESTION_SIMILARITY alike (0.80: the same question
# reworded). The question condition keeps a revocation from spreading to other questions whose
# good answer happens to share most of its words; the exact fingerprint needs no question.
NEAR_DUPLICATE_SIMILARITY = 0.95
NEAR_QUESTION_SIMILARITY = 0.80


def content_fingerprint(answer: str) -> str:
    """The fingerprint of an answer's content, as revocation by content compares it."""
    from ragloop.grading.checks import CITATION

    body = normalized(normalise(CITATION.sub(" ", answer_body(answer))))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass
class RevokedAnswer:
    run_id: str
    question: str
    answer: str
    fingerprint: str
    reason: str


def revoked_answers(store: RunStore) -> list[RevokedAnswer]:
    """The answers whose revocation judged their content: revoked by hand, or revoked after a
    user's down vote. (A run revoked because a criterion's version changed, or its source changed,
    was not judged bad, and blocks nothing.)"""
    by_hand = {w["run_id"]: w for w in store.writebacks(WritebackState.REVOKED_BY_HAND)}
    revoked = {w["run_id"]: w for w in store.writebacks(WritebackState.REVOKED)}
    runs = store.get_runs(sorted(set(by_hand) | set(revoked)))
    answers = []
    for run in runs:
        if run["run_id"] in by_hand or run["vote_summary"]["down"]:
            record = by_hand.get(run["run_id"]) or revoked[run["run_id"]]
            reason = (
                record.get("revoke_reason")
                or record.get("reason")
                or ("revoked by hand" if run["run_id"] in by_hand else "down vote")
            )
            answers.append(
                RevokedAnswer(run["run_id"], run["question"], run["answer"], content_fingerprint(run["answer"]), reason)
            )
    return answers


def revoked_match(run: QaRun, revoked: list[RevokedAnswer], embedder) -> str | None:
    """Why `run` repeats a revoked answer (its fingerprint, or a near-duplicate on a near
    question), or None."""
    fingerprint = content_fingerprint(run["answer"])
    for answer in revoked:
        if answer.run_id != run["run_id"] and answer.fingerprint == fingerprint:
            return f"the same content as the revoked answer of run {answer.run_id} ({answer.reason})"
    others = [a for a in revoked if a.run_id != run["run_id"]]
    if not others or embedder is None:
        return None
    texts = [run["question"], answer_body(run["answer"])] + [t for a in others for t in (a.question, answer_body(a.answer))]
    vectors = embedder.embed(texts)

    def cosine(a, b) -> float:
        return sum(x * y for x, y in zip(a, b, strict=False))

    for index, answer in enumerate(others):
        question_similarity = cosine(vectors[0], vectors[2 + 2 * index])
        answer_similarity = cosine(vectors[1], vectors[3 + 2 * index])
        if answer_similarity >= NEAR_DUPLICATE_SIMILARITY and question_similarity >= NEAR_QUESTION_SIMILARITY:
            return (
                f"a near-duplicate (answer similarity {answer_similarity:.3f}, question {question_similarity:.3f}) "
                f"of the revoked answer of run {answer.run_id} ({answer.reason})"
            )
    return None


def publishable(
    runs: list[QaRun],
    collection: str,
    weaviate_conn_id: str,
    grounder: UnitGrounder | None = None,
    revoked: list[RevokedAnswer] | None = None,
) -> tuple[list[QaRun], dict[str, str]]:
    """The runs as write-back publishes them (each cited source's doc id, title, URL and text as
    the index holds them now), and, by run id, why a run cannot be published: a cited chunk gone
    from the index or changed, a field that fails the checks, a unit of the answer the cited
    chunks do not support (with `grounder`), or content already revoked (`revoked`). Grades were
    given on what the run said; this is the last look at what the index will say."""
    with connect(weaviate_conn_id) as client:
        indexed = fetch_chunks(client, collection, chunk_ids_of(runs))
    ready, refused = [], {}
    for run in runs:
        verified, vetoes = verify_sources(run, indexed)
        vetoes += [v for v in run_checks(verified) if v.reason in PUBLISH_VETOES]
        if grounder is not None and not vetoes:
            _, unsupported = unsupported_units(verified, grounder)
            if unsupported is not None:
                vetoes.append(unsupported)
        problems = [f"{v.reason}: {v.detail}" for v in vetoes]
        if revoked:
            repeated = revoked_match(run, revoked, grounder.embedder if grounder is not None else None)
            if repeated:
                problems.append(f"{REVOKED_CONTENT}: {repeated}")
        if problems:
            refused[run["run_id"]] = "not publishable: " + "; ".join(problems)
        else:
            ready.append(verified)
    return ready, refused


def local_embedder(config):
    """The local model for grounding: the configured embedder when it is the local one (loaded once)."""
    from ragloop.embedding import LocalEmbedder, make_embedder

    embedder = make_embedder(config.embedder)
    return embedder if isinstance(embedder, LocalEmbedder) else LocalEmbedder()


def grader_versions(latest: dict[str, dict]) -> dict[str, str]:
    """criterion -> "criterion@version by judge", from a run's latest grades."""
    return {c: f"{c}@{g['criterion_version']} by {g['judge']}" for c, g in sorted(latest.items())}


def why_not_good(run: QaRun, latest: dict[str, dict], versions: dict[str, str]) -> str:
    """Why a run is not (or no longer) good, in one line."""
    downs = [v for v in latest_votes(run.get("votes") or []).values() if v["vote"] == "down"]
    if downs:
        return "down vote by " + "; ".join(voter(v) + (f": {v['comment']}" if v.get("comment") else "") for v in downs)
    if writeback_state(run) is WritebackState.REVOKED_BY_HAND:
        record = run.get("writeback")
        return (record["revoke_reason"] if record else None) or "revoked by hand"
    checks = latest.get(CHECKS)
    if checks and checks["veto"]:
        return f"vetoed ({checks['veto']}): {checks['reason']}"
    reasons = []
    for criterion, version in versions.items():
        grade = latest.get(criterion)
        if grade is None:
            reasons.append(f"{criterion}@{version} not graded yet")
        elif grade["criterion_version"] != version:
            reasons.append(f"graded with {criterion}@{grade['criterion_version']}, not yet with {criterion}@{version}")
        elif grade["passed"] is not True:
            score = "no score" if grade["score"] is None else f"{grade['score']:.2f}"
            reasons.append(
                f"{criterion}@{version} {'undecided' if grade['passed'] is None else 'fails'} ({score}): {grade['reason'][:120]}"
            )
    return "; ".join(reasons) or "no longer eligible"


def eligible_runs(store: RunStore, versions: dict[str, str]) -> tuple[list[QaRun], dict[str, dict[str, dict]]]:
    """The runs write-back would publish before its last checks (every criterion passed at its
    current version, no down vote, not revoked by hand), and their latest grades by run id."""
    passing = store.get_runs(store.passing_run_ids(versions))
    # A run a curated answer served is not written back again: its answer is already in the
    # index (as the curated run's), and votes on it reach that run.
    candidates = [
        r
        for r in passing
        if not r["vote_summary"]["down"]
        and writeback_state(r) is not WritebackState.REVOKED_BY_HAND
        and not (r.get("metadata") or {}).get("curated")
    ]
    return candidates, store.latest_grades([r["run_id"] for r in candidates])


def write_back(dag_run: DagRunRef, config_path: str | None = None, weaviate_conn_id: str = WEAVIATE_CONN_ID) -> WritebackResult:
    """Stage every good run as a `qa` document, a complete listing, then plan, index and prune
    it like any source: new good runs are written, changed ones rewritten, and runs no longer
    good (a down vote, a failing grade after a criterion changed, revoked by hand) pruned."""
    started = time.monotonic()
    config = load_config(config_path)
    versions = criterion_versions(config)
    with RunStore.default() as store:
        candidates, latest = eligible_runs(store, versions)
        written_before = {w["run_id"]: w for w in store.writebacks(WritebackState.WRITTEN)}
        revoked = revoked_answers(store)
    # Answers held for a person's approval (config `review:`) are left out of the listing until
    # approved; a rejection revokes them by hand, so they never become candidates again.
    held = held_for_review(config, candidates, latest, set(written_before), weaviate_conn_id)
    for run_id, why in held.items():
        progress("Run %s is not written back yet: it %s", run_id, why)
    candidates = [r for r in candidates if r["run_id"] not in held]
    good, refused = publishable(candidates, config.collection, weaviate_conn_id, UnitGrounder(local_embedder(config)), revoked)
    for run_id, reason in refused.items():
        progress("Run %s is not written back: %s", run_id, reason)
    documents = [qa_document(run, latest[run["run_id"]]) for run in good]
    report = ExtractReport(QA_SOURCE_ID)
    report.seen = len(documents)
    progress("Write-back: %d good runs (%d written back before)", len(good), len(written_before))
    stage_documents(config, dag_run, QA_SOURCE_ID, documents, report, lists_everything=True)
    ingested = ingest_staged_listings(dag_run, [QA_SOURCE_ID], config_path, weaviate_conn_id)
    plan, indexed, pruned = ingested["plan"], ingested["batches"], ingested["prune"]
    removed = pruned_doc_ids(ingested, QA_SOURCE_ID)

    # A revocation by hand may have landed while this ran (`revoke_by_hand` records its state
    # before it deletes): take those answers out again; the store refuses to mark them written.
    with RunStore.default() as store:
        hand_revoked = {w["run_id"] for w in store.writebacks(WritebackState.REVOKED_BY_HAND)} & {r["run_id"] for r in good}
    if hand_revoked:
        with connect(weaviate_conn_id) as client:
            delete_documents(client, config.collection, [qa_doc_id(run_id) for run_id in sorted(hand_revoked)])
        progress("Revoked by hand while writing back, taken out again: %s", ", ".join(sorted(hand_revoked)))
        good = [r for r in good if r["run_id"] not in hand_revoked]
    good_ids = {r["run_id"] for r in good}
    revoked_ids = sorted((set(written_before) - good_ids) | {qa_run_id(doc_id) for doc_id in removed})
    revocations: list[UngradedRun] = []
    with RunStore.default() as store:
        for run in good:
            versions_now = grader_versions(latest[run["run_id"]])
            before = written_before.get(run["run_id"])
            if before is None or before["grader_versions"] != versions_now:
                store.set_writeback(
                    run["run_id"],
                    doc_id=qa_doc_id(run["run_id"]),
                    collection=config.collection,
                    state=WritebackState.WRITTEN,
                    grader_versions=versions_now,
                )
        revoked_runs = store.get_runs(revoked_ids)
        revoked_latest = store.latest_grades(revoked_ids)
        for run in revoked_runs:
            reason = refused.get(run["run_id"]) or why_not_good(run, revoked_latest.get(run["run_id"], {}), versions)
            revocations.append({"qa_run_id": run["run_id"], "reason": reason})
            if writeback_state(run) is not WritebackState.REVOKED_BY_HAND:
                store.set_writeback(
                    run["run_id"],
                    doc_id=qa_doc_id(run["run_id"]),
                    collection=config.collection,
                    state=WritebackState.REVOKED,
                    reason=reason,
                )
            progress("Revoked the written-back answer of run %s: %s", run["run_id"], reason)
    finish_staging(config, dag_run)  # the feedback DAG's last task that reads its staging
    summary = plan["summary"].get(QA_SOURCE_ID, {})
    qa_indexed = empty_index_counts()
    for batch_result in indexed:
        if QA_SOURCE_ID in batch_result["sources"]:
            add_index_counts(qa_indexed, batch_result["sources"][QA_SOURCE_ID])
    qa_pruned = pruned["sources"].get(QA_SOURCE_ID)
    chunks = {
        "embedded": qa_indexed["chunks_embedded"],
        "reused": qa_indexed["chunks_reused"],
        "written": qa_indexed["chunks_written"],
        "deleted": qa_indexed["chunks_deleted"] + (qa_pruned["chunks_deleted"] if qa_pruned else 0),
    }
    result: WritebackResult = {
        "collection": config.collection,
        "good_runs": len(good),
        "not_publishable": [{"qa_run_id": run_id, "reason": reason} for run_id, reason in sorted(refused.items())],
        "written": summary.get("new", 0),
        "rewritten": summary.get("changed", 0),
        "unchanged": summary.get("unchanged", 0),
        "revoked": len(revocations),
        "revocations": revocations,
        "awaiting_review": [{"qa_run_id": run_id, "reason": why} for run_id, why in sorted(held.items())],
        "chunks": chunks,
        "embedding_tokens": qa_indexed["embedding_tokens"],
        "seconds": round(time.monotonic() - started, 2),
    }
    progress(
        "Write-back: %d written, %d rewritten, %d unchanged, %d revoked",
        result["written"],
        result["rewritten"],
        result["unchanged"],
        result["revoked"],
    )
    return result


def list_written_back(config_path: str | None = None, weaviate_conn_id: str = WEAVIATE_CONN_ID) -> list[dict]:
    """The written-back answers in the index (the index is the record of what is indexed), with
    what the run store knows of them."""
    config = load_config(config_path)
    with connect(weaviate_conn_id) as client:
        indexed = read_indexed_documents(client, config.collection, {QA_SOURCE_ID})
    run_ids = sorted(qa_run_id(doc_id) for doc_id in indexed)
    with RunStore.default() as store:
        runs = {r["run_id"]: r for r in store.get_runs(run_ids)}
    rows = []
    for run_id in run_ids:
        run = runs.get(run_id)
        writeback: dict[str, Any] = dict((run.get("writeback") if run else None) or {})
        rows.append(
            {
                "run_id": run_id,
                "doc_id": qa_doc_id(run_id),
                "question": (run or {}).get("question", "(run not in the store)"),
                "chunks": len(indexed[qa_doc_id(run_id)].chunk_indexes),
                "written_at": writeback.get("written_at"),
                "graded_by": writeback.get("grader_versions") or {},
                "votes": (run or {}).get("vote_summary"),
            }
        )
    return rows


def revoke_by_hand(
    run_id: str, reason: str | None = None, config_path: str | None = None, weaviate_conn_id: str = WEAVIATE_CONN_ID
) -> dict:
    """Remove a run's written-back answer from the index now, and keep it out: the feedback DAG
    does not write back a run revoked by hand."""
    config = load_config(config_path)
    with RunStore.default() as store:
        run = store.get_run(run_id)  # RunNotFound names the id
        # The state first, then the delete: a write-back running now either sees the state after
        # it indexed (and takes the answer out) or indexed before this delete (which removes it).
        store.set_writeback(
            run_id,
            doc_id=qa_doc_id(run_id),
            collection=config.collection,
            state=WritebackState.REVOKED_BY_HAND,
            reason=f"revoked by hand: {reason}" if reason else "revoked by hand",
        )
        with connect(weaviate_conn_id) as client:
            chunks = delete_documents(client, config.collection, [qa_doc_id(run_id)])
    was_written = bool(chunks) or writeback_state(run) is WritebackState.WRITTEN
    return {"run_id": run_id, "collection": config.collection, "chunks_deleted": chunks, "was_written_back": was_written}
