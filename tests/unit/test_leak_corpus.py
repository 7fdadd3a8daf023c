"""The secret, personal-data and prompt-injection checks measured on a corpus of positive and
negative examples (tests/data/leak_corpus.jsonl): every form issue 16 found missed (names ending
in a credential word, bare AWS secret keys, `token:`, Slack webhooks, PGP blocks, key bodies
without a header, zero-width and full-width tricks, "ignore the instructions above", notes to the
grader, doubled spaces, string scores) and prose that only looks like them. The README's
"Reliability and security" section quotes the rates this prints."""

from __future__ import annotations

import json
from pathlib import Path

from ragloop import grading

CORPUS = Path(__file__).parents[1] / "data" / "leak_corpus.jsonl"
LEAKS = {"secret", "email", "phone", "iban", "card_number", "ssn", "prompt_injection"}
SOURCES = [
    {
        "doc_id": "docs:security.md",
        "title": "Security",
        "url": "https://docs.example/security",
        "kind": "docs",
        "text": "Report vulnerabilities to security@fernwood.dev. Version 1.39.0 listens on 127.0.0.1:8080.",
    }
]


def measure() -> dict:
    caught: list[dict] = []
    missed: list[dict] = []
    false_alarms: list[dict] = []
    clean: list[dict] = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        example = json.loads(line)
        found = {v.reason for v in grading.run_checks({"question": "How?", "answer": example["text"], "sources": SOURCES})}
        found &= LEAKS
        if example["label"] == "clean":
            (false_alarms if found else clean).append(example["text"])
        else:
            (caught if example["label"] in found else missed).append(example["text"])
    positives, negatives = len(caught) + len(missed), len(false_alarms) + len(clean)
    return {
        "positives": positives,
        "caught": len(caught),
        "catch_rate": round(len(caught) / positives, 3),
        "negatives": negatives,
        "false_positives": len(false_alarms),
        "false_positive_rate": round(len(false_alarms) / negatives, 3),
        "missed": missed,
        "false_alarms": false_alarms,
    }


def test_catch_rate_and_false_positive_rate_on_the_corpus(drill):
    figures = measure()
    print(json.dumps(figures, ensure_ascii=False))
    drill(f"leak corpus: {figures['positives']} secrets, personal data, injections", "catch rate >= 0.98",
          f"catch rate {figures['catch_rate']} ({figures['caught']}/{figures['positives']})", figures["catch_rate"] >= 0.98)
    drill(f"leak corpus: {figures['negatives']} clean look-alikes", "false-positive rate <= 0.04",
          f"false-positive rate {figures['false_positive_rate']} ({figures['false_positives']}/{figures['negatives']})",
          figures["false_positive_rate"] <= 0.04)
    assert figures["positives"] >= 50 and figures["negatives"] >= 50
    assert figures["catch_rate"] >= 0.98, figures["missed"]
    assert figures["false_positive_rate"] <= 0.04, figures["false_alarms"]
