"""`bench/retrieval.py` on the whole regression set (bench/questions.yaml, written here) against the
session's Weaviate, so the benchmark and its labels cannot rot and retrieval cannot silently get
worse: the report's shape, every labelled doc_id exists in the ingested collection, and ragloop's
mode keeps a floor on MRR@5 and hit@5 (measured once, with a margin: FLOORS). Never a timing.
The headline retrieval figures are out of sample on public data (bench/results/retrieval.json)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from ragloop.index import HYBRID_ALPHA

pytestmark = pytest.mark.integration

MODES = ("ragloop", "vector", "bm25")
# ragloop's mode over the whole regression set (41 questions), measured with `bench/retrieval.py`:
# MRR@5 0.907, hit@5 0.951 (docs/evidence.md). The floors leave a margin of about two questions: a
# search that breaks falls far below (the query reversed inside search: MRR@5 0.032).
FLOORS = {"mrr@5": 0.85, "hit@5": 0.90}
METRICS = ("hit@1", "hit@3", "hit@5", "mrr@5")


def test_bench_reports_every_mode_and_metric_and_every_label_exists(tmp_path, weaviate_server, collection_name):
    questions = yaml.safe_load((REPO / "bench" / "questions.yaml").read_text())["questions"]
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "retrieval.py"), "--use-connection",
         "--collection", collection_name, "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert lines[0].split()[:2] == ["mode", "alpha"] and "ratios:" in result.stdout

    # Every label of the set names an ingested document.
    expected = {doc_id for q in questions for doc_id in q["expected"]}
    assert report["labels"] == {"doc_ids": len(expected), "unknown": []}
    assert report["collection"]["documents_by_kind"]["slack"] > 0 and report["collection"]["documents_by_kind"]["github"] > 0
    asked = len(questions)
    assert report["questions"] == asked
    for metric, floor in FLOORS.items():
        assert report["modes"]["ragloop"][metric] >= floor, (metric, report["modes"]["ragloop"][metric], floor)

    assert set(report["modes"]) == set(MODES)
    assert [report["modes"][m]["alpha"] for m in MODES] == [HYBRID_ALPHA, 1.0, 0.0]
    for mode in MODES:
        values = report["modes"][mode]
        assert values["questions"] == asked
        for metric in METRICS:
            assert 0 <= values[metric] <= 1, (mode, metric)
        assert values["hit@1"] <= values["mrr@5"] <= values["hit@5"]
        assert values["hit@1"] <= values["hit@3"] <= values["hit@5"]
        assert sum(k["questions"] for k in values["by_kind"].values()) == asked
        for per_kind in values["by_kind"].values():
            assert set(METRICS) <= set(per_kind)
    assert 0 <= report["modes"]["ragloop"]["extractive_answer_cites_expected"] <= 1
    assert {f"{metric}_ragloop_vs_{baseline}" for metric in METRICS for baseline in ("vector", "bm25")} == set(report["ratios"])

    # Per question: the rank in each mode agrees with the documents ragloop's mode returned.
    assert len(report["details"]) == asked
    for detail in report["details"]:
        assert set(detail["ranks"]) == set(MODES)
        rank = detail["ranks"]["ragloop"]
        hits = [i for i, doc_id in enumerate(detail["top_docs"], 1) if doc_id in detail["expected"]]
        assert rank == (hits[0] if hits else None)
    assert list(out.glob("retrieval-*.json"))

