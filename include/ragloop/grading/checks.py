"""The deterministic checks that run before any judge and can veto a run: secrets (gitleaks'
rules, detect-secrets and a few of our own: see `ragloop.grading.secrets`), personal data found
by validators (emails, phone numbers, IBANs, payment cards, SSNs: `ragloop.grading.personal_data`),
both read on normalised text and its decoded variants (`ragloop.grading.normalising`), empty or
refusal answers, answers that cite no source, and text that tries to instruct its grader. Also
how an answer is read (its body, its claims, its citations), which the judges share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import re
from dataclasses import dataclass
from functools import lru_cache

from ragloop.answer import EXTRACTIVE_NOTE, FALLBACK_NOTE, NOTHING_FOUND, prose_sentences
from ragloop.grading.normalising import strip_invisible
from ragloop.grading.personal_data import find_personal_data
from ragloop.grading.secrets import SecretFinding, SecretScanner

if TYPE_CHECKING:
    from ragloop.runs.models import QaRun

# At most four digits a number: "[" + 5,000 digits + "]" is no citation (and no int() to overflow).
CITATION = re.compile(r"\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]")


def cited_numbers(text: str) -> set[int]:
    """Source numbers the text cites: [2], [1, 3] and [1][2] all count."""
    return {int(n) for group in CITATION.findall(text) for n in group.split(",")}


def answer_body(text: str) -> str:
    """The answer without the line an extractive answer starts with (which says how it was
    made, not what the answer is) and without quote markers."""
    body = text.strip()
    for note in (EXTRACTIVE_NOTE, FALLBACK_NOTE):
        if body.startswith(note):
            body = body[len(note) :].strip()
    return "\n".join(re.sub(r"^\s*>\s?", "", line) for line in body.split("\n")).strip()


def claim_sentences(body: str) -> list[str]:
    """The answer's sentences that state something (four words or more), citations removed."""
    sentences = []
    for sentence in prose_sentences(body):
        clean = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(CITATION.sub("", sentence).split()))
        if len(clean.split()) >= 4:
            sentences.append(clean)
    return sentences


def normalized(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# --- deterministic checks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Veto:
    reason: str  # secret | email | phone | iban | card_number | ssn | empty_answer | refusal | no_citation | no_sources | prompt_injection
    detail: str

    def to_json(self) -> dict:
        return {"reason": self.reason, "detail": self.detail}


# The text every check reads, by rule (see ragloop.grading.normalising): default-ignorable
# characters (every Cf, variation selectors, fillers, tag characters) removed, NFKC, and, for the
# secret scan, lookalike letters folded by Unicode's confusables table.
normalise = strip_invisible

# The reasons that are a leak of a secret or of personal data (write-back refuses them too).
PERSONAL_DATA_NAMES = {
    "email": "email address",
    "phone": "phone number",
    "iban": "IBAN",
    "card_number": "payment card number",
    "ssn": "US social security number",
}
LEAK_REASONS = {"secret", *PERSONAL_DATA_NAMES}
QUOTABLE_FROM_DOCS = {"email", "phone"}
REFUSAL = re.compile(
    r"^(?:i (?:do not|don't|cannot|can't|am unable to|am not able to) (?:know|answer|help|find|say)|"
    r"i(?:'m| am) (?:not sure|sorry|unable)|sorry\b|unfortunately\b|i found nothing|"
    r"(?:the )?(?:provided )?(?:sources|passages|documents|context) (?:do not|don't|does not|doesn't) "
    r"(?:say|answer|mention|contain|cover|include)|there is no information|no information (?:is )?(?:available|found)|"
    r"as an ai\b)",
    re.I,
)
# Read on the normalised text with every run of whitespace made one space.
INJECTION = re.compile(
    r"(?:ignore|disregard|forget|override) (?:all |any )?(?:of )?(?:the |your |these |those |my )?"
    r"(?:(?:previous|prior|above|earlier|preceding|system|original|grading) (?:instructions|prompts?|rules|messages|guidelines|criteria)|"
    r"(?:instructions|prompts?|rules|messages|guidelines|criteria) (?:above|before|you were given|given to you))|"
    r"\b(?:rate|grade|score|mark|judge|evaluate) (?:this|the|my) (?:answer|response|reply)? ?(?:as )?"
    r"(?:helpful|good|correct|grounded|relevant|safe|public|perfect|excellent|1(?:\.0)?|10|100)\b|"
    r"\b(?:note|message|instructions?) (?:to|for) (?:the |any |all )?(?:grader|judge|evaluator|reviewer|assessor|llm|ai|model)s?\b|"
    r"\b(?:dear|attention|hey) (?:grader|judge|evaluator|assessor)\b|\b(?:grader|judge|evaluator)s?, (?:please|you must|this)\b|"
    r"\byou are now\b|\bnew instructions ?:|\bsystem prompt\b|</?(?:system|instructions?)>|"
    r"[\"']score[\"'] ?: ?[\"']?(?:1(?:\.0+)?|0?\.\d+)[\"']?",
    re.I,
)


def _masked(value: str) -> str:
    return value[:4] + "…" if len(value) > 6 else "…"


@lru_cache(maxsize=1)
def default_scanner() -> SecretScanner:
    """The configured secret scanner (gitleaks at RAGLOOP_GITLEAKS_BIN or where `make gitleaks`
    puts it): missing is an error naming it (SecretScannerError), never a skipped check."""
    return SecretScanner()


def written_fields(run: QaRun) -> dict[str, str]:
    """Every field of the run that write-back publishes, by name: the question (the title), the
    answer, the model, and the doc id, title and URL of each cited source (its links)."""
    sources = run.get("sources") or []
    fields = {
        "question": run.get("question") or "",
        "answer": answer_body(run.get("answer") or ""),
        "model": run.get("model") or "",
    }
    for number in sorted(cited_numbers(run.get("answer") or "")):
        if 1 <= number <= len(sources):
            source = sources[number - 1]
            for key in ("doc_id", "title", "url"):
                fields[f"source [{number}] {key}"] = str(source.get(key) or "")
    return fields


def run_checks(run: QaRun, scanner: SecretScanner | None = None) -> list[Veto]:
    """Every reason this run must not be written back that needs no judge (see `run_checks_batch`)."""
    return run_checks_batch([run], scanner)[0]


def run_checks_batch(runs: list[QaRun], scanner: SecretScanner | None = None) -> list[list[Veto]]:
    """Every reason each run must not be written back that needs no judge, read on every field
    write-back publishes (see `written_fields`), normalised; the secret scanner runs once for the
    whole batch. An email address or phone number quoted from a cited docs page is published
    already and is not a leak (the grading task replaces the sources' text with what the index
    holds first, so a caller cannot claim a quote); secrets, and personal data from Slack, issues,
    or of any other kind, are refused wherever they come from, a grounded quote included: grounding
    does not stop a quoted credential. Details never repeat a secret."""
    scanner = scanner or default_scanner()
    fields = [written_fields(run) for run in runs]
    texts = [text for run_fields in fields for text in run_fields.values()]
    secrets = iter(scanner.scan(texts))
    return [
        _run_vetoes(run, run_fields, {where: next(secrets) for where in run_fields})
        for run, run_fields in zip(runs, fields, strict=False)
    ]


def _run_vetoes(run: QaRun, fields: dict[str, str], secrets: dict[str, list[SecretFinding]]) -> list[Veto]:
    answer = run.get("answer") or ""
    sources = run.get("sources") or []
    body = answer_body(answer)
    # A contact address or number a published docs page gives is not a leak when quoted; the same
    # from a Slack thread or an issue (a customer's number pasted there) is, and IBANs, cards and
    # SSNs are refused wherever they come from.
    source_text = normalise("\n".join(s.get("text") or "" for s in sources if s.get("kind") == "docs"))
    source_digits = re.sub(r"\D", "", source_text)
    vetoes: list[Veto] = []
    for where, raw in fields.items():
        text = normalise(raw)
        for finding in secrets[where][:1]:
            vetoes.append(Veto("secret", f"{finding.describe()} in the {where} ({finding.masked})"))
        reported: set[str] = set()
        for found in find_personal_data(text):
            digits = re.sub(r"\D", "", found.value)
            quoted = found.kind in QUOTABLE_FROM_DOCS and (
                found.value in source_text or (found.kind == "phone" and len(digits) >= 9 and digits in source_digits)
            )
            if found.kind in reported or quoted:
                continue
            reported.add(found.kind)
            vetoes.append(Veto(found.kind, f"{PERSONAL_DATA_NAMES[found.kind]} in the {where} ({found.masked})"))
        injection = INJECTION.search(" ".join(text.split()))
        if injection:
            vetoes.append(Veto("prompt_injection", f"the {where} addresses its grader: {injection.group()[:60]!r}"))
    words = body.split()
    if len(words) < 3:
        vetoes.append(Veto("empty_answer", "the answer is empty" if not words else f"the answer is {len(words)} word(s)"))
    else:
        first = claim_sentences(body)[:1] or [body]
        if body.startswith(NOTHING_FOUND) or REFUSAL.search(first[0].strip()):
            vetoes.append(Veto("refusal", f"the answer declines: {first[0][:80]!r}"))
    if not sources:
        vetoes.append(Veto("no_sources", "nothing was retrieved for this answer"))
    elif not cited_numbers(answer) & set(range(1, len(sources) + 1)):
        vetoes.append(Veto("no_citation", f"the answer cites none of its {len(sources)} sources"))
    return vetoes
