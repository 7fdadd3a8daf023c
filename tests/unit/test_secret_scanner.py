"""The secret scanner wrapper with the real gitleaks binary (`make gitleaks` builds it): one
process for a batch of texts, findings mapped back to their text, a missing or broken binary an
error naming it; and the normalisation it reads through."""

from __future__ import annotations

import subprocess

import pytest

from ragloop.grading import checks
from ragloop.grading.normalising import decoded_variants, normalise
from ragloop.grading.secrets import SecretScanner, SecretScannerError, default_gitleaks_binary

GHP = "ghp_Qx7fK2mLp9Rt4Vw8Zb3Nc6Hj1Gd5Sa0Ye2Ui"


@pytest.fixture(scope="module")
def scanner() -> SecretScanner:
    return SecretScanner(default_gitleaks_binary())


def test_a_batch_is_one_gitleaks_process_and_findings_come_back_to_their_text(scanner, monkeypatch):
    calls = []
    real_run = subprocess.run

    def counting_run(command, *args, **kwargs):
        calls.append(command[0])
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting_run)
    texts = ["Rotate the key in the console.", f"First line.\nSecond line.\nToken {GHP} works.", "Nothing here, port 8080.",
             "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQAAACCm\n-----END OPENSSH PRIVATE KEY-----"] * 25
    found = scanner.scan(texts)
    assert calls == [str(default_gitleaks_binary())]  # 100 texts, one gitleaks process
    for index, findings in enumerate(found):
        gitleaks_rules = {f.rule_id for f in findings if f.scanner == "gitleaks"}
        assert gitleaks_rules == [set(), {"github-pat"}, set(), {"private-key"}][index % 4], (index, findings)
    assert all(GHP not in repr(f) for group in found for f in group)  # never the secret itself


def test_the_grading_checks_scan_a_batch_in_one_call(scanner, monkeypatch):
    batches = []
    real_scan = SecretScanner.scan
    monkeypatch.setattr(SecretScanner, "scan", lambda self, texts: batches.append(len(texts)) or real_scan(self, texts))
    runs = [{"question": "How?", "answer": f"Use {GHP} [1]." if n % 2 else "Rotate it in the console [1].",
             "sources": [{"doc_id": "d", "title": "T", "url": "https://docs.example/x", "kind": "docs", "text": "x"}]}
            for n in range(10)]
    results = checks.run_checks_batch(runs, scanner)
    assert len(batches) == 1 and [bool(v) for v in results] == [bool(n % 2) for n in range(10)]


def test_a_missing_or_broken_scanner_is_an_error_naming_it(tmp_path):
    with pytest.raises(SecretScannerError, match=r"gitleaks is not at .*/nothing-here.*make gitleaks"):
        SecretScanner(tmp_path / "nothing-here")
    broken = tmp_path / "gitleaks"
    broken.write_text("#!/bin/sh\necho 'config: unknown rule' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(SecretScannerError, match=r"gitleaks \(.*gitleaks\) failed with exit code 3: config: unknown rule"):
        SecretScanner(broken).scan(["anything"])
    garbled = tmp_path / "garbled"
    garbled.write_text("#!/bin/sh\ncat >/dev/null\necho 'not json'\n")
    garbled.chmod(0o755)
    with pytest.raises(SecretScannerError, match="wrote no JSON report"):
        SecretScanner(garbled).scan(["anything"])


def test_a_configured_binary_that_is_missing_fails_the_checks(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGLOOP_GITLEAKS_BIN", str(tmp_path / "gone"))
    checks.default_scanner.cache_clear()
    try:
        with pytest.raises(SecretScannerError, match="RAGLOOP_GITLEAKS_BIN"):
            checks.run_checks({"question": "q", "answer": "Rotate it [1].", "sources": []})
    finally:
        checks.default_scanner.cache_clear()


@pytest.mark.parametrize("char", ["\u00ad", "\u034f", "\u061c", "\u115f", "\u1160", "\u17b4", "\u180b", "\u180e", "\u200b", "\u200d",
                                  "\u2066", "\u2069", "\u3164", "\ufe0f", "\ufeff", "\uffa0", "\U000e0041", "\U000e01ef"])
def test_every_invisible_character_is_removed(char):
    assert normalise(f"gh{char}p_ab{char}c") == "ghp_abc"


def test_lookalikes_fold_and_encodings_decode():
    assert normalise("g\u04bbp_\u0430\u0412\u0441 \uff47\uff48\uff50") == "ghp_aBc ghp"  # Cyrillic and full-width
    variants = decoded_variants(normalise("see %68ooks.slack.com and &#103;hp_x and Z2hwX1F4N2ZLMm1McDlSdDRWdzha"))
    assert any("hooks.slack.com" in v for v in variants) and any("ghp_x" in v for v in variants)
    assert any("ghp_Qx7fK2mLp9Rt4Vw8" in v for v in variants)
