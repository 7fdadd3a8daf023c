"""The offline judge, the reference implementation of `Judge`: relevance and groundedness measured
with the local embedding model, helpfulness read from the users' votes, publicness from the checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collections.abc import Sequence

from ragloop.answer import prose_sentences
from ragloop.embedding import LOCAL_MODEL_NAME, LocalEmbedder
from ragloop.grading.checks import CITATION, answer_body, claim_sentences, normalized
from ragloop.grading.judge import JudgeUsage
from ragloop.grading.verdicts import JudgeKind, GradingError, Verdict
from ragloop.prompts import load_prompt

if TYPE_CHECKING:
    from ragloop.runs.models import QaRun

# --- the offline judge's thresholds ------------------------------------------------------------
# Chosen on tests/data/labelled_runs.jsonl (40 hand-labelled runs over the bundled samples: 17
# good, 9 ungrounded, 9 irrelevant, 5 down-voted) with bench/judge.py, which sweeps each
# threshold and prints the agreement of each verdict with the labels. Each value sits mid-plateau
# rather than on the single best point, which 40 runs cannot tell from luck.
# Relevance: cosine of question and answer (all-MiniLM-L6-v2, normalized vectors). A long answer
# scores low against a short question even when it answers it, hence the low bar: agreement is
# 0.900 from 0.20 to 0.25, and falls to 0.725 at 0.45.
RELEVANCE_THRESHOLD = 0.25
# Groundedness: an answer sentence is supported when it is quoted from a source, or its cosine
# with a source sentence or passage reaches SUPPORT_THRESHOLD; the run passes when the share of
# supported sentences reaches GROUNDED_THRESHOLD. Agreement is 0.900 for support 0.50–0.55 with a
# share of 0.60–0.75 with the torch model's vectors; with the int8 ONNX model's, support 0.55 at
# share 0.67 fell to 0.875 (one run near 0.55 moved) while support 0.50 keeps 0.900 at shares
# 0.60–0.75 with both. The limit of an embedding judge: a subtly wrong answer (every number
# changed, same words) reads as supported; only the LLM judge checks claims.
SUPPORT_THRESHOLD = 0.50
GROUNDED_THRESHOLD = 0.67
# Agreement these thresholds reach on the labelled set (relevance 0.900, groundedness 0.900, the
# whole good/not-good decision 0.875); tests/unit/test_offline_judge.py prints the current
# figures and fails below these.
LABELLED_AGREEMENT = {"relevance": 0.9, "groundedness": 0.9, "good": 0.875}
# Versions of the offline criteria: bump one when its measure or threshold changes, so grades
# show which rule produced them and written-back runs are graded again.
OFFLINE_VERSIONS = {"relevance": "offline-1", "groundedness": "offline-2", "helpfulness": "votes-1", "publicness": "checks-1"}


class OfflineJudge:
    """No language model: relevance and groundedness measured with the local embedding model,
    helpfulness read from the users' votes, publicness from the checks (which ran first)."""

    def __init__(self, embedder: LocalEmbedder | None = None):
        self.embedder = embedder if embedder is not None else LocalEmbedder()
        self.name = JudgeKind.OFFLINE.named(LOCAL_MODEL_NAME)
        self.usage = JudgeUsage()
        self._vectors: dict[str, list[float]] = {}  # text -> vector, for the runs being graded

    @staticmethod
    def version(criterion: str) -> str:
        return OFFLINE_VERSIONS[criterion]

    @staticmethod
    def _texts(run: QaRun) -> tuple[str, str, list[str], list[str], list[str]]:
        """(question, answer, answer sentences, source sentences and passages, passages)."""
        body = answer_body(run["answer"])
        passages = [s.get("text") or "" for s in run.get("sources") or []]
        units = [u for text in passages for u in prose_sentences(text) if len(u.split()) >= 4] + passages
        return run["question"], " ".join(CITATION.sub("", body).split()) or body, claim_sentences(body), units, passages

    def prepare(self, work: Sequence[tuple[QaRun, Sequence[str]]]) -> None:
        """Embed ahead, in one call, the texts of the runs whose relevance or groundedness is to be graded."""
        self.embed_runs([run for run, criteria in work if {"relevance", "groundedness"} & set(criteria)])

    def close(self) -> None:
        """The embedder is shared (the configured one), so it stays loaded."""

    def embed_runs(self, runs: list[QaRun]) -> None:
        """Embed the texts of all these runs in one call, each distinct text once: runs over one
        knowledge base retrieve the same passages again and again, and one call batches better."""
        texts: dict[str, None] = {}
        for run in runs:
            question, answer, sentences, units, _ = self._texts(run)
            texts.update(dict.fromkeys([question, answer, *sentences, *units]))
        missing = [t for t in texts if t not in self._vectors]
        self._vectors = {t: self._vectors[t] for t in texts if t in self._vectors}
        if missing:
            self._vectors.update(zip(missing, self.embedder.embed(missing), strict=False))

    def _embed(self, texts: list[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self.embedder.embed(missing), strict=False))
        return [self._vectors[t] for t in texts]

    def measure(self, run: QaRun) -> dict:
        """The raw measures: relevance (cosine), and per answer sentence its best support."""
        question, answer, sentences, units, passages = self._texts(run)
        vectors = self._embed([question, answer, *sentences, *units])

        def cosine(a, b) -> float:
            return sum(x * y for x, y in zip(a, b, strict=False))  # the model's vectors are normalized

        relevance = cosine(vectors[0], vectors[1])
        unit_vectors = vectors[2 + len(sentences) :]
        source_norm = normalized("\n".join(passages))
        support = []
        for index, sentence in enumerate(sentences):
            sentence_norm = normalized(sentence)
            if sentence_norm and sentence_norm in source_norm:
                support.append(1.0)  # quoted
                continue
            vector = vectors[2 + index]
            support.append(max((cosine(vector, u) for u in unit_vectors), default=0.0))
        return {"relevance": relevance, "sentences": sentences, "support": support}

    def grade(self, run: QaRun, criteria: list[str]) -> list[Verdict]:
        verdicts = []
        # Embedding is the costly part: measured only when a criterion reads the measures.
        measures = self.measure(run) if {"relevance", "groundedness"} & set(criteria) else {}
        for criterion in criteria:
            version = self.version(criterion)
            if criterion == "relevance":
                score = round(measures["relevance"], 4)
                passed = score >= RELEVANCE_THRESHOLD
                verdicts.append(
                    Verdict(
                        criterion,
                        version,
                        self.name,
                        score,
                        passed,
                        f"question and answer similarity {score:.2f} {'≥' if passed else '<'} {RELEVANCE_THRESHOLD}",
                    )
                )
            elif criterion == "groundedness":
                sentences, support = measures["sentences"], measures["support"]
                supported = [s >= SUPPORT_THRESHOLD for s in support]
                score = round(sum(supported) / len(sentences), 4) if sentences else 0.0
                passed = bool(sentences) and score >= GROUNDED_THRESHOLD
                weakest = [f"{s[:80]!r} ({v:.2f})" for s, v, ok in zip(sentences, support, supported, strict=False) if not ok][:3]
                reason = (
                    f"{sum(supported)} of {len(sentences)} answer sentences supported by a source "
                    f"(similarity ≥ {SUPPORT_THRESHOLD} or quoted)"
                    if sentences
                    else "no sentence to check"
                )
                if weakest:
                    reason += "; unsupported: " + "; ".join(weakest)
                verdicts.append(Verdict(criterion, version, self.name, score, passed, reason))
            elif criterion == "helpfulness":
                summary = run.get("vote_summary") or {"up": 0, "down": 0}
                counted = summary["up"] + summary["down"]
                threshold = load_prompt("helpfulness").threshold or 0.5
                if not counted:
                    verdicts.append(
                        Verdict(
                            criterion,
                            version,
                            JudgeKind.OFFLINE.named("votes"),
                            None,
                            None,
                            "no votes yet: without a language model, helpfulness is read from users' votes",
                        )
                    )
                else:
                    score = round(summary["up"] / counted, 4)
                    verdicts.append(
                        Verdict(
                            criterion,
                            version,
                            JudgeKind.OFFLINE.named("votes"),
                            score,
                            score >= threshold,
                            f"{summary['up']} of {counted} users' latest votes are up (pass at {threshold})",
                        )
                    )
            elif criterion == "publicness":
                verdicts.append(
                    Verdict(
                        criterion,
                        version,
                        JudgeKind.OFFLINE.named("checks"),
                        1.0,
                        True,
                        "the checks found no secrets or personal data (the offline judge reads nothing more)",
                    )
                )
            else:
                raise GradingError(f"unknown criterion {criterion!r}")
        return verdicts
