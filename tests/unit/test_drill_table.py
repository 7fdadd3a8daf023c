"""`make drills`' table command: one row per distinct attack, and a non-zero exit when a row
failed or fewer rows came out than committed (a drill that stopped recording is a failure)."""

from __future__ import annotations

import json

import drill_table


def row(test: str, attack: str, expected: str, seen: str) -> dict:
    return {"test": test, "attack": attack, "expected": expected, "seen": seen, "ok": seen == expected}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def many_rows(count: int) -> list[dict]:
    return [row(f"test_{n}", f"attack {n}", "401", "401") for n in range(count)]


def test_cases_of_one_test_fold_into_one_row_per_expected_outcome():
    rows = [
        row("test_forms[a]", "checks: token", "veto secret", "veto secret"),
        row("test_forms[b]", "checks: key block", "veto secret", "veto secret"),
        row("test_forms[c]", "checks: email", "veto email", "veto email"),
        row("test_vote[sqlite]", "vote: dated 2100", "down counts", "down counts"),
        row("test_vote[postgres]", "vote: dated 2100", "down counts", "up counts"),
        row("test_plain", "first attack", "401", "401"),
        row("test_plain", "second attack", "401", "401"),  # two attacks of one test stay two rows
    ]
    folded = drill_table.fold(rows)
    assert [(r["attack"], r["ok"]) for r in folded] == [
        ("checks: 2 forms (token; key block)", True),
        ("checks: email", True),
        ("vote: dated 2100", False),  # one case failing fails the row
        ("first attack", True),
        ("second attack", True),
    ]
    assert folded[2]["seen"] == "down counts; up counts (2 cases)"


def test_the_command_fails_on_a_failed_row_or_too_few_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(drill_table, "EXPECTED_ROWS", 5)
    assert drill_table.main(["x", write(tmp_path / "ok.jsonl", many_rows(5))]) == 0
    assert drill_table.main(["x", write(tmp_path / "few.jsonl", many_rows(4))]) == 1
    assert "4 drills, fewer than the 5 expected" in capsys.readouterr().err
    failed = many_rows(5)
    failed[0]["ok"] = False
    assert drill_table.main(["x", write(tmp_path / "bad.jsonl", failed)]) == 1
    assert "1 drill(s) did not see what they expected" in capsys.readouterr().err
    assert drill_table.main(["x", str(tmp_path / "absent.jsonl")]) == 1


def test_the_committed_count_is_set():
    assert drill_table.EXPECTED_ROWS >= 53
