"""Grading recorded Q&A runs, and writing the good answers back into the knowledge base.

1. Deterministic checks run first and can veto a run: secrets (API key shapes, private keys,
   passwords in URLs), personal data (emails, phone numbers, card numbers), empty or refusal
   answers, answers that cite no source, and text that tries to instruct its grader.
2. The criteria (`prompts/relevance.yaml`, `groundedness`, `helpfulness`, `publicness`) are graded
   by a judge. With `llm:` configured, the LLM judge sends each criterion's template with the
   question, answer, sources and votes as escaped, delimited data and validates the verdict it
   returns (score 0–1 and a reason); a malformed reply is asked again a bounded number of times,
   then the run stays ungraded. Without one, the offline judge measures relevance and
   groundedness with the local embedding model and reads helpfulness from the users' votes.
3. A run is good when its latest grade of every criterion passed at the criterion's current
   version, no check vetoed it, and no user's latest vote is down. Good runs become Documents of
   kind `qa` and go through the same staging → plan → index → prune path as every source; the
   listing of good runs is complete, so a run that stops being good is pruned: that is revocation.

The task bodies of the feedback DAG (`dags/grade_feedback.py`) are `select_runs`, `grade_batch`,
`write_back` and `grade_report`; `ragloop grade` runs that DAG through `dag.test()`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragloop.pipeline import progress
from ragloop.staging import DagRunRef

log = logging.getLogger(__name__)

GRADE_DAG_ID = "ragloop_grade_feedback"
CRITERIA = ("relevance", "groundedness", "helpfulness", "publicness")
# Criteria whose verdict reads the users' votes: graded again whenever a vote arrives.
VOTE_CRITERIA = frozenset({"helpfulness"})
CHECKS = "checks"
CHECKS_VERSION = "1"  # bump on every change of the checks below
CHECKS_JUDGE = "deterministic"
MALFORMED_RETRIES = 2  # a verdict that does not parse is asked for again this many times
DEFAULT_BATCH_RUNS = 25  # runs per mapped grade task
MAX_GRADE_BATCHES = 32  # mapped grade tasks per DAG run; beyond this, batches grow instead
DEFAULT_RUN_LIMIT = 1000  # runs graded per DAG run; the rest wait for the next one, oldest first
SHOWN = 20  # ungraded runs and revocations listed in a report (all are logged)

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

# Judge prices, USD per million tokens (input, output): OpenAI's list prices when this table was
# written. Prices change: `llm.prices` in sources.yaml overrides them, and a model not listed
# here needs it, or the report gives no cost.
PRICES_PER_MILLION = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
}


class GradingError(RuntimeError):
    pass


class JudgeFailed(GradingError):
    """The judge gave no valid verdict (malformed replies after the retries, or the API failed
    after the client's retries): the run stays ungraded this time."""


# --- verdicts ----------------------------------------------------------------------------------

@dataclass
class Verdict:
    criterion: str
    version: str
    judge: str
    score: float | None
    passed: bool | None  # None: no evidence either way (offline helpfulness without votes)
    reason: str
    veto: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def label(self) -> str:
        return f"{self.criterion}@{self.version}"

    def row(self) -> dict:
        """The grade row the run store keeps."""
        return {"criterion": self.criterion, "criterion_version": self.version, "judge": self.judge,
                "score": self.score, "passed": self.passed, "reason": self.reason[:4000], "veto": self.veto,
                "tokens": self.prompt_tokens + self.completion_tokens}


class JudgeReply(BaseModel):
    """The verdict a judge must return for one criterion."""

    model_config = ConfigDict(strict=True, extra="ignore")
    score: float = Field(ge=0.0, le=1.0)
    reason: str = Field(min_length=1, max_length=2000)


def parse_verdict(text: str) -> JudgeReply:
    """The reply as a verdict; ValueError saying what is wrong otherwise. A JSON object wrapped in
    a code fence is accepted; anything else around it is not."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.S)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    try:
        return JudgeReply.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in err.errors(include_url=False))
        raise ValueError(problems) from None


# --- reading an answer ---------------------------------------------------------------------------

CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def cited_numbers(text: str) -> set[int]:
    """Source numbers the text cites: [2], [1, 3] and [1][2] all count."""
    return {int(n) for group in CITATION.findall(text) for n in group.split(",")}


def answer_body(text: str) -> str:
    """The answer without the line an extractive answer starts with (which says how it was
    made, not what the answer is) and without quote markers."""
    from ragloop.answer import EXTRACTIVE_NOTE, FALLBACK_NOTE

    body = text.strip()
    for note in (EXTRACTIVE_NOTE, FALLBACK_NOTE):
        if body.startswith(note):
            body = body[len(note):].strip()
    return "\n".join(re.sub(r"^\s*>\s?", "", line) for line in body.split("\n")).strip()


def claim_sentences(body: str) -> list[str]:
    """The answer's sentences that state something (four words or more), citations removed."""
    from ragloop.answer import prose_sentences

    sentences = []
    for sentence in prose_sentences(body):
        clean = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(CITATION.sub("", sentence).split()))
        if len(clean.split()) >= 4:
            sentences.append(clean)
    return sentences


def _normalized(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# --- deterministic checks ------------------------------------------------------------------------

@dataclass(frozen=True)
class Veto:
    reason: str  # secret | email | phone | card_number | empty_answer | refusal | no_citation | no_sources | prompt_injection
    detail: str

    def to_json(self) -> dict:
        return {"reason": self.reason, "detail": self.detail}


# Shapes of credentials that must never be published; each matches only the key's own format.
SECRET_PATTERNS = [
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("Stripe live key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{16,}")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
    ("password in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@[^\s/]+", re.I)),
    ("credential assignment", re.compile(
        r"\b(?:password|passwd|secret|api[_-]?key|access[_-]?token)\b\s*[:=]\s*[\"']?(?=[A-Za-z0-9/+_-]*\d)"
        r"(?=[A-Za-z0-9/+_-]*[A-Za-z])[A-Za-z0-9/+_-]{16,}", re.I)),
]
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Domains reserved for examples (RFC 2606 and 6761): addresses there reach nobody.
EXAMPLE_DOMAINS = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost)$", re.I)
# Phone numbers with separators or a country code; versions, dates, IPs and ports do not match.
PHONE = re.compile(
    r"(?<![\w.+-])(?<!\d\s)(?:\+\d{1,3}[\s.-]?)?"
    r"(?:\(\d{2,4}\)[\s.-]?\d{3,4}[\s.-]\d{3,4}|\d{2,4}[\s.-]\d{3,4}[\s.-]\d{3,4}|0\d(?:[\s.-]\d{2}){4})"
    r"(?![\w.-]?\d)(?!\s\d)")
THOUSANDS = re.compile(r"\d{1,3}(?:([ .,])\d{3})(?:\1\d{3})*")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
REFUSAL = re.compile(
    r"^(?:i (?:do not|don't|cannot|can't|am unable to|am not able to) (?:know|answer|help|find|say)|"
    r"i(?:'m| am) (?:not sure|sorry|unable)|sorry\b|unfortunately\b|i found nothing|"
    r"(?:the )?(?:provided )?(?:sources|passages|documents|context) (?:do not|don't|does not|doesn't) "
    r"(?:say|answer|mention|contain|cover|include)|there is no information|no information (?:is )?(?:available|found)|"
    r"as an ai\b)", re.I)
INJECTION = re.compile(
    r"(?:ignore|disregard|forget) (?:all |any )?(?:of )?(?:the |your )?(?:previous|prior|above|earlier|preceding|system) "
    r"(?:instructions|prompts?|rules|messages)|"
    r"\b(?:rate|grade|score|mark|judge|evaluate) (?:this|the|my) (?:answer|response|reply)? ?(?:as )?"
    r"(?:helpful|good|correct|grounded|relevant|safe|public|perfect|excellent|1(?:\.0)?|10|100)\b|"
    r"\byou are now\b|\bnew instructions\s*:|\bsystem prompt\b|</?(?:system|instructions?)>|"
    r'"score"\s*:\s*(?:1(?:\.0+)?|0?\.\d+)', re.I)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _masked(value: str) -> str:
    return value[:4] + "…" if len(value) > 6 else "…"


def run_checks(run: dict) -> list[Veto]:
    """Every reason this run must not be written back that needs no judge. Personal data quoted
    from the run's own sources is already in the knowledge base and is not a leak; secrets are
    refused wherever they come from. Details never repeat a secret."""
    question, answer = run.get("question") or "", run.get("answer") or ""
    sources = run.get("sources") or []
    body = answer_body(answer)
    texts = {"question": question, "answer": body}
    source_text = "\n".join(s.get("text") or "" for s in sources)
    vetoes: list[Veto] = []
    for where, text in texts.items():
        for kind, pattern in SECRET_PATTERNS:
            match = pattern.search(text)
            if match:
                vetoes.append(Veto("secret", f"{kind} in the {where} ({_masked(match.group())})"))
        for match in EMAIL.finditer(text):
            address = match.group()
            if not EXAMPLE_DOMAINS.search(address.rsplit("@", 1)[1]) and address not in source_text:
                vetoes.append(Veto("email", f"email address in the {where} ({_masked(address)})"))
                break
        for match in PHONE.finditer(text):
            number = match.group()
            # 100 000 000 is a number with thousands separators, not a phone number.
            if THOUSANDS.fullmatch(number) or sum(c.isdigit() for c in number) < 9 or number in source_text:
                continue
            vetoes.append(Veto("phone", f"phone number in the {where} ({_masked(number)})"))
            break
        for match in CARD.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            if 13 <= len(digits) <= 19 and _luhn_valid(digits) and match.group() not in source_text:
                vetoes.append(Veto("card_number", f"payment card number in the {where}"))
                break
        injection = INJECTION.search(text)
        if injection:
            vetoes.append(Veto("prompt_injection", f"the {where} addresses its grader: {injection.group()[:60]!r}"))
    words = body.split()
    if len(words) < 3:
        vetoes.append(Veto("empty_answer", "the answer is empty" if not words else f"the answer is {len(words)} word(s)"))
    else:
        from ragloop.answer import NOTHING_FOUND

        first = claim_sentences(body)[:1] or [body]
        if body.startswith(NOTHING_FOUND) or REFUSAL.search(first[0].strip()):
            vetoes.append(Veto("refusal", f"the answer declines: {first[0][:80]!r}"))
    if not sources:
        vetoes.append(Veto("no_sources", "nothing was retrieved for this answer"))
    elif not cited_numbers(answer) & set(range(1, len(sources) + 1)):
        vetoes.append(Veto("no_citation", f"the answer cites none of its {len(sources)} sources"))
    return vetoes


# --- judges ------------------------------------------------------------------------------------

def votes_text(run: dict) -> str:
    """The users' votes as the helpfulness judge reads them: each user's latest, with comments."""
    from ragloop.runs import latest_votes

    latest = latest_votes(run.get("votes") or [])
    if not latest:
        return "none yet"
    summary = run["vote_summary"]
    lines = [f"{summary['up']} up, {summary['down']} down"]
    for vote in latest.values():
        comment = " ".join((vote.get("comment") or "").split())
        lines.append(f"- {vote['vote']}" + (f": {comment[:500]}" if comment else ""))
    return "\n".join(lines)


def source_blocks(run: dict) -> str:
    """The run's sources as delimited data, numbered as the answer cites them."""
    from ragloop.answer import Citation, format_sources

    return format_sources([
        Citation(number=n, doc_id=s.get("doc_id", ""), chunk_id=s.get("chunk_id", ""), kind=s.get("kind", ""),
                 title=s.get("title", ""), url=s.get("url", ""), score=s.get("score") or 0.0, text=s.get("text", ""))
        for n, s in enumerate(run.get("sources") or [], 1)
    ])


@dataclass
class JudgeUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    malformed: int = 0


class LLMJudge:
    """Each criterion's template through the configured chat model; verdicts validated."""

    def __init__(self, chat, product: str):
        self.chat = chat
        self.product = product
        self.usage = JudgeUsage()

    @property
    def name(self) -> str:
        from ragloop.prompts import load_prompt

        return f"llm:{self.chat.model_for(load_prompt(CRITERIA[0]))}"

    @staticmethod
    def version(criterion: str) -> str:
        from ragloop.prompts import load_prompt

        return load_prompt(criterion).version

    def grade(self, run: dict, criteria: list[str]) -> list[Verdict]:
        from ragloop.chat import ChatError
        from ragloop.prompts import escape_data, load_prompt

        available = {
            "product": self.product, "question": escape_data(run["question"]), "answer": escape_data(run["answer"]),
            "sources": source_blocks(run), "votes": escape_data(votes_text(run)),
        }
        verdicts = []
        for criterion in criteria:
            template = load_prompt(criterion)
            variables = {name: available[name] for name in template.legend}
            follow_up: list[dict[str, str]] = []
            tokens = [0, 0]
            problem = ""
            for attempt in range(MALFORMED_RETRIES + 1):
                try:
                    reply = self.chat.complete(template, extra_messages=follow_up, **variables)
                except ChatError as err:
                    raise JudgeFailed(f"{template.label}: {err}") from None
                self.usage.calls += 1
                self.usage.prompt_tokens += reply.prompt_tokens
                self.usage.completion_tokens += reply.completion_tokens
                tokens[0] += reply.prompt_tokens
                tokens[1] += reply.completion_tokens
                try:
                    parsed = parse_verdict(reply.text)
                    break
                except ValueError as err:
                    problem = str(err)
                    self.usage.malformed += 1
                    log.warning("Run %s, %s: malformed verdict (attempt %d of %d): %s",
                                run["run_id"], template.label, attempt + 1, MALFORMED_RETRIES + 1, problem)
                    follow_up = [
                        {"role": "assistant", "content": reply.text[:2000]},
                        {"role": "user", "content": f"That reply is not a valid verdict ({problem}). Reply with exactly one "
                                                    'JSON object: {"score": <number from 0 to 1>, "reason": "<text>"}.'},
                    ]
            else:
                raise JudgeFailed(f"{template.label}: no valid verdict after {MALFORMED_RETRIES + 1} replies (last: {problem})")
            verdicts.append(Verdict(
                criterion=criterion, version=template.version, judge=f"llm:{reply.model}", score=round(parsed.score, 4),
                passed=parsed.score >= (template.threshold if template.threshold is not None else 0.5),
                reason=parsed.reason.strip(), prompt_tokens=tokens[0], completion_tokens=tokens[1],
            ))
        return verdicts


class OfflineJudge:
    """No language model: relevance and groundedness measured with the local embedding model,
    helpfulness read from the users' votes, publicness from the checks (which ran first)."""

    def __init__(self, embedder=None):
        from ragloop.embedding import LOCAL_MODEL_NAME, LocalEmbedder

        self.embedder = embedder if embedder is not None else LocalEmbedder()
        self.name = f"offline:{LOCAL_MODEL_NAME}"
        self.usage = JudgeUsage()
        self._vectors: dict[str, list[float]] = {}  # text -> vector, for the runs being graded

    @staticmethod
    def version(criterion: str) -> str:
        return OFFLINE_VERSIONS[criterion]

    @staticmethod
    def _texts(run: dict) -> tuple[str, str, list[str], list[str], list[str]]:
        """(question, answer, answer sentences, source sentences and passages, passages)."""
        from ragloop.answer import prose_sentences

        body = answer_body(run["answer"])
        passages = [s.get("text") or "" for s in run.get("sources") or []]
        units = [u for text in passages for u in prose_sentences(text) if len(u.split()) >= 4] + passages
        return run["question"], " ".join(CITATION.sub("", body).split()) or body, claim_sentences(body), units, passages

    def prepare(self, runs: list[dict]) -> None:
        """Embed the texts of all these runs in one call, each distinct text once: runs over one
        knowledge base retrieve the same passages again and again, and one call batches better."""
        texts: dict[str, None] = {}
        for run in runs:
            question, answer, sentences, units, _ = self._texts(run)
            texts.update(dict.fromkeys([question, answer, *sentences, *units]))
        missing = [t for t in texts if t not in self._vectors]
        self._vectors = {t: self._vectors[t] for t in texts if t in self._vectors}
        if missing:
            self._vectors.update(zip(missing, self.embedder.embed(missing)))

    def _embed(self, texts: list[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self.embedder.embed(missing)))
        return [self._vectors[t] for t in texts]

    def measure(self, run: dict) -> dict:
        """The raw measures: relevance (cosine), and per answer sentence its best support."""
        question, answer, sentences, units, passages = self._texts(run)
        vectors = self._embed([question, answer, *sentences, *units])

        def cosine(a, b) -> float:
            return sum(x * y for x, y in zip(a, b))  # the model's vectors are normalized

        relevance = cosine(vectors[0], vectors[1])
        unit_vectors = vectors[2 + len(sentences):]
        source_norm = _normalized("\n".join(passages))
        support = []
        for index, sentence in enumerate(sentences):
            normalized = _normalized(sentence)
            if normalized and normalized in source_norm:
                support.append(1.0)  # quoted
                continue
            vector = vectors[2 + index]
            support.append(max((cosine(vector, u) for u in unit_vectors), default=0.0))
        return {"relevance": relevance, "sentences": sentences, "support": support}

    def grade(self, run: dict, criteria: list[str]) -> list[Verdict]:
        from ragloop.prompts import load_prompt

        verdicts = []
        measures = self.measure(run) if {"relevance", "groundedness"} & set(criteria) else None
        for criterion in criteria:
            version = self.version(criterion)
            if criterion == "relevance":
                score = round(measures["relevance"], 4)
                passed = score >= RELEVANCE_THRESHOLD
                verdicts.append(Verdict(criterion, version, self.name, score, passed,
                                        f"question and answer similarity {score:.2f} "
                                        f"{'≥' if passed else '<'} {RELEVANCE_THRESHOLD}"))
            elif criterion == "groundedness":
                sentences, support = measures["sentences"], measures["support"]
                supported = [s >= SUPPORT_THRESHOLD for s in support]
                score = round(sum(supported) / len(sentences), 4) if sentences else 0.0
                passed = bool(sentences) and score >= GROUNDED_THRESHOLD
                weakest = [f"{s[:80]!r} ({v:.2f})" for s, v, ok in zip(sentences, support, supported) if not ok][:3]
                reason = (f"{sum(supported)} of {len(sentences)} answer sentences supported by a source "
                          f"(similarity ≥ {SUPPORT_THRESHOLD} or quoted)" if sentences else "no sentence to check")
                if weakest:
                    reason += "; unsupported: " + "; ".join(weakest)
                verdicts.append(Verdict(criterion, version, self.name, score, passed, reason))
            elif criterion == "helpfulness":
                summary = run.get("vote_summary") or {"up": 0, "down": 0}
                counted = summary["up"] + summary["down"]
                threshold = load_prompt("helpfulness").threshold or 0.5
                if not counted:
                    verdicts.append(Verdict(criterion, version, "offline:votes", None, None,
                                            "no votes yet: without a language model, helpfulness is read from users' votes"))
                else:
                    score = round(summary["up"] / counted, 4)
                    verdicts.append(Verdict(criterion, version, "offline:votes", score, score >= threshold,
                                            f"{summary['up']} of {counted} users' latest votes are up (pass at {threshold})"))
            elif criterion == "publicness":
                verdicts.append(Verdict(criterion, version, "offline:checks", 1.0, True,
                                        "the checks found no secrets or personal data (the offline judge reads nothing more)"))
            else:
                raise GradingError(f"unknown criterion {criterion!r}")
        return verdicts


def make_judge(config, chat=None):
    """The LLM judge when `llm:` is configured, else the offline judge (with the configured
    embedder when it is the local model, so one model is loaded)."""
    if config.llm is not None:
        from ragloop.chat import ChatModel

        return LLMJudge(chat or ChatModel(config.llm), config.product)
    from ragloop.embedding import LocalEmbedder, make_embedder

    embedder = make_embedder(config.embedder)
    return OfflineJudge(embedder if isinstance(embedder, LocalEmbedder) else None)


def configured_judge_name(config) -> str:
    """The judge's name as its verdicts give it, without loading a model or a client."""
    if config.llm is not None:
        from ragloop.chat import ChatModel
        from ragloop.prompts import load_prompt

        return f"llm:{ChatModel(config.llm).model_for(load_prompt(CRITERIA[0]))}"  # the client is made on first use
    from ragloop.embedding import LOCAL_MODEL_NAME

    return f"offline:{LOCAL_MODEL_NAME}"


def criterion_versions(config) -> dict[str, str]:
    """The version each criterion (and the checks) is graded at now, by the configured judge."""
    judge_version = LLMJudge.version if config.llm is not None else OfflineJudge.version
    return {CHECKS: CHECKS_VERSION, **{criterion: judge_version(criterion) for criterion in CRITERIA}}


# --- grading a run -------------------------------------------------------------------------------

@dataclass
class RunGrading:
    run_id: str
    verdicts: list[Verdict] = field(default_factory=list)
    vetoes: list[Veto] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)  # criteria the judge grades
    reused: list[str] = field(default_factory=list)  # criteria whose latest grade still holds


def is_current(latest: dict[str, dict], versions: dict[str, str]) -> bool:
    """Whether a run's latest grades are all at the current versions (a vetoed run needs only its
    checks to be)."""
    checks = latest.get(CHECKS)
    if checks and checks["criterion_version"] == versions[CHECKS] and checks["veto"]:
        return True
    return all(c in latest and latest[c]["criterion_version"] == v for c, v in versions.items())


def plan_grading(run: dict, judge, previous: dict[str, dict], versions: dict[str, str]) -> RunGrading:
    """Checks first; a veto ends it (nothing for the judge). Otherwise the criteria without a
    current grade by this judge, and the vote criteria again, are left to the judge (`todo`)."""
    grading = RunGrading(run["run_id"])
    grading.vetoes = run_checks(run)
    if grading.vetoes:
        reasons = sorted({v.reason for v in grading.vetoes})
        grading.verdicts.append(Verdict(CHECKS, CHECKS_VERSION, CHECKS_JUDGE, 0.0, False,
                                        "; ".join(v.detail for v in grading.vetoes), veto=",".join(reasons)))
        return grading
    grading.verdicts.append(Verdict(CHECKS, CHECKS_VERSION, CHECKS_JUDGE, 1.0, True, "no check vetoed the run"))
    grading.todo = criteria_to_grade(judge, previous, versions)
    grading.reused = [c for c in CRITERIA if c not in grading.todo]
    return grading


def criteria_to_grade(judge, previous: dict[str, dict], versions: dict[str, str]) -> list[str]:
    """The criteria without a grade that still holds: same version, same kind of judge, decided,
    and not read from votes (those are graded again whenever the run is)."""
    kind = judge.name.split(":")[0]
    return [
        criterion for criterion in CRITERIA
        if not ((prior := previous.get(criterion)) and prior["criterion_version"] == versions[criterion]
                and prior["judge"].split(":")[0] == kind and prior["passed"] is not None and criterion not in VOTE_CRITERIA)
    ]


# --- the feedback DAG's task bodies ----------------------------------------------------------------

def _config(config_path: str | None):
    from ragloop.config import load_config

    return load_config(config_path)


def select_runs(config_path: str | None = None, limit: int = DEFAULT_RUN_LIMIT, regrade_outdated: bool = False,
                batch_runs: int = DEFAULT_BATCH_RUNS) -> list[list[str]]:
    """The runs this DAG run grades, in batches for the mapped grade task: runs never graded,
    runs with votes recorded since their last grade, written-back runs graded by an older
    criterion version (with `regrade_outdated`: every such run), oldest first, at most `limit`."""
    from ragloop.runs import RunStore

    config = _config(config_path)
    versions = criterion_versions(config)
    with RunStore.default() as store:
        never = store.ungraded_run_ids(limit)
        voted = store.run_ids_with_new_votes(limit)
        written = [w["run_id"] for w in store.writebacks("written")]
        latest = store.latest_grades(None if regrade_outdated else written)
        outdated = sorted(run_id for run_id, grades in latest.items() if not is_current(grades, versions))
    selected = list(dict.fromkeys([*never, *voted, *outdated]))[:limit]
    progress("Runs to grade: %d never graded, %d with new votes, %d graded by an older criterion version%s; %d selected",
             len(never), len(voted), len(outdated), "" if regrade_outdated else " (written back)", len(selected))
    if not selected:
        return []
    size = max(batch_runs, math.ceil(len(selected) / MAX_GRADE_BATCHES))
    return [selected[i:i + size] for i in range(0, len(selected), size)]


def _empty_tally() -> dict:
    return {"runs": 0, "graded": 0, "ungraded": 0, "vetoed": 0, "reused": 0,
            "verdicts": {c: {"pass": 0, "fail": 0, "undecided": 0} for c in CRITERIA},
            "vetoes": {}, "ungraded_runs": [], "judge": "", "judge_calls": 0, "malformed_replies": 0,
            "judge_tokens": {"prompt": 0, "completion": 0}, "seconds": 0.0}


def grade_batch(run_ids: list[str], config_path: str | None = None, chat=None) -> dict:
    """Grade these runs and store their grades; a run the judge could not grade stores nothing
    and is counted as ungraded (the next DAG run tries again)."""
    from ragloop.runs import RunStore

    started = time.monotonic()
    config = _config(config_path)
    versions = criterion_versions(config)
    judge = make_judge(config, chat)
    tally = _empty_tally()
    tally["judge"] = judge.name
    try:
        with RunStore.default() as store:
            read_at = datetime.now(timezone.utc)
            runs = store.get_runs(run_ids)
            previous = store.latest_grades(run_ids)
            plans = [(run, plan_grading(run, judge, previous.get(run["run_id"], {}), versions)) for run in runs]
            if isinstance(judge, OfflineJudge):
                judge.prepare([run for run, grading in plans if {"relevance", "groundedness"} & set(grading.todo)])
            for number, (run, grading) in enumerate(plans, 1):
                tally["runs"] += 1
                try:
                    grading.verdicts += judge.grade(run, grading.todo)
                except JudgeFailed as err:
                    tally["ungraded"] += 1
                    tally["ungraded_runs"].append({"run_id": run["run_id"], "reason": str(err)})
                    log.error("Run %s stays ungraded: %s", run["run_id"], err)
                    continue
                except Exception as err:  # noqa: BLE001 - one odd run must not stop the batch
                    tally["ungraded"] += 1
                    tally["ungraded_runs"].append({"run_id": run["run_id"], "reason": f"{type(err).__name__}: {err}"})
                    log.exception("Run %s stays ungraded: grading it failed", run["run_id"])
                    continue
                store.record_grades(run["run_id"], [v.row() for v in grading.verdicts], read_at)
                tally["graded"] += 1
                tally["reused"] += len(grading.reused)
                if grading.vetoes:
                    tally["vetoed"] += 1
                    for reason in sorted({v.reason for v in grading.vetoes}):
                        tally["vetoes"][reason] = tally["vetoes"].get(reason, 0) + 1
                for verdict in grading.verdicts:
                    if verdict.criterion in tally["verdicts"]:
                        key = "undecided" if verdict.passed is None else "pass" if verdict.passed else "fail"
                        tally["verdicts"][verdict.criterion][key] += 1
                if number % 10 == 0 or number == len(runs):
                    progress("Graded %d/%d runs (%d vetoed, %d ungraded)", number, len(runs), tally["vetoed"], tally["ungraded"])
            missing = set(run_ids) - {r["run_id"] for r in runs}
            if missing:
                log.warning("Runs no longer in the store (deleted since they were selected): %s", sorted(missing))
    finally:
        if isinstance(judge, LLMJudge) and chat is None:
            judge.chat.close()
    tally["judge_calls"] = judge.usage.calls
    tally["malformed_replies"] = judge.usage.malformed
    tally["judge_tokens"] = {"prompt": judge.usage.prompt_tokens, "completion": judge.usage.completion_tokens}
    tally["seconds"] = round(time.monotonic() - started, 2)
    return tally


def qa_document(run: dict, latest: dict[str, dict]):
    """A good run as a Document of kind `qa`: the question as title, the answer, links to the
    sources it cites (numbered as in the answer), and its provenance in the metadata."""
    from ragloop.documents import QA_SOURCE_ID, Document, qa_doc_id

    sources = run.get("sources") or []
    cited = sorted(n for n in cited_numbers(run["answer"]) if 1 <= n <= len(sources))
    lines = [answer_body(run["answer"]), "", "Sources:"]
    for number in cited:
        source = sources[number - 1]
        target = source.get("url") or source.get("doc_id")
        lines.append(f"- [{number}] [{source.get('title') or source.get('doc_id')}]({target})")
    title = " ".join(run["question"].split())
    return Document(
        doc_id=qa_doc_id(run["run_id"]), source_id=QA_SOURCE_ID, kind="qa",
        title=title if len(title) <= 300 else title[:299] + "…", content="\n".join(lines),
        url=f"ragloop://runs/{run['run_id']}", updated_at=datetime.fromisoformat(run["created_at"]),
        metadata={
            "run_id": run["run_id"], "asked_at": run["created_at"], "model": run["model"],
            "cited_sources": [sources[n - 1].get("doc_id") for n in cited],
            "graded_by": grader_versions(latest),
        },
    )


def grader_versions(latest: dict[str, dict]) -> dict[str, str]:
    """criterion -> "criterion@version by judge", from a run's latest grades."""
    return {c: f"{c}@{g['criterion_version']} by {g['judge']}" for c, g in sorted(latest.items())}


def why_not_good(run: dict, latest: dict[str, dict], versions: dict[str, str]) -> str:
    """Why a run is not (or no longer) good, in one line."""
    from ragloop.runs import latest_votes

    downs = [v for v in latest_votes(run.get("votes") or []).values() if v["vote"] == "down"]
    if downs:
        return "down vote by " + "; ".join(v["user_id"] + (f": {v['comment']}" if v.get("comment") else "") for v in downs)
    if run.get("writeback") and run["writeback"]["state"] == "revoked_by_hand":
        return run["writeback"].get("revoke_reason") or "revoked by hand"
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
            reasons.append(f"{criterion}@{version} {'undecided' if grade['passed'] is None else 'fails'} ({score}): {grade['reason'][:120]}")
    return "; ".join(reasons) or "no longer eligible"


def write_back(dag_run: "DagRunRef", config_path: str | None = None) -> dict:
    """Stage every good run as a `qa` document, a complete listing, then plan, index and prune
    it like any source: new good runs are written, changed ones rewritten, and runs no longer
    good (a down vote, a failing grade after a criterion changed, revoked by hand) pruned."""
    from ragloop.pipeline import finish_staging, index_batch, plan_ingest, plan_path, prune_sources, stage_documents
    from ragloop.runs import RunStore
    from ragloop.sources.base import ExtractReport
    from ragloop.staging import read_json
    from ragloop.documents import QA_SOURCE_ID, qa_doc_id, qa_run_id

    started = time.monotonic()
    config = _config(config_path)
    versions = criterion_versions(config)
    with RunStore.default() as store:
        passing = store.get_runs(store.passing_run_ids(versions))
        good = [r for r in passing if not r["vote_summary"]["down"]
                and not (r["writeback"] and r["writeback"]["state"] == "revoked_by_hand")]
        latest = store.latest_grades([r["run_id"] for r in good])
        written_before = {w["run_id"]: w for w in store.writebacks("written")}
    documents = [qa_document(run, latest[run["run_id"]]) for run in good]
    report = ExtractReport(QA_SOURCE_ID)
    report.seen = len(documents)
    progress("Write-back: %d good runs (%d written back before)", len(good), len(written_before))
    stage_documents(config, dag_run, QA_SOURCE_ID, documents, report, lists_everything=True)
    plan = plan_ingest(dag_run, [QA_SOURCE_ID], config_path)
    indexed = [index_batch(url, config_path) for url in plan["batches"]]
    pruned = prune_sources(dag_run, config_path)
    removed = read_json(str(plan_path(config, dag_run)))["sources"][QA_SOURCE_ID].get("prune") or []

    good_ids = {r["run_id"] for r in good}
    revoked_ids = sorted((set(written_before) - good_ids) | {qa_run_id(doc_id) for doc_id in removed})
    revocations = []
    with RunStore.default() as store:
        for run in good:
            versions_now = grader_versions(latest[run["run_id"]])
            before = written_before.get(run["run_id"])
            if before is None or before["grader_versions"] != versions_now:
                store.set_writeback(run["run_id"], doc_id=qa_doc_id(run["run_id"]), collection=config.collection,
                                    state="written", grader_versions=versions_now)
        revoked_runs = store.get_runs(revoked_ids)
        revoked_latest = store.latest_grades(revoked_ids)
        for run in revoked_runs:
            reason = why_not_good(run, revoked_latest.get(run["run_id"], {}), versions)
            revocations.append({"run_id": run["run_id"], "reason": reason})
            if not (run["writeback"] and run["writeback"]["state"] == "revoked_by_hand"):
                store.set_writeback(run["run_id"], doc_id=qa_doc_id(run["run_id"]), collection=config.collection,
                                    state="revoked", reason=reason)
            progress("Revoked the written-back answer of run %s: %s", run["run_id"], reason)
    finish_staging(config, dag_run)  # the feedback DAG's last task that reads its staging
    summary = plan["summary"].get(QA_SOURCE_ID, {})
    chunks = {key: sum(r["sources"].get(QA_SOURCE_ID, {}).get(f"chunks_{key}", 0) for r in indexed)
              for key in ("embedded", "reused", "written", "deleted")}
    chunks["deleted"] += pruned["sources"].get(QA_SOURCE_ID, {}).get("chunks_deleted", 0)
    result = {
        "collection": config.collection, "good_runs": len(good), "written": summary.get("new", 0),
        "rewritten": summary.get("changed", 0), "unchanged": summary.get("unchanged", 0),
        "revoked": len(revocations), "revocations": revocations, "chunks": chunks,
        "embedding_tokens": sum(r["sources"].get(QA_SOURCE_ID, {}).get("embedding_tokens", 0) for r in indexed),
        "seconds": round(time.monotonic() - started, 2),
    }
    progress("Write-back: %d written, %d rewritten, %d unchanged, %d revoked", result["written"], result["rewritten"],
             result["unchanged"], result["revoked"])
    return result


def estimated_cost(model: str, prompt_tokens: int, completion_tokens: int, prices: dict | None = None) -> float | None:
    """USD for these judge tokens: `llm.prices` from sources.yaml, else the table above by model
    name (a dated snapshot such as gpt-4o-mini-2024-07-18 takes its family's price)."""
    if prices:
        per_million = (prices["input"], prices["output"])
    else:
        name = model.split(":", 1)[-1]
        family = max((m for m in PRICES_PER_MILLION if name == m or name.startswith(m + "-")), key=len, default=None)
        if family is None:
            return None
        per_million = PRICES_PER_MILLION[family]
    return round((prompt_tokens * per_million[0] + completion_tokens * per_million[1]) / 1_000_000, 6)


def grade_report(dag_run: DagRunRef, batches: list[list[str]], results: list[dict], written: dict | None,
                 config_path: str | None = None) -> dict:
    """One report per DAG run: runs graded, verdicts per criterion, vetoes by reason, written
    back, revoked, judge tokens and their estimated cost; and which run store and Weaviate the
    run used."""
    from ragloop.index import endpoint_from_connection
    from ragloop.runs import describe_runs_store

    config = _config(config_path)
    total = _empty_tally()
    for result in results:
        if not result:
            continue
        for key in ("runs", "graded", "ungraded", "vetoed", "reused", "judge_calls", "malformed_replies"):
            total[key] += result[key]
        for criterion, counts in result["verdicts"].items():
            for key, value in counts.items():
                total["verdicts"][criterion][key] += value
        for reason, count in result["vetoes"].items():
            total["vetoes"][reason] = total["vetoes"].get(reason, 0) + count
        total["ungraded_runs"] += result["ungraded_runs"]
        for key in ("prompt", "completion"):
            total["judge_tokens"][key] += result["judge_tokens"][key]
        total["judge"] = total["judge"] or result["judge"]
        total["seconds"] = round(total["seconds"] + result["seconds"], 2)
    selected = sum(map(len, batches))
    errors = []
    finished = len([r for r in results if r])
    if finished < len(batches):
        errors.append(f"{len(batches) - finished} of {len(batches)} grade batches failed (see their task logs); "
                      "their runs are graded on the next run")
    if written is None:
        errors.append("write-back did not finish (see its task log); nothing was revoked or written this run")
    cost = None
    if total["judge"].startswith("llm:"):
        cost = estimated_cost(total["judge"], total["judge_tokens"]["prompt"], total["judge_tokens"]["completion"],
                              (config.llm or {}).get("prices"))
    report = {
        "dag_id": dag_run.dag_id, "dag_run_id": dag_run.run_id, "runs_store": describe_runs_store(),
        "weaviate": endpoint_from_connection().url, "collection": config.collection, "judge": total["judge"] or configured_judge_name(config),
        "selected": selected, "graded": total["graded"], "ungraded": total["ungraded"], "vetoed": total["vetoed"],
        "reused_verdicts": total["reused"], "verdicts": total["verdicts"], "vetoes": dict(sorted(total["vetoes"].items())),
        "ungraded_runs": total["ungraded_runs"][:SHOWN], "judge_calls": total["judge_calls"],
        "malformed_replies": total["malformed_replies"], "judge_tokens": total["judge_tokens"],
        "estimated_cost_usd": cost,
        "write_back": written or {},
        "seconds": {"grade": total["seconds"], "write_back": (written or {}).get("seconds")},
        "errors": errors,
    }
    log.info("Grading report:\n%s", format_grade_report(report))
    return report


def format_grade_report(report: dict) -> str:
    lines = [
        f"judge {report['judge']}: {report['selected']} runs selected, {report['graded']} graded, "
        f"{report['ungraded']} ungraded, {report['vetoed']} vetoed"
    ]
    lines.append(f"{'criterion':<14} {'pass':>5} {'fail':>5} {'undecided':>10}")
    for criterion, counts in report["verdicts"].items():
        lines.append(f"{criterion:<14} {counts['pass']:>5} {counts['fail']:>5} {counts['undecided']:>10}")
    if report["vetoes"]:
        lines.append("vetoes: " + ", ".join(f"{reason} {count}" for reason, count in report["vetoes"].items()))
    for item in report["ungraded_runs"]:
        lines.append(f"  ungraded: {item['run_id']}: {item['reason']}")
    tokens = report["judge_tokens"]
    cost = report["estimated_cost_usd"]
    lines.append(
        f"judge tokens: {tokens['prompt']} prompt + {tokens['completion']} completion in {report['judge_calls']} calls "
        f"({report['malformed_replies']} malformed replies asked again); estimated cost "
        + ("n/a (no language model)" if not report["judge"].startswith("llm:") else
           f"${cost:.4f}" if cost is not None else "unknown: set llm.prices in sources.yaml")
    )
    written = report["write_back"]
    if written:
        lines.append(
            f"write-back to {written['collection']}: {written['good_runs']} good runs; {written['written']} written, "
            f"{written['rewritten']} rewritten, {written['unchanged']} unchanged, {written['revoked']} revoked "
            f"({written['chunks']['embedded']} chunks embedded, {written['chunks']['deleted']} deleted)"
        )
        for item in written["revocations"][:SHOWN]:
            lines.append(f"  revoked: {item['run_id']}: {item['reason']}")
    for error in report["errors"]:
        lines.append(f"ERROR: {error}")
    return "\n".join(lines)


def check_complete(report: dict) -> None:
    if report["errors"]:
        raise GradingError("Grading did not complete: " + "; ".join(report["errors"]))


# --- by hand -------------------------------------------------------------------------------------

def list_written_back(config_path: str | None = None, conn_id: str = "weaviate_default") -> list[dict]:
    """The written-back answers in the index (the index is the record of what is indexed), with
    what the run store knows of them."""
    from ragloop.documents import QA_SOURCE_ID, qa_doc_id, qa_run_id
    from ragloop.index import connect, read_indexed_documents
    from ragloop.runs import RunStore

    config = _config(config_path)
    with connect(conn_id) as client:
        indexed = read_indexed_documents(client, config.collection, {QA_SOURCE_ID})
    run_ids = sorted(qa_run_id(doc_id) for doc_id in indexed)
    with RunStore.default() as store:
        runs = {r["run_id"]: r for r in store.get_runs(run_ids)}
    rows = []
    for run_id in run_ids:
        run = runs.get(run_id)
        writeback = (run or {}).get("writeback") or {}
        rows.append({
            "run_id": run_id, "doc_id": qa_doc_id(run_id), "question": (run or {}).get("question", "(run not in the store)"),
            "chunks": len(indexed[qa_doc_id(run_id)].chunk_indexes),
            "written_at": writeback.get("written_at"), "graded_by": writeback.get("grader_versions") or {},
            "votes": (run or {}).get("vote_summary"),
        })
    return rows


def revoke_by_hand(run_id: str, reason: str | None = None, config_path: str | None = None,
                   conn_id: str = "weaviate_default") -> dict:
    """Remove a run's written-back answer from the index now, and keep it out: the feedback DAG
    does not write back a run revoked by hand."""
    from ragloop.documents import qa_doc_id
    from ragloop.index import connect, delete_documents
    from ragloop.runs import RunStore

    config = _config(config_path)
    with RunStore.default() as store:
        run = store.get_run(run_id)  # RunNotFound names the id
        with connect(conn_id) as client:
            chunks = delete_documents(client, config.collection, [qa_doc_id(run_id)])
        store.set_writeback(run_id, doc_id=qa_doc_id(run_id), collection=config.collection, state="revoked_by_hand",
                            reason=f"revoked by hand: {reason}" if reason else "revoked by hand")
    was_written = bool(chunks) or bool(run["writeback"] and run["writeback"]["state"] == "written")
    return {"run_id": run_id, "collection": config.collection, "chunks_deleted": chunks, "was_written_back": was_written}
