"""`bench/retrieval.py` on a few questions against the session's Weaviate, so the benchmark and its
labels cannot rot. It asserts the report's shape and that every labelled doc_id of the whole
question set exists in the ingested collection, never how good retrieval is or how long it took."""

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
METRICS = ("hit@1", "hit@3", "hit@5", "mrr@5")


def test_bench_reports_every_mode_and_metric_and_every_label_exists(tmp_path, weaviate_server, collection_name):
    questions = yaml.safe_load((REPO / "bench" / "questions.yaml").read_text())["questions"]
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "retrieval.py"), "--use-connection", "--limit", "4",
         "--collection", collection_name, "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert lines[0].split()[:2] == ["mode", "alpha"] and "ratios:" in result.stdout

    # Every label of the whole set (not only the 4 asked) names an ingested document.
    expected = {doc_id for q in questions for doc_id in q["expected"]}
    assert report["labels"] == {"doc_ids": len(expected), "unknown": []}
    assert report["collection"]["documents_by_kind"]["slack"] > 0 and report["collection"]["documents_by_kind"]["github"] > 0
    assert len(questions) > 4 and report["questions"] == 4

    assert set(report["modes"]) == set(MODES)
    assert [report["modes"][m]["alpha"] for m in MODES] == [HYBRID_ALPHA, 1.0, 0.0]
    for mode in MODES:
        values = report["modes"][mode]
        assert values["questions"] == 4
        for metric in METRICS:
            assert 0 <= values[metric] <= 1, (mode, metric)
        assert values["hit@1"] <= values["mrr@5"] <= values["hit@5"]
        assert values["hit@1"] <= values["hit@3"] <= values["hit@5"]
        assert sum(k["questions"] for k in values["by_kind"].values()) == 4
        for per_kind in values["by_kind"].values():
            assert set(METRICS) <= set(per_kind)
    assert 0 <= report["modes"]["ragloop"]["extractive_answer_cites_expected"] <= 1
    assert {f"{metric}_ragloop_vs_{baseline}" for metric in METRICS for baseline in ("vector", "bm25")} == set(report["ratios"])

    # Per question: the rank in each mode agrees with the documents ragloop's mode returned.
    assert len(report["details"]) == 4
    for detail in report["details"]:
        assert set(detail["ranks"]) == set(MODES)
        rank = detail["ranks"]["ragloop"]
        hits = [i for i, doc_id in enumerate(detail["top_docs"], 1) if doc_id in detail["expected"]]
        assert rank == (hits[0] if hits else None)
    assert list(out.glob("retrieval-*.json"))

