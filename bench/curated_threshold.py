"""The curated-answer threshold, chosen out of sample on public paraphrase data: how similar (cosine
of the local model's embeddings) two texts must be before a question is answered with the curated
answer of the other. Not a test. Prints a table and one JSON line; writes
bench/results/curated-threshold.json.

    .venv/bin/python bench/curated_threshold.py                  # MRPC from the mirror
    .venv/bin/python bench/curated_threshold.py --tune-pairs 800 # a shorter run

Data: the Microsoft Research Paraphrase Corpus (5,801 sentence pairs from news, each labelled by
two or three people as paraphrase or not), as committed in nyu-mll/GLUE-baselines at
7a38c8224d0669f1b2608208a021424f8bff6c89 (dataset/msr-paraphrase-corpus/). Get it with the
search tool's `fetch github:nyu-mll/GLUE-baselines` (read in place from /work/.mirror, never
copied into this repository), or pass --mirror with any git clone of that repository.

Split: the corpus's own train file tunes, its test file reports. Rule, fixed before the report
split was read: the lowest threshold whose precision on the tune split is at least
--target-precision (a wrong curated hit serves someone else's answer, so precision comes first).
Caveat: MRPC pairs are news sentences, not questions; its negatives overlap heavily in wording,
which makes it a hard set for a similarity threshold (a fair test of precision).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "include"))

REPOSITORY = "nyu-mll/GLUE-baselines"
COMMIT = "7a38c8224d0669f1b2608208a021424f8bff6c89"
FOLDER = "dataset/msr-paraphrase-corpus"
DEFAULT_MIRROR = Path("/work/.mirror/nyu-mll+GLUE-baselines/repo")
RESULTS = ROOT / "bench" / "results" / "curated-threshold.json"
THRESHOLDS = [round(0.70 + 0.01 * i, 2) for i in range(30)]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_pairs(mirror: Path, name: str) -> list[tuple[bool, str, str]]:
    try:
        text = subprocess.run(
            ["git", "--git-dir", str(mirror), "show", f"{COMMIT}:{FOLDER}/{name}"],
            check=True, capture_output=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"cannot read {FOLDER}/{name} at {COMMIT} from {mirror}: {err}. Fetch github:{REPOSITORY} first "
                 "(the search tool's fetch), or pass --mirror with a clone of it.")
    pairs = []
    for line in text.splitlines()[1:]:  # header: Quality, #1 ID, #2 ID, #1 String, #2 String
        parts = line.split("\t")
        if len(parts) == 5:
            pairs.append((parts[0] == "1", parts[3].strip(), parts[4].strip()))
    return pairs


def similarities(embedder, pairs) -> list[float]:
    from ragloop.feedback.curated import cosine

    texts = list(dict.fromkeys(t for _, a, b in pairs for t in (a, b)))
    vectors: dict[str, list[float]] = {}
    for start in range(0, len(texts), 256):
        batch = texts[start:start + 256]
        vectors.update(zip(batch, embedder.embed(batch), strict=True))
        log(f"embedded {min(start + 256, len(texts))}/{len(texts)}")
    return [cosine(vectors[a], vectors[b]) for _, a, b in pairs]


def scores_at(labels: list[bool], sims: list[float], threshold: float) -> dict:
    hits = [s >= threshold for s in sims]
    tp = sum(h and y for h, y in zip(hits, labels, strict=True))
    fp = sum(h and not y for h, y in zip(hits, labels, strict=True))
    fn = sum(not h and y for h, y in zip(hits, labels, strict=True))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return {"threshold": threshold, "hits": tp + fp, "true_hits": tp, "wrong_hits": fp,
            "precision": None if precision is None else round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="the git dir of nyu-mll/GLUE-baselines")
    parser.add_argument("--tune-pairs", type=int, default=0, help="tune on the first N train pairs (0: all 4,076)")
    parser.add_argument("--target-precision", type=float, default=0.95)
    parser.add_argument("--embedder", default="local")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from ragloop.embedding import make_embedder

    started = time.monotonic()
    tune = read_pairs(args.mirror, "msr_paraphrase_train.txt")
    report = read_pairs(args.mirror, "msr_paraphrase_test.txt")
    if args.tune_pairs:
        tune = tune[: args.tune_pairs]
    embedder = make_embedder(args.embedder)
    tune_sims, report_sims = similarities(embedder, tune), similarities(embedder, report)
    tune_labels, report_labels = [p[0] for p in tune], [p[0] for p in report]
    tune_table = [scores_at(tune_labels, tune_sims, t) for t in THRESHOLDS]
    eligible = [row for row in tune_table if row["precision"] is not None and row["precision"] >= args.target_precision]
    chosen = eligible[0]["threshold"] if eligible else max(THRESHOLDS)
    report_table = [scores_at(report_labels, report_sims, t) for t in THRESHOLDS]
    at_chosen = scores_at(report_labels, report_sims, chosen)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {
        "benchmark": "curated-answer threshold (question similarity), out of sample",
        "commit": commit,
        "date": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "note": "shared with other sessions' work while it ran"},
        "inputs": {
            "data": "Microsoft Research Paraphrase Corpus (MRPC)",
            "repository": REPOSITORY, "commit": COMMIT, "paths": [f"{FOLDER}/msr_paraphrase_train.txt", f"{FOLDER}/msr_paraphrase_test.txt"],
            "read_from": str(args.mirror),
            "tune": {"file": "msr_paraphrase_train.txt", "pairs": len(tune), "paraphrases": sum(tune_labels)},
            "report": {"file": "msr_paraphrase_test.txt", "pairs": len(report), "paraphrases": sum(report_labels)},
            "embedder": embedder.name,
        },
        "rule": f"lowest threshold with tune precision >= {args.target_precision}",
        "chosen_threshold": chosen,
        "report_at_chosen": at_chosen,
        "tune_table": tune_table,
        "report_table": report_table,
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'threshold':>9} {'tune P':>7} {'tune R':>7} {'report P':>8} {'report R':>8} {'report wrong hits':>17}")
    for t_row, r_row in zip(tune_table, report_table, strict=True):
        mark = " <- chosen" if t_row["threshold"] == chosen else ""
        print(f"{t_row['threshold']:>9.2f} {t_row['precision'] or 0:>7.3f} {t_row['recall']:>7.3f} "
              f"{r_row['precision'] or 0:>8.3f} {r_row['recall']:>8.3f} {r_row['wrong_hits']:>17}{mark}")
    print(json.dumps({"chosen_threshold": chosen, "report": at_chosen, "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
