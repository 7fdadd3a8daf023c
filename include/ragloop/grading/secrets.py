"""Secrets, found by maintained rule sets: gitleaks (its ~220 rules with keywords, entropy and
allowlists, run as a binary over stdin with a JSON report) first, detect-secrets beside it for
the detectors gitleaks lacks, and our own patterns only for forms neither finds (each says why).

Every text is normalised first and its decoded variants are scanned too (see
`ragloop.grading.normalising`). Many texts are one gitleaks call (`SecretScanner.scan`): a
grading batch or an ingest batch, never a process per text. A configured scanner that is missing
or fails is an error naming it (`SecretScannerError`), never a silent skip.

Findings never hold the secret: the rule id, the scanner and a masked prefix only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ragloop.errors import RagloopError
from ragloop.grading.normalising import decoded_variants, normalise

GITLEAKS_VERSION = "v8.30.1"
GITLEAKS_BIN_ENV = "RAGLOOP_GITLEAKS_BIN"


class SecretScannerError(RagloopError):
    """The configured secret scanner is missing or failed; the message names it and the fix."""


@dataclass(frozen=True)
class SecretFinding:
    rule_id: str  # e.g. "github-pat" (gitleaks), "Secret Keyword" (detect-secrets), "private-key-body" (ours)
    scanner: str  # gitleaks | detect-secrets | ragloop
    masked: str  # the first characters and an ellipsis, never the whole value

    def describe(self) -> str:
        return f"{self.rule_id} ({self.scanner})"


def masked(value: str) -> str:
    return value[:4] + "…" if len(value) > 6 else "…"


def default_gitleaks_binary() -> Path:
    """`RAGLOOP_GITLEAKS_BIN`, else where `make gitleaks` builds it (the per-user cache)."""
    override = os.environ.get(GITLEAKS_BIN_ENV)
    if override:
        return Path(override)
    from ragloop.paths import cache_dir

    return cache_dir() / "gitleaks" / GITLEAKS_VERSION / "gitleaks"


# --- detect-secrets: the detectors it has that gitleaks lacks or reads differently ----------------
# Its entropy detectors are left out (they flag ordinary prose and hashes), and so is the public-IP
# one (docs quote addresses). KeywordDetector reads `password = …` in many languages' syntax;
# BasicAuthDetector reads passwords in URLs; the vendor ones overlap gitleaks but cost little.
DETECT_SECRETS_PLUGINS = [
    "ArtifactoryDetector", "AWSKeyDetector", "AzureStorageKeyDetector", "BasicAuthDetector", "CloudantDetector",
    "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector", "IbmCloudIamDetector", "IbmCosHmacDetector",
    "JwtTokenDetector", "KeywordDetector", "MailchimpDetector", "NpmDetector", "OpenAIDetector", "PrivateKeyDetector",
    "PypiTokenDetector", "SendGridDetector", "SlackDetector", "SoftlayerDetector", "SquareOAuthDetector", "StripeDetector",
    "TelegramBotTokenDetector", "TwilioKeyDetector",
]  # fmt: skip

# Values that stand for a secret without being one: <your key>, ${TOKEN}, YOUR_API_KEY_HERE, ****,
# sk-..., password (the word), os.environ[...] (where it is read from, not the secret).
PLACEHOLDER = re.compile(
    r"^(?:<.*|\$\{?.*|%.*|\{\{.*|\*+|x{4,}.*|.*\.\.\..*|.*….*|(?:your|my|the|example|placeholder|change[_-]?me|redacted|dummy|fake|sample|test)(?:\b|_|-).*|"
    r"[A-Za-z_-]*(?:YOUR|HERE|EXAMPLE|PLACEHOLDER|REDACTED|CHANGEME)[A-Za-z_-]*|"
    r"(?:password|passwd|secret|token|pass|user|username|admin|root|guest|airflow|postgres|mysql|none|null)\d{0,4}|"
    # a name, not a value: snake_case or dotted identifiers (access_key_id, conn.password)
    r"[a-z]+(?:[_.][a-z]+)+|https?://.*|"
    r"(?:os\.|process\.env|getenv|env\(|vault:|secret:|ssm:|conn\.|self\.|config\.|settings\.).*|.*[\[(].*)$",
    re.I,
)
# Anywhere in a value: words that mark a template (SG.YOUR_API_KEY), a run of one filler
# character (XXXXXXXX, 00000000: gitleaks' fps are written so), or a space (percent-encoded prose).
PLACEHOLDER_MARK = re.compile(r"(?i:your[_-]|<[a-z_ -]+>|change[_-]?me)|YOUR|PLACEHOLDER|REDACTED|(.)\1{5,}|%20|\s")

# --- our own patterns: only forms neither rule set finds (each measured against both) -----------
OWN_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # gitleaks' private-key rule needs the exact one-space header; a doubled space or a tab in
    # "BEGIN  PRIVATE KEY" is still a key to anyone who pastes it.
    # A header followed by no key material ("MII.....", "...") is a documentation sample.
    (
        "private-key-header",
        re.compile(r"-----BEGIN[ \t]+(?:[A-Z0-9]+[ \t]+)*PRIVATE[ \t]+KEY(?:[ \t]+BLOCK)?-----\s*[A-Za-z0-9+/]{24,}"),
    ),
    # A key body without its header: DER structures of private keys start with fixed bytes whose
    # base64 is fixed (PKCS#1/PKCS#8 "MII…", SEC1 EC "MHcCAQEE"/"MIGkAgEB", PKCS#8 EC "MIGHAgEA"/
    # "MIG2AgEA", Ed25519 PKCS#8 "MC4CAQAw"), and PEM bodies are runs of 64-character lines.
    (
        "private-key-body",
        re.compile(
            r"(?<![A-Za-z0-9+/])(?:MII[A-Za-z0-9+/]{60,}|MHcCAQEE[A-Za-z0-9+/]{40,}|MIGkAgEB[A-Za-z0-9+/]{40,}|"
            r"MIG[HE2]AgEA[A-Za-z0-9+/]{40,}|MC4CAQAw[A-Za-z0-9+/]{30,})|(?:[A-Za-z0-9+/]{64}[ \t]*\r?\n[ \t]*){3,}"
        ),
    ),
    # A JWT whose header JSON has a space ("eyAi…", "ewog…") or another first key: gitleaks and
    # detect-secrets both want "eyJ". Three base64url parts, the first decoding to a JSON object.
    ("jwt-any-header", re.compile(r"\b(?:ey|ew)[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    # HTTP credentials in a header line: gitleaks reads them only inside a curl command.
    (
        "authorization-header",
        re.compile(r"(?i)\bauthorization\s*[:=]\s*[\"']?(?:bearer|basic|token|digest)\s+(?P<value>[A-Za-z0-9._~+/=-]{12,})"),
    ),
    ("bearer-token", re.compile(r"(?i)\bbearer\s+(?P<value>[A-Za-z0-9._~+/-]{20,}=*)")),
    # Command-line passwords: `curl -u user:pass` (gitleaks' curl rule wants a long value) and
    # `mysql -pPASS` / `--password=PASS`.
    ("curl-user-password", re.compile(r"\bcurl\b[^\n]*?\s(?:-u|--user)[ =]?[\"']?(?P<value>[^\s:\"']+:[^\s\"']{4,})")),
    (
        "cli-password-flag",
        re.compile(
            r"\b(?:mysql|mysqldump|mariadb|psql|mongo(?:sh)?|redis-cli)\b[^\n]*?\s(?:-p(?P<value>[^\s\"'-][^\s\"']{3,})|--password[= ](?P<value2>[^\s\"']{4,})|-a[ ](?P<value3>[^\s\"'-][^\s\"']{7,}))"
        ),
    ),
    # OpenAI-style keys: gitleaks and detect-secrets want the full-length form with its
    # "T3BlbkFJ" marker; a project/service key quoted without it still names a live credential.
    ("openai-style-key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)[A-Za-z0-9_-]{20,}|\bsk-[A-Za-z0-9]{32,}\b")),
    # Vendor tokens whose gitleaks rules want a keyword or context these forms lack.
    ("stripe-webhook-secret", re.compile(r"\bwhsec_[A-Za-z0-9+/]{24,}")),
    ("huggingface-token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("google-oauth-client-secret", re.compile(r"\bGOCSPX-[A-Za-z0-9_-]{20,}")),
    ("vault-service-token", re.compile(r"\bhvs\.[A-Za-z0-9_-]{24,}")),
    ("databricks-token", re.compile(r"\bdapi[a-f0-9]{32}(?:-\d)?\b")),
    # A Twilio auth token is 32 hex characters: read as one only beside Twilio's name or its
    # account id (AC + 32 hex), since bare hex is also every checksum.
    (
        "twilio-auth-token",
        re.compile(r"(?is)(?:twilio|\bAC[a-f0-9]{32}\b).{0,80}?(?<![a-f0-9])(?P<value>[a-f0-9]{32})(?![a-f0-9])"),
    ),
    # Passwords in URLs (scheme://user:pass@host): gitleaks has no generic rule for them.
    (
        "password-in-url",
        re.compile(r"""\b[a-z][a-z0-9+.-]*://(?P<user>[^\s/:@"']+):(?P<value>[^\s/@"']+)@[^\s/"']+""", re.I),
    ),
    # `DB_PASSWORD=…`, `aws_secret_access_key = …`: names ending in a credential word. gitleaks'
    # generic rule wants entropy above 3.5, so short real passwords pass it.
    (
        "credential-assignment",
        re.compile(
            r"(?<![A-Za-z])(?:[A-Za-z0-9]+[_-])*(?:password|passwd|passphrase|pwd|secret(?:[_-]?access)?(?:[_-]?key)?|api[_-]?key|"
            r"access[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|token|client[_-]?secret)"
            r"[\"']?\s*(?::|=|=>|:=)\s*[\"'`]?(?P<value>[^\s\"'`,;]{8,})",
            re.I,
        ),
    ),
]
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
# A bare 40-character AWS secret beside its key id: gitleaks needs an `aws_secret` name before it.
AWS_SECRET_SHAPE = re.compile(
    r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]*[0-9])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
EXAMPLE_HOSTS = re.compile(r"@(?:localhost|127\.0\.0\.1|host|hostname|example\.\w+|[\w.-]*example[\w.-]*)(?:[:/]|$)", re.I)


def _value_is_placeholder(value: str) -> bool:
    # "EXAMPLE" in capitals marks the documentation keys of AWS and others (gitleaks' AWS allowlist).
    if PLACEHOLDER.match(value) or PLACEHOLDER_MARK.search(value) or "EXAMPLE" in value:
        return True
    # "password: the one you chose" is prose; a value needs a digit or a symbol, or length.
    return not (len(value) >= 20 or re.search(r"[\d!@#$%^&*+/=_.-]", value))


def own_findings(text: str) -> list[SecretFinding]:
    """Our patterns on one normalised text; placeholders (the rule sets' stopwords and ours) skipped."""
    found = []
    for rule_id, pattern in OWN_PATTERNS:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            value = next((groups[k] for k in ("value", "value2", "value3") if groups.get(k)), None) or match.group()
            if rule_id in (
                "credential-assignment",
                "password-in-url",
                "curl-user-password",
                "cli-password-flag",
                "bearer-token",
                "authorization-header",
            ):
                secret_part = value.split(":", 1)[-1] if rule_id == "curl-user-password" else value
                # A number short of a PIN-like length is a port or a count (https://host:8000@...).
                if _value_is_placeholder(secret_part) or (secret_part.isdigit() and len(secret_part) < 12):
                    continue
                user = groups.get("user") or ""
                if rule_id == "password-in-url" and (
                    EXAMPLE_HOSTS.search(match.group())
                    or PLACEHOLDER_MARK.search(user)
                    or (PLACEHOLDER.match(user) and _weak(secret_part))
                ):
                    continue
            found.append(SecretFinding(rule_id, "ragloop", masked(value)))
            break
    if AWS_KEY_ID.search(text) and not re.search(r"AKIA[0-9A-Z]*EXAMPLE", text):
        bare = AWS_SECRET_SHAPE.search(text)
        if bare and "EXAMPLEKEY" not in bare.group():
            found.append(SecretFinding("aws-secret-beside-key-id", "ragloop", masked(bare.group())))
    return found


def _weak(value: str) -> bool:
    """A documentation password: a dictionary-style word with at most a few digits."""
    return bool(re.fullmatch(r"[A-Za-z]+\d{0,4}", value))


def detect_secrets_findings(text: str) -> list[SecretFinding]:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    found = []
    with transient_settings({"plugins_used": [{"name": name} for name in DETECT_SECRETS_PLUGINS]}):
        for line in text.splitlines():
            if len(line) > 4000:  # its regexes are not meant for megabyte lines; gitleaks reads those
                line = line[:4000]
            for hit in scan_line(line):
                value = hit.secret_value or ""
                # Only the keyword and URL detectors capture the value itself (the vendor ones
                # capture a prefix): those are read against the placeholders.
                if hit.type in ("Secret Keyword", "Basic Auth Credentials") and _value_is_placeholder(value):
                    continue
                if "EXAMPLE" in value:
                    continue
                found.append(SecretFinding(hit.type, "detect-secrets", masked(value)))
                return found
    return found


class SecretScanner:
    """gitleaks (the binary at `gitleaks_binary`) + detect-secrets + our own patterns."""

    def __init__(self, gitleaks_binary: Path | str | None = None, *, use_detect_secrets: bool = True):
        self.gitleaks_binary = Path(gitleaks_binary) if gitleaks_binary else default_gitleaks_binary()
        self.use_detect_secrets = use_detect_secrets
        if not (self.gitleaks_binary.is_file() and os.access(self.gitleaks_binary, os.X_OK)):
            raise SecretScannerError(
                f"the secret scanner gitleaks is not at {self.gitleaks_binary}: run `make gitleaks` to build it "
                f"(Go from the module proxy), or set {GITLEAKS_BIN_ENV} to a gitleaks {GITLEAKS_VERSION} binary"
            )

    def scan(self, texts: list[str]) -> list[list[SecretFinding]]:
        """Findings per text, in order: one gitleaks process for all of them (and their decoded
        variants), then detect-secrets and our patterns in process."""
        readings: list[tuple[int, str]] = []  # (index of the text, a reading of it)
        for index, text in enumerate(texts):
            plain = normalise(text)
            readings.append((index, plain))
            readings.extend((index, variant) for variant in decoded_variants(plain))
        results: list[list[SecretFinding]] = [[] for _ in texts]
        for index, finding in self._gitleaks(readings):
            results[index].append(finding)
        for index, reading in readings:
            results[index].extend(own_findings(reading))
            if self.use_detect_secrets:
                results[index].extend(detect_secrets_findings(reading))
        return [_unique(found) for found in results]

    def _gitleaks(self, readings: list[tuple[int, str]]) -> list[tuple[int, SecretFinding]]:
        if not readings:
            return []
        # One stream, each reading on lines of its own and a blank line between two (gitleaks'
        # multi-line rules never join two texts); a finding's line says whose it is.
        starts: list[int] = []
        lines: list[str] = []
        for _, reading in readings:
            starts.append(len(lines) + 1)
            lines.extend(reading.replace("\r", "").split("\n"))
            lines.extend(["", ""])
        command = [str(self.gitleaks_binary), "stdin", "--report-format", "json", "--report-path", "-", "--no-banner"]
        command += ["--exit-code", "0", "--log-level", "error", "--max-decode-depth", "2", "--redact=0"]
        try:
            done = subprocess.run(command, input="\n".join(lines), capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SecretScannerError(f"the secret scanner gitleaks ({self.gitleaks_binary}) could not run: {error}") from error
        if done.returncode != 0:
            raise SecretScannerError(
                f"the secret scanner gitleaks ({self.gitleaks_binary}) failed with exit code {done.returncode}: {done.stderr.strip()[-500:]}"
            )
        try:
            report = json.loads(done.stdout or "[]")
        except json.JSONDecodeError as error:
            raise SecretScannerError(
                f"the secret scanner gitleaks ({self.gitleaks_binary}) wrote no JSON report: {error}"
            ) from error
        import bisect

        found = []
        for leak in report:
            position = bisect.bisect_right(starts, int(leak["StartLine"])) - 1
            found.append((readings[position][0], SecretFinding(leak["RuleID"], "gitleaks", masked(leak.get("Secret") or ""))))
        return found


def _unique(findings: list[SecretFinding]) -> list[SecretFinding]:
    seen, kept = set(), []
    for finding in findings:
        if finding.rule_id not in seen:
            seen.add(finding.rule_id)
            kept.append(finding)
    return kept
