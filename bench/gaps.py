"""Docs-gaps clustering benchmark: how well each candidate grouping recovers the labelled topics
of tests/data/gap_questions.jsonl. Not a test. Prints a table and one JSON line.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/gaps.py              # the real local model
    HF_HUB_OFFLINE=1 .venv/bin/python bench/gaps.py --embedder hash   # a baseline with no semantics

The questions are embedded once with the chosen embedder (`ragloop.embedding.make_embedder`),
then each candidate of `ragloop.gaps.cluster` groups the same vectors:
- agglomerative: average linkage on cosine distance, cut at each threshold of --thresholds;
- kmeans: KMeans (fixed seed) for k = 2..20, the k with the best cosine silhouette kept;
- hdbscan: for each --min-cluster-sizes (noise points count as singletons).
Scores against the labels: adjusted Rand index (ARI: pair agreement, 0 = chance, 1 = perfect)
and normalized mutual information (NMI, arithmetic mean). Also: topics found, and the share of
questions left in groups smaller than 2 (the "not grouped" row of `ragloop gaps`).
The same on --resamples random 60% subsets of the questions (fixed seed): mean and standard
deviation of ARI, since a threshold has to hold for a store with fewer or more questions and one
split of 115 questions is a small sample.
And for the default method, whether the worst-answered label is the first topic by need.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "gap_questions.jsonl"


def load_labelled(path: Path = DATA) -> list[dict]:
    """The labelled lines, each with `run` turned into a run dict as the run store returns it
    (vote_summary from each user's latest vote, grades as rows)."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for line in lines:
        run = line["run"]
        latest = {v["user_id"]: v["vote"] for v in run["votes"]}
        run["vote_summary"] = {"up": list(latest.values()).count("up"), "down": list(latest.values()).count("down"),
                               "votes": len(run["votes"])}
        run["grades"] = line["grades"]
    return lines


def main(argv: list[str] | None = None) -> int:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from ragloop import gaps
    from ragloop.embedding import make_embedder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="local", help="local (default) or hash")
    parser.add_argument("--thresholds", default="0.5,0.6,0.65,0.7,0.75,0.8,0.85,0.9")
    parser.add_argument("--min-cluster-sizes", default="3,5,8")
    parser.add_argument("--resamples", type=int, default=10, help="60%% subsets scored per candidate (0: none)")
    args = parser.parse_args(argv)

    lines = load_labelled()
    runs = [line["run"] for line in lines]
    truth = [line["topic"] for line in lines]
    started = time.perf_counter()
    vectors = gaps.normalize(gaps.question_vectors(make_embedder(args.embedder), runs))
    embed_seconds = time.perf_counter() - started

    candidates = [("agglomerative", {"threshold": float(t)}) for t in args.thresholds.split(",")]
    candidates.append(("kmeans", {}))
    candidates += [("hdbscan", {"min_cluster_size": int(m)}) for m in args.min_cluster_sizes.split(",")]
    def scored_labels(matrix, method, options):
        # Noise (-1) counts as one singleton per point, not as one big cluster.
        labels = gaps.cluster(matrix, method, **options)
        return [int(label) if label != -1 else -(i + 2) for i, label in enumerate(labels)]

    rng = np.random.default_rng(gaps.SEED)
    subsets = [np.sort(rng.choice(len(runs), int(0.6 * len(runs)), replace=False)) for _ in range(args.resamples)]
    truth_array = np.asarray(truth)
    rows = []
    for method, options in candidates:
        scored = scored_labels(vectors, method, options)
        sizes = Counter(scored)
        resampled = [adjusted_rand_score(truth_array[s], scored_labels(vectors[s], method, options)) for s in subsets]
        rows.append({
            "method": method, **options,
            "ari": round(adjusted_rand_score(truth, scored), 3),
            "nmi": round(normalized_mutual_info_score(truth, scored), 3),
            "topics": sum(1 for n in sizes.values() if n >= gaps.DEFAULT_MIN_TOPIC_SIZE),
            "not_grouped": round(sum(n for n in sizes.values() if n < gaps.DEFAULT_MIN_TOPIC_SIZE) / len(scored), 3),
            "ari_60pct_mean": round(float(np.mean(resampled)), 3) if resampled else None,
            "ari_60pct_sd": round(float(np.std(resampled)), 3) if resampled else None,
        })
    topics = gaps.find_topics(runs, vectors)
    by_run = dict(zip((r["run_id"] for r in runs), truth))
    first = Counter(by_run[run_id] for run_id in topics[0].run_ids).most_common(1)[0][0]
    failures = Counter(t for line, t in zip(lines, truth) if line["bad"])
    worst = failures.most_common(1)[0][0]

    print(f"{len(runs)} questions, {len(set(truth))} labelled topics, embedder {args.embedder} "
          f"({embed_seconds:.1f} s to embed)")
    print(f"{'method':<15} {'option':<22} {'ARI':>6} {'NMI':>6} {'topics':>7} {'not grouped':>12} {'ARI on 60% subsets':>19}")
    for row in rows:
        option = ", ".join(f"{k}={v}" for k, v in row.items()
                           if k not in ("method", "ari", "nmi", "topics", "not_grouped", "ari_60pct_mean", "ari_60pct_sd"))
        subset = "-" if row["ari_60pct_mean"] is None else f"{row['ari_60pct_mean']:.3f} ± {row['ari_60pct_sd']:.3f}"
        mark = " <- default" if row["method"] == gaps.DEFAULT_METHOD and row.get("threshold") == gaps.DEFAULT_THRESHOLD else ""
        print(f"{row['method']:<15} {option or '-':<22} {row['ari']:>6.3f} {row['nmi']:>6.3f} {row['topics']:>7} "
              f"{row['not_grouped']:>12.1%} {subset:>19}{mark}")
    print(f"default ({gaps.DEFAULT_METHOD}, threshold {gaps.DEFAULT_THRESHOLD}): first topic by need is mostly "
          f"'{first}'; the label with the most bad or unanswered runs is '{worst}'")
    print(json.dumps({"bench": "gaps", "questions": len(runs), "labels": len(set(truth)), "embedder": args.embedder,
                      "default": {"method": gaps.DEFAULT_METHOD, "threshold": gaps.DEFAULT_THRESHOLD},
                      "first_topic_label": first, "worst_label": worst, "candidates": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
