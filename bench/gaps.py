"""Docs-gaps clustering benchmark, out of sample: each candidate grouping on a real public question
stream (921 Stack Overflow threads tagged `airflow`, bench/public_questions.py) and on the
labelled questions written here (tests/data/gap_questions.jsonl, a regression set), each split in
two: the method and threshold are chosen on the `tune` halves and reported on the `report` halves.
Not a test. Prints a table and one JSON line; writes bench/results/gaps.json.

    uv run --frozen --with pyarrow python bench/gaps.py                 # public data from the mirror
    uv run --frozen --with pyarrow python bench/gaps.py --public DIR    # a clone of astronomer/ask-astro
    .venv/bin/python bench/gaps.py --no-public                          # the labelled set only

Each question (public: the thread's title and question body, as a user would ask it) is embedded
once with the local model; each candidate of `ragloop.gaps.cluster` groups the same vectors:
agglomerative (average linkage, cosine distance, cut at each --thresholds; and cut at each
--capped-thresholds but below any merge that makes a topic larger than each --max-topic-shares
of the questions), kmeans (k by
silhouette) and hdbscan (each --min-cluster-sizes). `ragloop.gaps.find_topics` then makes the
topics a user would see. Figures:
- largest_share: the largest topic's share of all questions (no topic may swallow most of them);
- not_grouped: the share left in the "not grouped" row;
- term_coverage: the share of grouped questions containing at least one of their topic's terms
  (do the terms describe the examples);
- label_similarity: the mean cosine of a topic's questions to its label question (does the label
  describe them), over grouped questions;
- ari / nmi against the topic labels (labelled set only; noise and lone questions count as singletons).
Selection rule (fixed before looking at the report halves): among candidates whose largest topic
holds at most MAX_LARGEST_SHARE of the public tune half, the best ARI on the labelled tune half
(ties: the first in the candidates' order, i.e. the lower threshold).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "gap_questions.jsonl"
RESULTS = REPO / "bench" / "results"
MAX_LARGEST_SHARE = 0.25


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


def labelled_split(index: int) -> str:
    return "tune" if index % 2 == 0 else "report"


def describe(questions: list[str], vectors: np.ndarray, topics) -> dict:
    """largest_share, not_grouped, topics, term_coverage and label_similarity of `find_topics` output."""
    import re

    from ragloop import gaps

    index_of = {str(i): i for i in range(len(questions))}
    grouped = [t for t in topics if t.topic_id != gaps.NOT_GROUPED]
    total = len(questions)
    covered = members = 0
    similar = 0.0
    for topic in grouped:
        terms = [term.lower() for term in topic.terms]
        label_vector = vectors[index_of[topic.run_ids[0]]]  # closest to the centroid: the label
        for run_id in topic.run_ids:
            words = set(re.findall(r"[a-z][a-z0-9_.-]+", questions[index_of[run_id]].lower()))
            covered += any(term in words for term in terms)
            similar += float(vectors[index_of[run_id]] @ label_vector) if run_id != topic.run_ids[0] else 0.0
        members += topic.size
    not_grouped = sum(t.size for t in topics if t.topic_id == gaps.NOT_GROUPED)
    others = members - len(grouped)
    return {
        "questions": total,
        "topics": len(grouped),
        "largest_share": round(max((t.size for t in grouped), default=0) / total, 3),
        "not_grouped": round(not_grouped / total, 3),
        "term_coverage": round(covered / members, 3) if members else None,
        "label_similarity": round(similar / others, 3) if others else None,
    }


def score(questions: list[str], vectors: np.ndarray, method: str, options: dict, truth: list[str] | None) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from ragloop import gaps

    runs = [{"run_id": str(i), "question": q, "answer": "", "sources": [], "vote_summary": {}, "grades": []}
            for i, q in enumerate(questions)]
    if method == "agglomerative":  # a candidate without a cap has none (find_topics would add the default)
        options = {"max_topic_share": None, **options}
    topics = gaps.find_topics(runs, vectors, method=method, **options)
    out = describe(questions, vectors, topics)
    largest = max((t for t in topics if t.topic_id != gaps.NOT_GROUPED), key=lambda t: t.size, default=None)
    out["largest_topic"] = None if largest is None else {"label": largest.label[:160], "terms": largest.terms, "size": largest.size}
    if truth is not None:
        found = [0] * len(questions)
        for topic in topics:
            for position, run_id in enumerate(topic.run_ids):
                found[int(run_id)] = topic.topic_id if topic.topic_id != gaps.NOT_GROUPED else -position - 1
        out["ari"] = round(adjusted_rand_score(truth, found), 3)
        out["nmi"] = round(normalized_mutual_info_score(truth, found), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ragloop import gaps
    from ragloop.embedding import make_embedder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="local", help="local (default) or hash")
    parser.add_argument("--thresholds", default="0.3,0.35,0.4,0.45,0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85")
    parser.add_argument("--min-cluster-sizes", default="3,5,8")
    parser.add_argument("--capped-thresholds", default="0.8,0.85,0.9,0.95,1.0", help="agglomerative cut with a cap on the largest topic")
    parser.add_argument("--max-topic-shares", default="0.05,0.1,0.15,0.2,0.25")
    parser.add_argument("--public", type=Path, help="a clone or mirror of astronomer/ask-astro")
    parser.add_argument("--no-public", action="store_true", help="the labelled set only")
    parser.add_argument("--out", type=Path, default=RESULTS / "gaps.json")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import public_questions

    embedder = make_embedder(args.embedder)
    started = time.perf_counter()
    lines = load_labelled()
    sets: dict[str, dict] = {}
    for split in ("tune", "report"):
        chosen = [line for i, line in enumerate(lines) if labelled_split(i) == split]
        questions = [line["run"]["question"] for line in chosen]
        sets[f"labelled/{split}"] = {"questions": questions, "truth": [line["topic"] for line in chosen]}
    provenance = None
    if not args.no_public:
        where = args.public or public_questions.DEFAULT_MIRROR
        threads = public_questions.load_threads(where)
        provenance = public_questions.provenance(where)
        for split in ("tune", "report"):
            questions = [f"{t.title}\n{t.question}" for t in threads if t.split == split]
            sets[f"public/{split}"] = {"questions": questions, "truth": None}
    for entry in sets.values():
        entry["vectors"] = gaps.normalize(gaps.question_vectors(embedder, [{"question": q} for q in entry["questions"]]))
    embed_seconds = time.perf_counter() - started

    candidates = [("agglomerative", {"threshold": float(t)}) for t in args.thresholds.split(",")]
    candidates += [("agglomerative", {"threshold": float(t), "max_topic_share": float(c)})
                   for t in args.capped_thresholds.split(",") for c in args.max_topic_shares.split(",")]
    candidates.append(("kmeans", {}))
    candidates += [("hdbscan", {"min_cluster_size": int(m)}) for m in args.min_cluster_sizes.split(",")]
    rows = []
    for method, options in candidates:
        row: dict = {"method": method, **options}
        for name, entry in sets.items():
            row[name] = score(entry["questions"], entry["vectors"], method, options, entry["truth"])
        rows.append(row)

    def option(row: dict) -> str:
        return ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("method",) and "/" not in k) or "-"

    eligible = [r for r in rows if "public/tune" not in r or r["public/tune"]["largest_share"] <= MAX_LARGEST_SHARE]
    best = max(eligible or rows, key=lambda r: (r["labelled/tune"]["ari"], -r["labelled/tune"].get("largest_share", 0)))
    default = next((r for r in rows if r["method"] == gaps.DEFAULT_METHOD and r.get("threshold") == gaps.DEFAULT_THRESHOLD
                    and r.get("max_topic_share") == gaps.DEFAULT_MAX_TOPIC_SHARE), None)

    header = (f"{'method':<14} {'option':<36} {'lab-tune ARI':>12} {'lab-rep ARI':>11} {'lab-rep NMI':>11} "
              f"{'pub-tune largest':>16} {'pub-rep largest':>15} {'pub-rep ungrouped':>17} {'pub-rep topics':>14} "
              f"{'pub-rep terms':>13} {'pub-rep label':>13}")
    sizes = ", ".join(f"{name}: {len(entry['questions'])}" for name, entry in sets.items())
    print(f"{sum(len(e['questions']) for e in sets.values())} questions ({sizes}); "
          f"embedder {args.embedder} ({embed_seconds:.1f} s to embed)")
    print(header)
    for row in rows:
        pub_t, pub_r = row.get("public/tune", {}), row.get("public/report", {})
        mark = " <- chosen" if row is best else ""
        mark += " <- current default" if row is default else ""
        print(f"{row['method']:<14} {option(row):<36} {row['labelled/tune']['ari']:>12.3f} {row['labelled/report']['ari']:>11.3f} "
              f"{row['labelled/report']['nmi']:>11.3f} {pub_t.get('largest_share', float('nan')):>16.1%} "
              f"{pub_r.get('largest_share', float('nan')):>15.1%} {pub_r.get('not_grouped', float('nan')):>17.1%} "
              f"{pub_r.get('topics', 0):>14} {pub_r.get('term_coverage') or float('nan'):>13.3f} "
              f"{pub_r.get('label_similarity') or float('nan'):>13.3f}{mark}")
    print(f"chosen on the tune halves: {best['method']} {option(best)}; rule: largest topic <= {MAX_LARGEST_SHARE:.0%} of the "
          "public tune half, then the best ARI on the labelled tune half")

    def commit() -> str:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()

    result = {
        "bench": "gaps", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "command": "python bench/gaps.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "embedder": args.embedder,
        "inputs": {
            "public": provenance,
            "labelled": {"path": "tests/data/gap_questions.jsonl", "written": "here (a regression set, not a headline)",
                         "split": "line number even: tune; odd: report"},
        },
        "sizes": {name: len(entry["questions"]) for name, entry in sets.items()},
        "selection_rule": f"public tune largest_share <= {MAX_LARGEST_SHARE}, then best labelled tune ARI",
        "chosen": {"method": best["method"], **{k: v for k, v in best.items() if k != "method" and "/" not in k},
                   "report": {k: v for k, v in best.items() if k.endswith("/report")}},
        "current_default": {"method": gaps.DEFAULT_METHOD, "threshold": gaps.DEFAULT_THRESHOLD,
                            "max_topic_share": gaps.DEFAULT_MAX_TOPIC_SHARE,
                            "report": {k: v for k, v in (default or {}).items() if k.endswith("/report")}},
        "candidates": rows,
        "embed_seconds": round(embed_seconds, 1),
    }
    print(json.dumps({k: result[k] for k in ("bench", "sizes", "chosen", "current_default")}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
