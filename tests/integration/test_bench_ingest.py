"""`bench/ingest.py` at a tiny size, so the benchmark cannot rot. It asserts what the benchmark
counts (chunks embedded, written, deleted), never how long anything took."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.integration


def test_bench_runs_every_contender_and_scenario(tmp_path, weaviate_server):
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "ingest.py"), "--files", "40", "--embedders", "hash",
         "--scale", "400", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert "contender" in lines[0] and "ratios:" in result.stdout
    rows = {(r["contender"], r["scenario"]): r for r in report["rows"]}
    assert {
        ("raw embedder", "full"), ("ragloop", "full"), ("ragloop", "no-change"), ("ragloop", "edit-1%"),
        ("ragloop", "delete-10%"), ("ask-astro style", "full"), ("ask-astro style", "no-change"),
        ("ragloop via dag.test()", "full"), ("ragloop via dag.test()", "no-change"),
        ("ragloop (scale)", "full"), ("ragloop (scale)", "no-change"), ("ragloop (scale)", "edit-1%"),
    } <= set(rows)
    full = rows[("ragloop", "full")]
    assert full["embedded"] == rows[("raw embedder", "full")]["embedded"] == full["chunks"] > 40
    assert rows[("ragloop", "no-change")]["embedded"] == rows[("ragloop", "no-change")]["written"] == 0
    assert 0 < rows[("ragloop", "edit-1%")]["embedded"] < full["chunks"] * 0.2
    assert rows[("ragloop", "delete-10%")]["deleted"] > 0 and rows[("ragloop", "delete-10%")]["embedded"] == 0
    # The reference path skips unchanged documents but re-embeds every chunk of a changed one,
    # and never removes documents deleted at the source.
    astro = {scenario: rows[("ask-astro style", scenario)] for scenario in ("full", "no-change", "edit-1%", "delete-10%")}
    assert astro["full"]["embedded"] == full["chunks"] and astro["no-change"]["embedded"] == 0
    assert astro["edit-1%"]["embedded"] > rows[("ragloop", "edit-1%")]["embedded"]
    assert astro["delete-10%"]["deleted"] == 0 and astro["delete-10%"]["chunks"] == astro["full"]["chunks"]
    assert rows[("ragloop via dag.test()", "no-change")]["embedded"] == 0
    assert rows[("ragloop (scale)", "no-change")]["embedded"] == 0
    assert report["ratios"]["hash"]["embedded_no-change_share"] == 0
    assert list(out.glob("ingest-*.json"))
