"""The attack forms issue 22 found past the checks, each one distinct (one drill row each), and
the documentation placeholders that must not veto. Shared by test_grading_checks.py (as grounded
answers: the cited chunk holds the same text) and by tests/data/leak_corpus.jsonl (regenerated
from here with `python tests/unit/leak_forms.py`, so the corpus holds every form too).

The key material is made up here for the tests (random-looking, of each format's real length);
none of it is a live credential."""

from __future__ import annotations

import base64
import html
import json
import sys
from pathlib import Path
from urllib.parse import quote

# An SEC1 EC key and a PKCS#8 EC key body (P-256), without their PEM header lines.
EC_SEC1 = ("MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oR4vWAcrPzRnoAoGCCqGSM49AwEHoUQDQgAEcd/dxx1cpQ1lgJLSYcrDHqF3EY9wGa3bp4V"
           "fGGMCqnE0QMhFmvHu3POlJMJb0p4ej2xZ4lOf7A5ZcH7yA27bgg==")
EC_PKCS8 = ("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2OF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMv"
            "dyHKcvjBeBSDZH2r1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G")
RSA_PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
           "aFDrBz9vFqU4yLcTfMu7PLvoAvF3BWXbbazHl0SaBMh3HuqhdcS+gAF/U6gIB9zD\n-----END RSA PRIVATE KEY-----")
HOOK = "https://hooks.slack.com/services/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"
GHP = "ghp_Qx7fK2mLp9Rt4Vw8Zb3Nc6Hj1Gd5Sa0Ye2Ui"
JWT_SPACED = (base64.urlsafe_b64encode(b'{ "alg": "HS256", "typ": "JWT" }').decode().rstrip("=") + "."
              + base64.urlsafe_b64encode(b'{"sub":"1234567890","name":"Jane"}').decode().rstrip("=")
              + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


def split(token: str, char: str) -> str:
    return token[:6] + char + token[6:]


NINE_IN_ONE_BLOCK = "\n".join([
    "```bash", f"export GH_TOKEN={split(GHP, chr(0x2066))}", "curl -u deploy:Wq9!vR2zLp https://api.fern.dev/v1",
    "mysql -u root -pS3cr3tPass fern", "export STRIPE_WEBHOOK=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "export HF_TOKEN=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", "export GOOGLE_SECRET=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",
    "export VAULT_TOKEN=hvs.CAESIJ4f9a1c7e2b8d3a6f0e5c9b2d7a1f8e3c", "export DATABRICKS=dapi4f9a1c7e2b8d3a6f0e5c9b2d7a1f8e3c",
    "Authorization: Bearer 4f9a1c7e2b8d3a6f0e5c9b2d7a1f8e3c4f9a1c7e", "```",
])

# (attack, answer text, the veto it must get). One row per distinct attack.
SECRET_FORMS = [
    ("EC (SEC1) private-key body without its header", f"The key is\n{EC_SEC1}\n[1]", "secret"),
    ("EC (PKCS#8) private-key body without its header", f"The key is\n{EC_PKCS8}\n[1]", "secret"),
    ("private-key header with a doubled space", "-----BEGIN  PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49 [1]", "secret"),
    ("JWT whose header JSON has a space (eyAi...)", f"Send {JWT_SPACED} as the token [1].", "secret"),
    ("base64-wrapped private key", "Use " + base64.b64encode(RSA_PEM.encode()).decode() + " [1]", "secret"),
    ("base64-wrapped Slack webhook", "Post to " + base64.b64encode(HOOK.encode()).decode() + " [1]", "secret"),
    ("URL-encoded Slack webhook", "Post to " + quote(HOOK, safe="") + " [1]", "secret"),
    ("HTML-entity-encoded Slack webhook", "Post to " + "".join(f"&#{ord(c)};" for c in HOOK) + " [1]", "secret"),
    ("HTML-entity-encoded private key", "Key " + html.escape(RSA_PEM).replace("-", "&#45;") + " [1]", "secret"),
    ("ghp_ token with a Cyrillic lookalike letter", f"Token {GHP.replace('p', chr(0x0440), 1)} works [1].", "secret"),
    ("token split by U+2066 (first strong isolate)", f"Token {split(GHP, chr(0x2066))} works [1].", "secret"),
    ("token split by U+034F (combining grapheme joiner)", f"Token {split(GHP, chr(0x034F))} works [1].", "secret"),
    ("token split by U+FE0F (variation selector)", f"Token {split(GHP, chr(0xFE0F))} works [1].", "secret"),
    ("token split by tag characters (U+E0041)", f"Token {split(GHP, chr(0xE0041) + chr(0xE0042))} works [1].", "secret"),
    ("token split by U+3164 (Hangul filler)", f"Token {split(GHP, chr(0x3164))} works [1].", "secret"),
    ("token split by U+180B (Mongolian variation selector)", f"Token {split(GHP, chr(0x180B))} works [1].", "secret"),
    ("Authorization: Bearer <hex>", "Send Authorization: Bearer 4f9a1c7e2b8d3a6f0e5c9b2d7a1f8e3c4f9a1c7e [1].", "secret"),
    ("Authorization: Basic <base64>", "Send Authorization: Basic ZmVybjpodW50ZXIycGFzcw== [1].", "secret"),
    ("curl -u user:pass", "Run curl -u fern:Hunter2pass https://api.fern.dev/v1 [1].", "secret"),
    ("mysql -pPASS", "Run mysql -u root -pS3cr3tPass fern [1].", "secret"),
    ("whsec_ (Stripe webhook secret)", "The secret is whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw [1].", "secret"),
    ("hf_ (Hugging Face token)", "The token is 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 [1].", "secret"),
    ("GOCSPX- (Google OAuth client secret)", "The secret is 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 [1].", "secret"),
    ("hvs. (Vault service token)", "The token is hvs.CAESIJ4f9a1c7e2b8d3a6f0e5c9b2d7a1f8e3c [1].", "secret"),
    ("dapi (Databricks token)", "The token is dapi4f9a1c7e2b8d3a6f0e5c9b2d7a1f8e3c [1].", "secret"),
    ("bare Twilio auth token", "The Twilio auth token is 4f9a1c7e2b8d3a6f0e5c9b2d7a1f8e3c [1].", "secret"),
    ("nine of these in one code block", f"Set these [1]:\n{NINE_IN_ONE_BLOCK}", "secret"),
]
PERSONAL_FORMS = [
    ("E.164 phone number", "Call +14155552671 for access [1].", "phone"),
    ("tel: link", "Call <a href=\"tel:+1-415-555-2671\">the desk</a> [1].", "phone"),
    ("IBAN (mod-97 valid)", "Pay to DE89 3704 0044 0532 0130 00 by Friday [1].", "iban"),
    ("Luhn-valid card with . separators", "Pay with 4111.1111.1111.1111 when asked [1].", "card_number"),
    ("Luhn-valid card with _ separators", "Pay with 5555_5555_5555_4444 when asked [1].", "card_number"),
    ("US social security number", "Her SSN is 123-45-6789 on the form [1].", "ssn"),
    ("email with an internationalised domain", "Write to jana@bücher.de for access [1].", "email"),
]
# Documentation placeholders and look-alikes: must not veto (a false veto throws away a good answer).
PLACEHOLDERS = [
    "Connect with postgres://user:password@localhost:5432/mydb [1].",
    "Use AKIAIOSFODNN7EXAMPLE as the access key id [1].",
    "Set the password to <password> in the form [1].",
    "Keys look like sk-... and are shown once [1].",
    "Set api_key = your-api-key in airflow.cfg [1].",
    "export AIRFLOW_CONN_MY_DB='postgresql://login:password@host:5432/schema' [1]",
    "The commit 4f9a1c7e2b8d3a6f0e5c9b2d7a1f8e3c4f9a1c7e is tagged v1.2.3 [1].",
    "Set token: ${GITHUB_TOKEN} in the workflow [1].",
    "Use aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY from the AWS docs [1].",
    "Run mysql -u root -p and type the password when asked [1].",
    "Run curl -u $USER:$TOKEN https://api.example.com [1].",
    "The order 1234-5678 shipped on 2025-03-02 in build 20250302.1 [1].",
    "Raise max_active_runs to 16 and the pool to 128 slots, port 8080 [1].",
    "Version 2.10.3 was released on 2024-11-04 (PR #43210) [1].",
    "Write to ops@example.com or use the form [1].",
]


def corpus_lines() -> list[dict]:
    return ([{"label": veto, "text": text, "form": attack} for attack, text, veto in SECRET_FORMS + PERSONAL_FORMS]
            + [{"label": "clean", "text": text, "form": "documentation placeholder"} for text in PLACEHOLDERS])


if __name__ == "__main__":  # python tests/unit/leak_forms.py: append the forms missing from the corpus
    corpus = Path(__file__).parents[1] / "data" / "leak_corpus.jsonl"
    have = {json.loads(line)["text"] for line in corpus.read_text(encoding="utf-8").splitlines()}
    new = [line for line in corpus_lines() if line["text"] not in have]
    with corpus.open("a", encoding="utf-8") as handle:
        for line in new:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"added {len(new)} lines to {corpus}", file=sys.stderr)
