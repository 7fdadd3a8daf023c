"""The drills of issue 16 ("Trust in the feedback loop"): each attack or bad input the tests
throw at ragloop, what was expected, what was seen. Tests record a row with the `drill` fixture
(tests/conftest.py offers it); `make drills` runs those tests with RAGLOOP_DRILLS_FILE set
and then prints the rows as a table with `python tests/drill_table.py FILE`. In a plain test
run nothing is written."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest


@pytest.fixture
def drill(request):
    """drill(attack, expected, seen): records one row (when RAGLOOP_DRILLS_FILE is set) and
    returns `seen`, so a test can assert on it in the same line."""

    def record(attack: str, expected: str, seen, ok: bool | None = None) -> object:
        """`ok`: for rows whose expectation is a bound, not a value; otherwise seen == expected."""
        target = os.environ.get("RAGLOOP_DRILLS_FILE")
        if target:
            row = {"test": request.node.name, "attack": attack, "expected": expected, "seen": str(seen),
                   "ok": (str(seen) == expected) if ok is None else bool(ok)}
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return seen

    return record


# The table's rows after folding (see `fold`), as `make drills` last produced them on this branch.
# The table command fails when fewer rows come out: a drill dropped or stopped recording is a
# failure, not a shorter table. Raise it when you add drills.
EXPECTED_ROWS = 53  # 27 before issue 22's secret, grounding, visibility, link and ingest drills


def fold(rows: list[dict]) -> list[dict]:
    """One row per distinct attack. A parametrised test (the same test on SQLite and Postgres, or
    one attack class in many forms) records one row per case; its rows that expect the same
    outcome fold into one, which is ok only when every case was, and lists the forms it covers."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        base = row["test"].split("[", 1)[0]
        key = (base, row["expected"]) if "[" in row["test"] else (base, row["attack"])
        groups.setdefault(key, []).append(row)
    folded = []
    for members in groups.values():
        attacks = list(dict.fromkeys(m["attack"] for m in members))
        seen = list(dict.fromkeys(m["seen"] for m in members))
        if len(attacks) == 1:
            attack = attacks[0]
        else:
            prefixes = {a.split(": ", 1)[0] for a in attacks}
            prefix = prefixes.pop() + ": " if len(prefixes) == 1 and all(": " in a for a in attacks) else ""
            attack = f"{prefix}{len(attacks)} forms ({'; '.join(a[len(prefix):] for a in attacks)})"
        cases = f" ({len(members)} cases)" if len(members) > 1 else ""
        folded.append({"attack": attack, "expected": members[0]["expected"], "seen": "; ".join(seen) + cases,
                       "ok": all(m["ok"] for m in members)})
    return folded


def read_rows(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def table(rows: list[dict]) -> tuple[str, int]:
    """The markdown table of the folded rows, and how many of them failed."""
    lines = ["| attack or bad input | expected | seen | ok |", "| --- | --- | --- | --- |"]
    failed = 0
    for row in rows:
        ok = row["ok"]
        failed += not ok
        cells = [row["attack"], row["expected"], row["seen"], "yes" if ok else "**NO**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    lines.append(f"\n{len(rows)} drills, {len(rows) - failed} as expected, {failed} not")
    return "\n".join(lines), failed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/drill_table.py DRILLS.jsonl", file=sys.stderr)
        return 2
    try:
        rows = fold(read_rows(argv[1]))
    except FileNotFoundError:
        print(f"{argv[1]}: no drills file (did the drill tests run with RAGLOOP_DRILLS_FILE set?)", file=sys.stderr)
        return 1
    text, failed = table(rows)
    print(text)
    problems = []
    if failed:
        problems.append(f"{failed} drill(s) did not see what they expected")
    if len(rows) < EXPECTED_ROWS:
        problems.append(f"{len(rows)} drills, fewer than the {EXPECTED_ROWS} expected (tests/drill_table.py EXPECTED_ROWS)")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
