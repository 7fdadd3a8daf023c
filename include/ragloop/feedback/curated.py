"""Curated answers served first: a question that matches the question of a written-back answer
closely enough is answered with that answer, marked as curated, without generating (Dify's
annotation reply). The match is the cosine similarity of the two questions' embeddings against
a threshold chosen out of sample (bench/curated_threshold.py: tuned on one split of a public
paraphrase corpus, reported on the other; bench/results/curated-threshold.json).

Pure: the candidates come from the run store (written-back answers a viewer may see), the
vectors from the configured embedder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Chosen on the tune split of a public paraphrase corpus (MRPC's train file: the lowest threshold
# with precision >= 0.95, local model); on its test file it gives precision 0.930, recall 0.105
# (bench/results/curated-threshold.json, docs/feedback-ranking.md). High on purpose: a wrong hit
# serves someone else's answer, a miss only generates as before.
DEFAULT_CURATED_THRESHOLD = 0.95
CURATED_MODEL = "curated"
CURATED_NOTE = "This is a curated answer: an earlier answer to the same question, graded good and published."


@dataclass(frozen=True)
class CuratedAnswer:
    """A written-back answer that may be served: the run it came from, its question and answer."""

    run_id: str
    doc_id: str
    question: str
    answer: str


@dataclass(frozen=True)
class CuratedMatch:
    """The curated answer a question matched, and how closely (cosine similarity of questions)."""

    curated: CuratedAnswer
    similarity: float


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def best_match(
    question_vector: Sequence[float],
    candidates: Sequence[tuple[CuratedAnswer, Sequence[float]]],
    threshold: float = DEFAULT_CURATED_THRESHOLD,
) -> CuratedMatch | None:
    """The candidate whose question is most similar to the asked one, if at or above `threshold`;
    ties go to the first candidate (the store lists the newest write-back first)."""
    best: CuratedMatch | None = None
    for curated, vector in candidates:
        similarity = cosine(question_vector, vector)
        if similarity >= threshold and (best is None or similarity > best.similarity):
            best = CuratedMatch(curated=curated, similarity=round(similarity, 4))
    return best


class CuratedCandidates(Protocol):
    """What the lookup needs of the run store."""

    def curated_candidates(self, *, audience: str) -> list[CuratedAnswer]: ...


class Embeds(Protocol):
    @property
    def name(self) -> str: ...

    def embed(self, texts: list[str]) -> Any: ...


# Question vectors of curated answers, by embedder and text: embedded once per process, not on
# every question (a CLI `ask` is a new process and embeds them again: tens of ms per question).
_VECTORS: dict[tuple[str, str], list[float]] = {}
_VECTORS_KEPT = 20_000


def _vectors(embedder: Embeds, texts: list[str]) -> list[list[float]]:
    missing = [t for t in dict.fromkeys(texts) if (embedder.name, t) not in _VECTORS]
    if missing:
        if len(_VECTORS) + len(missing) > _VECTORS_KEPT:
            _VECTORS.clear()
        for text, vector in zip(missing, embedder.embed(missing), strict=True):
            _VECTORS[(embedder.name, text)] = [float(x) for x in vector]
    return [_VECTORS[(embedder.name, t)] for t in texts]


def find_curated(
    store: CuratedCandidates,
    embedder: Embeds,
    question: str,
    *,
    audience: str,
    threshold: float = DEFAULT_CURATED_THRESHOLD,
) -> CuratedMatch | None:
    """The written-back answer (of a run `audience` may see) whose question matches `question`
    at or above `threshold`, or None: a miss, answered as usual."""
    candidates = store.curated_candidates(audience=audience)
    if not candidates:
        return None
    vectors = _vectors(embedder, [question, *(c.question for c in candidates)])
    return best_match(vectors[0], list(zip(candidates, vectors[1:], strict=True)), threshold)
