"""Calibrate the offline judge on the labelled runs (tests/data/labelled_runs.jsonl).

Measures every run once with the local model, then sweeps each threshold and prints the
agreement of each criterion's verdict with the labels, and of the whole "good" decision.
The thresholds in ragloop/grading.py were chosen with this; the test of the labelled set
(tests/unit/test_offline_judge.py) holds them to the agreement stated there.

    .venv/bin/python bench/judge.py [--labelled FILE]     # also writes bench/results/judge.json

Out of sample: the labelled runs are split in two by position (even: fold A, odd: fold B); each
threshold is chosen on one fold (best agreement; ties: the value nearest the current constant)
and reported on the other, both ways. The labelled runs were written here: no public set of
graded RAG answers over these sources exists, so this is a regression figure, not a headline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(REPO / "include"))

from ragloop import grading  # noqa: E402
from ragloop.runs import summarize_votes  # noqa: E402

LABELLED = REPO / "tests" / "data" / "labelled_runs.jsonl"


def load_labelled(path: Path = LABELLED) -> list[dict]:
    """The labelled runs, each run in the store's shape (votes with a summary)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        run = dict(row["run"])
        run.setdefault("votes", [])
        run["vote_summary"] = summarize_votes(run["votes"])
        row["run"] = run
        rows.append(row)
    return rows


def measure_all(rows: list[dict], judge: grading.OfflineJudge | None = None) -> list[dict]:
    judge = judge or grading.OfflineJudge()
    judge.embed_runs([row["run"] for row in rows])
    return [judge.measure(row["run"]) for row in rows]


def agreement(rows: list[dict], measures: list[dict], relevance: float, support: float, grounded: float) -> dict:
    """Share of runs where each verdict matches its label, with these thresholds."""
    hits = {"relevance": 0, "groundedness": 0, "good": 0}
    for row, measure in zip(rows, measures, strict=False):
        relevant = measure["relevance"] >= relevance
        sentences = measure["support"]
        share = sum(s >= support for s in sentences) / len(sentences) if sentences else 0.0
        is_grounded = bool(sentences) and share >= grounded
        summary = row["run"]["vote_summary"]
        # The write-back decision without the helpfulness vote requirement: the labels say
        # whether the answer is good, votes aside from a standing down vote.
        good = relevant and is_grounded and not summary["down"]
        hits["relevance"] += relevant == row["relevant"]
        hits["groundedness"] += is_grounded == row["grounded"]
        hits["good"] += good == row["good"]
    return {k: round(v / len(rows), 3) for k, v in hits.items()}


SUPPORT_GRID = [x / 100 for x in range(40, 90, 5)]
RELEVANCE_GRID = [x / 100 for x in range(15, 75, 5)]


def out_of_sample(rows: list[dict], measures: list[dict]) -> dict:
    """Each threshold chosen on one fold and reported on the other (both ways)."""
    folds = {"A": [i for i in range(len(rows)) if i % 2 == 0], "B": [i for i in range(len(rows)) if i % 2 == 1]}
    sweeps = {
        "support": ("groundedness", SUPPORT_GRID, grading.SUPPORT_THRESHOLD,
                    lambda v: (grading.RELEVANCE_THRESHOLD, v, grading.GROUNDED_THRESHOLD)),
        "relevance": ("relevance", RELEVANCE_GRID, grading.RELEVANCE_THRESHOLD,
                      lambda v: (v, grading.SUPPORT_THRESHOLD, grading.GROUNDED_THRESHOLD)),
    }
    out: dict = {}
    for name, (verdict, grid, current, thresholds) in sweeps.items():
        entry: dict = {"current": current, "verdict": verdict, "folds": {}}
        for tune, report in (("A", "B"), ("B", "A")):
            def score(fold: str, value: float, thresholds=thresholds, verdict=verdict) -> float:
                picked = folds[fold]
                return agreement([rows[i] for i in picked], [measures[i] for i in picked], *thresholds(value))[verdict]

            chosen = max(grid, key=lambda v: (score(tune, v), -abs(v - current)))
            entry["folds"][f"tune_{tune}_report_{report}"] = {
                "chosen": chosen, "tune_agreement": score(tune, chosen), "report_agreement": score(report, chosen),
                "current_report_agreement": score(report, current),
            }
        entry["report_mean"] = {
            "chosen": round(sum(f["report_agreement"] for f in entry["folds"].values()) / 2, 3),
            "current": round(sum(f["current_report_agreement"] for f in entry["folds"].values()) / 2, 3),
        }
        out[name] = entry
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", type=Path, default=LABELLED)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "judge.json")
    args = parser.parse_args()
    rows = load_labelled(args.labelled)
    started = time.monotonic()
    measures = measure_all(rows)
    print(f"{len(rows)} labelled runs measured in {time.monotonic() - started:.1f} s (model load included)")

    print("\nrelevance threshold sweep (cosine of question and answer):")
    for threshold in [x / 100 for x in range(20, 75, 5)]:
        result = agreement(rows, measures, threshold, grading.SUPPORT_THRESHOLD, grading.GROUNDED_THRESHOLD)
        print(f"  {threshold:.2f}: relevance {result['relevance']:.3f}")
    print("\ngroundedness sweep (support threshold × share of supported sentences):")
    for support in [x / 100 for x in range(50, 90, 5)]:
        cells = []
        for grounded in (0.5, 0.6, 0.67, 0.75, 0.8, 1.0):
            result = agreement(rows, measures, grading.RELEVANCE_THRESHOLD, support, grounded)
            cells.append(f"{grounded:.2f}→{result['groundedness']:.3f}")
        print(f"  support {support:.2f}: " + "  ".join(cells))
    current = agreement(rows, measures, grading.RELEVANCE_THRESHOLD, grading.SUPPORT_THRESHOLD, grading.GROUNDED_THRESHOLD)
    print(f"\ncurrent thresholds (relevance {grading.RELEVANCE_THRESHOLD}, support {grading.SUPPORT_THRESHOLD}, "
          f"grounded {grading.GROUNDED_THRESHOLD}): {current}")
    print("misjudged:")
    for row, measure in zip(rows, measures, strict=False):
        sentences = measure["support"]
        share = sum(s >= grading.SUPPORT_THRESHOLD for s in sentences) / len(sentences) if sentences else 0.0
        relevant = measure["relevance"] >= grading.RELEVANCE_THRESHOLD
        grounded = bool(sentences) and share >= grading.GROUNDED_THRESHOLD
        if relevant != row["relevant"] or grounded != row["grounded"]:
            print(f"  {row['id']}: relevance {measure['relevance']:.2f} (label {row['relevant']}), supported "
                  f"{share:.2f} {[round(s, 2) for s in sentences]} (label {row['grounded']}) — {row['note'][:70]}")
    oos = out_of_sample(rows, measures)
    print("\nout of sample (chosen on one fold, reported on the other):")
    for name, entry in oos.items():
        for fold, f in entry["folds"].items():
            print(f"  {name} {fold}: chosen {f['chosen']:.2f} (tune {f['tune_agreement']:.3f}) -> report "
                  f"{f['report_agreement']:.3f}; current {entry['current']:.2f} -> report {f['current_report_agreement']:.3f}")
    import platform
    import subprocess

    result = {
        "bench": "judge", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "inputs": {"labelled": str(args.labelled.relative_to(REPO)) if args.labelled.is_relative_to(REPO) else str(args.labelled),
                   "written": "here (a regression set; no public labelled set of graded answers was found)",
                   "runs": len(rows), "split": "position even: fold A; odd: fold B"},
        "thresholds": {"relevance": grading.RELEVANCE_THRESHOLD, "support": grading.SUPPORT_THRESHOLD,
                       "grounded": grading.GROUNDED_THRESHOLD},
        "in_sample_agreement": current, "out_of_sample": oos,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({"runs": len(rows), "agreement": current, "out_of_sample": {k: v["report_mean"] for k, v in oos.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
