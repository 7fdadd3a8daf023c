"""The deterministic checks that run before any judge and can veto a run: secrets (API key shapes,
private keys, passwords in URLs), personal data (emails, phone numbers, card numbers), empty or
refusal answers, answers that cite no source, and text that tries to instruct its grader. Also
how an answer is read (its body, its claims, its citations), which the judges share."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragloop.answer import EXTRACTIVE_NOTE, FALLBACK_NOTE, NOTHING_FOUND, prose_sentences

CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


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
    (
        "credential assignment",
        re.compile(
            r"\b(?:password|passwd|secret|api[_-]?key|access[_-]?token)\b\s*[:=]\s*[\"']?(?=[A-Za-z0-9/+_-]*\d)"
            r"(?=[A-Za-z0-9/+_-]*[A-Za-z])[A-Za-z0-9/+_-]{16,}",
            re.I,
        ),
    ),
]
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Domains reserved for examples (RFC 2606 and 6761): addresses there reach nobody.
EXAMPLE_DOMAINS = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost)$", re.I)
# Phone numbers with separators or a country code; versions, dates, IPs and ports do not match.
PHONE = re.compile(
    r"(?<![\w.+-])(?<!\d\s)(?:\+\d{1,3}[\s.-]?)?"
    r"(?:\(\d{2,4}\)[\s.-]?\d{3,4}[\s.-]\d{3,4}|\d{2,4}[\s.-]\d{3,4}[\s.-]\d{3,4}|0\d(?:[\s.-]\d{2}){4})"
    r"(?![\w.-]?\d)(?!\s\d)"
)
THOUSANDS = re.compile(r"\d{1,3}(?:([ .,])\d{3})(?:\1\d{3})*")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
REFUSAL = re.compile(
    r"^(?:i (?:do not|don't|cannot|can't|am unable to|am not able to) (?:know|answer|help|find|say)|"
    r"i(?:'m| am) (?:not sure|sorry|unable)|sorry\b|unfortunately\b|i found nothing|"
    r"(?:the )?(?:provided )?(?:sources|passages|documents|context) (?:do not|don't|does not|doesn't) "
    r"(?:say|answer|mention|contain|cover|include)|there is no information|no information (?:is )?(?:available|found)|"
    r"as an ai\b)",
    re.I,
)
INJECTION = re.compile(
    r"(?:ignore|disregard|forget) (?:all |any )?(?:of )?(?:the |your )?(?:previous|prior|above|earlier|preceding|system) "
    r"(?:instructions|prompts?|rules|messages)|"
    r"\b(?:rate|grade|score|mark|judge|evaluate) (?:this|the|my) (?:answer|response|reply)? ?(?:as )?"
    r"(?:helpful|good|correct|grounded|relevant|safe|public|perfect|excellent|1(?:\.0)?|10|100)\b|"
    r"\byou are now\b|\bnew instructions\s*:|\bsystem prompt\b|</?(?:system|instructions?)>|"
    r'"score"\s*:\s*(?:1(?:\.0+)?|0?\.\d+)',
    re.I,
)


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
        first = claim_sentences(body)[:1] or [body]
        if body.startswith(NOTHING_FOUND) or REFUSAL.search(first[0].strip()):
            vetoes.append(Veto("refusal", f"the answer declines: {first[0][:80]!r}"))
    if not sources:
        vetoes.append(Veto("no_sources", "nothing was retrieved for this answer"))
    elif not cited_numbers(answer) & set(range(1, len(sources) + 1)):
        vetoes.append(Veto("no_citation", f"the answer cites none of its {len(sources)} sources"))
    return vetoes
