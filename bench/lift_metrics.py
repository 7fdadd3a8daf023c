"""The feedback-lift bench's figures, on plain data (no Weaviate, no run store), so a unit test
can check them on a hand case (tests/unit/test_feedback_lift.py).

A retrieved hit counts for a question when it is the labelled document itself, or a written-back
answer (kind `qa`) that cites the labelled document: a user who gets that answer is led to the
document that answers the question. A written-back answer that cites other documents is a miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TOP_K = 5


@dataclass(frozen=True)
class Hit:
    """One retrieved passage, as the figures need it: its document, and for a written-back answer
    the documents that answer cites."""

    doc_id: str
    cited_doc_ids: frozenset[str] = frozenset()

    def answers(self, expected: str) -> bool:
        return self.doc_id == expected or expected in self.cited_doc_ids


def first_rank(hits: list[Hit], expected: str, k: int = TOP_K) -> int | None:
    """The 1-based rank of the first hit among the top `k` that leads to `expected`; None if none does."""
    for rank, hit in enumerate(hits[:k], 1):
        if hit.answers(expected):
            return rank
    return None


def recall_at(ranks: list[int | None], k: int = TOP_K) -> float | None:
    """Share of questions whose labelled document is reached within the top `k` (one labelled
    document per question, so recall@k is the hit rate at k). None for no questions."""
    if not ranks:
        return None
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mrr(ranks: list[int | None], k: int = TOP_K) -> float | None:
    """Mean reciprocal rank, cut at `k` (a rank below k counts 0). None for no questions."""
    if not ranks:
        return None
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks)


@dataclass
class Outcome:
    """One question asked in one variant on one day."""

    question_id: str  # thread id and which formulation ("first" / "repeat")
    kind: str  # "first": the thread's first question; "repeat": a later rewording of it
    rank: int | None  # of the labelled document (or an answer citing it), within the top k
    curated: bool = False  # answered by a curated (written-back) answer, without generating
    curated_correct: bool = False  # ... and that curated answer cites the labelled document


@dataclass
class Harm:
    """What a variant did worse than no feedback on the same questions."""

    demoted: int = 0  # the labelled document (or an answer citing it) ranked lower than without feedback
    lost: int = 0  # ... and pushed out of the top k altogether
    promoted: int = 0  # the other way: ranked higher than without feedback (or found where it was not)
    demoted_ids: list[str] = field(default_factory=list)


def harm(baseline: dict[str, int | None], variant: list[Outcome]) -> Harm:
    """Questions where the variant ranks the good source lower than no feedback did (and, to
    weigh them against, those where it ranks it higher). Questions `baseline` lacks are skipped."""
    found = Harm()
    for outcome in variant:
        if outcome.question_id not in baseline:
            continue
        before = baseline[outcome.question_id]
        if outcome.rank is not None and (before is None or outcome.rank < before):
            found.promoted += 1
        if before is None:
            continue  # nothing good to demote
        if outcome.rank is None or outcome.rank > before:
            found.demoted += 1
            found.demoted_ids.append(outcome.question_id)
            if outcome.rank is None:
                found.lost += 1
    return found


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summarise(outcomes: list[Outcome], k: int = TOP_K) -> dict:
    """recall@k, MRR and the curated share, over all the outcomes and per kind."""

    def figures(chosen: list[Outcome]) -> dict:
        ranks = [o.rank for o in chosen]
        curated = [o for o in chosen if o.curated]
        return {
            "questions": len(chosen),
            f"recall@{k}": _rounded(recall_at(ranks, k)),
            "mrr": _rounded(mrr(ranks, k)),
            "curated_share": _rounded(len(curated) / len(chosen)) if chosen else None,
            "curated_hits": len(curated),
            "wrong_curated_hits": sum(1 for o in curated if not o.curated_correct),
        }

    return {
        "all": figures(outcomes),
        "first": figures([o for o in outcomes if o.kind == "first"]),
        "repeat": figures([o for o in outcomes if o.kind == "repeat"]),
    }
