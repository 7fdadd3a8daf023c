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


@pytest.fixture()
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


def table(path: str) -> str:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = ["| attack or bad input | expected | seen | ok |", "| --- | --- | --- | --- |"]
    failed = 0
    for row in rows:
        ok = row["ok"]
        failed += not ok
        cells = [row["attack"], row["expected"], row["seen"], "yes" if ok else "**NO**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    lines.append(f"\n{len(rows)} drills, {len(rows) - failed} as expected, {failed} not")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1]))
