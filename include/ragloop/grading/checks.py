"""The deterministic checks that run before any judge and can veto a run: secrets (API key shapes,
private keys, passwords in URLs), personal data (emails, phone numbers, card numbers), empty or
refusal answers, answers that cite no source, and text that tries to instruct its grader. Also
how an answer is read (its body, its claims, its citations), which the judges share."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ragloop.answer import EXTRACTIVE_NOTE, FALLBACK_NOTE, NOTHING_FOUND, prose_sentences

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
    reason: str  # secret | email | phone | card_number | empty_answer | refusal | no_citation | no_sources | prompt_injection
    detail: str

    def to_json(self) -> dict:
        return {"reason": self.reason, "detail": self.detail}


# Characters that render as nothing: a token split by one of them reads as whole to a person and
# to the index's tokenizer, so every check reads the text without them.
ZERO_WIDTH = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def normalise(text: str) -> str:
    """The text every check reads: Unicode NFKC (full-width and styled letters become plain ones)
    with zero-width and direction characters removed."""
    return ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))


# detect-secrets (Yelp's maintained rule set) finds the vendors' key formats; its entropy
# detectors are left out (they flag ordinary prose and hashes), and so is the public-IP one
# (docs quote addresses). The hand-written shapes below cover what it does not match on one line
# of prose: assignments to names ending in a credential word, bare AWS secret keys beside their
# key id, PEM bodies without their header, PGP key blocks.
DETECT_SECRETS_PLUGINS = [
    "ArtifactoryDetector", "AWSKeyDetector", "AzureStorageKeyDetector", "BasicAuthDetector", "CloudantDetector",
    "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector", "IbmCloudIamDetector", "IbmCosHmacDetector",
    "JwtTokenDetector", "KeywordDetector", "MailchimpDetector", "NpmDetector", "OpenAIDetector", "PrivateKeyDetector",
    "PypiTokenDetector", "SendGridDetector", "SlackDetector", "SoftlayerDetector", "SquareOAuthDetector", "StripeDetector",
    "TelegramBotTokenDetector", "TwilioKeyDetector",
]  # fmt: skip

CREDENTIAL_WORD = r"(?:password|passwd|passphrase|pwd|secret(?:[_-]?access)?(?:[_-]?key)?|api[_-]?key|access[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|token|client[_-]?secret|credentials?)"
# Values that stand for a secret without being one: <your key>, ${TOKEN}, YOUR_API_KEY_HERE, ****.
PLACEHOLDER = re.compile(
    r"^(?:<.*|\$\{?.*|%.*|\{\{.*|\*+|x{4,}.*|\.\.\..*|(?:your|my|the|example|placeholder|changeme|redacted)\b.*|[A-Z_]*(?:YOUR|HERE|EXAMPLE|PLACEHOLDER|REDACTED)[A-Z_]*|"
    # a reference to where the secret is read from, not the secret: os.environ[...], getenv(...)
    r"(?:os\.|process\.env|getenv|env\(|vault:|secret:|ssm:).*|.*[\[(].*)$",
    re.I,
)
ASSIGNMENT = re.compile(
    # No word boundary before the name: DB_PASSWORD and aws_secret_access_key end in the word.
    r"(?<![A-Za-z])(?:[A-Za-z0-9]+[_-])*" + CREDENTIAL_WORD + r"[\"']?\s*(?::|=|=>|:=)\s*[\"'`]?(?P<value>[^\s\"'`,;]{8,})",
    re.I,
)
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
AWS_SECRET_SHAPE = re.compile(
    r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]*[0-9])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)

# Shapes of credentials that must never be published; each matches only the key's own format.
SECRET_PATTERNS = [
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("Slack webhook", re.compile(r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,}", re.I)),
    ("AWS access key id", AWS_KEY_ID),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("Stripe live key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{16,}")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    # A key body pasted without its header: DER keys start with MII, PEM lines are 64 characters.
    ("private key body", re.compile(r"\bMII[A-Za-z0-9+/]{60,}|(?:[A-Za-z0-9+/]{64}\s*\n\s*){3,}")),
    ("password in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@[^\s/]+", re.I)),
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


def _detect_secrets(text: str) -> str | None:
    """The type of the first secret detect-secrets finds in the text, line by line."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    with transient_settings({"plugins_used": [{"name": name} for name in DETECT_SECRETS_PLUGINS]}):
        for line in text.splitlines():
            if len(line) > 4000:  # its regexes are not meant for megabyte lines; our own patterns read those
                line = line[:4000]
            for found in scan_line(line):
                if found.type == "Secret Keyword" and found.secret_value and PLACEHOLDER.match(found.secret_value):
                    continue
                return found.type
    return None


def find_secret(text: str) -> tuple[str, str] | None:
    """(kind, masked value) of the first credential in the (normalised) text, or None."""
    for kind, pattern in SECRET_PATTERNS:
        match = pattern.search(text)
        if match:
            return kind, _masked(match.group())
    for match in ASSIGNMENT.finditer(text):
        value = match.group("value")
        # "password: the one you chose" is prose; a value needs a digit or a symbol, or length.
        if PLACEHOLDER.match(value) or not (len(value) >= 20 or re.search(r"[\d!@#$%^&*+/=_.-]", value)):
            continue
        if value.isdigit() and len(value) < 12:
            continue
        return "credential assignment", _masked(value)
    if AWS_KEY_ID.search(text):
        match = AWS_SECRET_SHAPE.search(text)
        if match:
            return "AWS secret access key", _masked(match.group())
    detected = _detect_secrets(text)
    if detected:
        return f"{detected} (detect-secrets)", "…"
    return None


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


def written_fields(run: dict) -> dict[str, str]:
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


def run_checks(run: dict) -> list[Veto]:
    """Every reason this run must not be written back that needs no judge, read on every field
    write-back publishes (see `written_fields`), normalised. Personal data quoted from the run's
    own sources is already in the knowledge base and is not a leak (the grading task replaces the
    sources' text with what the index holds first, so a caller cannot claim a quote); secrets are
    refused wherever they come from. Details never repeat a secret."""
    answer = run.get("answer") or ""
    sources = run.get("sources") or []
    body = answer_body(answer)
    texts = {where: normalise(text) for where, text in written_fields(run).items()}
    source_text = normalise("\n".join(s.get("text") or "" for s in sources))
    vetoes: list[Veto] = []
    for where, text in texts.items():
        secret = find_secret(text)
        if secret:
            vetoes.append(Veto("secret", f"{secret[0]} in the {where} ({secret[1]})"))
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
