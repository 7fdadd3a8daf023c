"""Retrieval-quality benchmark: ragloop's hybrid search against vector-only and BM25-only search,
in the same run, on the same collection, over a labelled question set (bench/questions.yaml).

Not a test. Prints a table and one JSON line, and writes bench/results/retrieval-<time>.json.

    python bench/retrieval.py                    # every question, a private local Weaviate
    python bench/retrieval.py --limit 8          # the first 8 questions: a quick one
    python bench/retrieval.py --use-connection   # the Weaviate of weaviate_default instead
    python bench/retrieval.py --embedder local-torch   # the torch model (needs the `export` group)

The three bundled sample sources of include/sources.yaml (docs, a Slack export, a GitHub issues
export) are ingested with the configuration's chunking, the real local embedder and
`ragloop.ingest.ingest()` (the DAG's task bodies, no scheduler) into a dedicated collection.

Modes (all through `ragloop.index.search`, which is what `answer.retrieve` calls):
- ragloop: hybrid at the default of `index.search` (`index.HYBRID_ALPHA`);
- vector: alpha 1, the query's embedding alone;
- bm25: alpha 0, keywords alone.
A question's rank is the position of the first returned chunk whose document is one of its
expected documents, among the top 5 chunks (chunks, not documents: what an answer sees with
`--limit 5`). hit@k: the share of questions with rank <= k; MRR@5: the mean of 1/rank (0 past 5).
For ragloop's mode also: the share of questions whose offline extractive answer
(`answer.extractive_answer` over `answer.retrieve`) cites at least one expected document.
bench/questions.yaml was written here: it is a regression set, never the headline.

Out of sample, on public data (`--public`; needs pyarrow: `uv run --frozen --with pyarrow`):

    uv run --frozen --with pyarrow python bench/retrieval.py --public [DIR]   # -> bench/results/retrieval.json

921 Stack Overflow threads tagged `airflow` (bench/public_questions.py): each thread's answers
become one markdown document (the question's title and body left out), ingested through the docs
source with the configuration's chunking and the local embedder; each thread's title is asked,
and the expected document is its own answers. The threads are split by id (even: tune, odd:
report). MRR@5 and hit@k for every alpha of --alphas on both splits; alpha is chosen on the tune
split (best MRR@5) and reported on the report split, next to the current default, vector alone
(alpha 1) and BM25 alone (alpha 0).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_env import add_common_arguments, bench_environment, log
from ragloop.index import HYBRID_ALPHA  # light: the Weaviate client is imported when used

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUESTIONS = HERE / "questions.yaml"
SOURCES_CONFIG = REPO / "include" / "sources.yaml"

TOP_K = 5
HIT_AT = (1, 3, 5)
MODES = {"ragloop": HYBRID_ALPHA, "vector": 1.0, "bm25": 0.0}  # name -> hybrid alpha
BASELINES = ("vector", "bm25")
KINDS = ("docs", "slack", "github")
DEFAULT_COLLECTION = "BenchRetrieval"
CITATION = re.compile(r"\[(\d+)\]")


# --- the question set ---------------------------------------------------------------------------

@dataclass
class Question:
    text: str
    expected: list[str]
    kind: str = ""  # the kind of its primary (first) expected document, as indexed


def load_questions(path: Path) -> list[Question]:
    import yaml

    data = yaml.safe_load(path.read_text())
    questions = []
    for number, entry in enumerate(data["questions"], 1):
        text, expected = entry.get("question"), entry.get("expected")
        if not isinstance(text, str) or not text.strip() or not isinstance(expected, list) or not expected:
            raise ValueError(f"{path}: question {number} needs a non-empty `question` and a non-empty `expected` list")
        questions.append(Question(text.strip(), [str(doc_id) for doc_id in expected]))
    return questions


# --- the collection -----------------------------------------------------------------------------

def write_bench_config(work: Path, collection: str, embedder: str = "local") -> Path:
    """include/sources.yaml as it is (sources, chunking, embedder options), written to another
    collection, staged under `work`, with the samples' paths made absolute and the given local
    embedder (`local`: ONNX int8, `local-torch`)."""
    import yaml

    config = yaml.safe_load(SOURCES_CONFIG.read_text())
    config["collection"] = collection
    config["embedder"] = embedder
    config["staging"] = f"file://{work / 'staging'}"
    config.pop("llm", None)  # retrieval only: answers stay extractive and offline
    for source in config["sources"]:
        for key in ("path", "export"):
            if key in source and not Path(source[key]).is_absolute():
                source[key] = str(REPO / source[key])
    path = work / "retrieval-sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def source_types(config_path: Path) -> list[str]:
    from ragloop.config import load_config

    return list(dict.fromkeys(source["type"] for source in load_config(config_path).sources))


def ingest_samples(config_path: Path, embedder, log) -> dict:
    from ragloop.ingest import ingest

    totals = {"documents": 0, "chunks_embedded": 0, "seconds": 0.0}
    for source_type in source_types(config_path):
        started = time.monotonic()
        report = ingest(f"bench-retrieval-{source_type}", str(config_path), source_type=source_type, embedder=embedder)
        seconds = time.monotonic() - started
        documents = sum(s["documents"]["seen"] for s in report["sources"].values())
        totals["documents"] += documents
        totals["chunks_embedded"] += report["totals"]["embedded"]
        totals["seconds"] += seconds
        log(f"  {source_type}: {documents} documents, {report['totals']['embedded']} chunks embedded in {seconds:.1f} s")
    totals["seconds"] = round(totals["seconds"], 2)
    return totals


def indexed_documents(client, collection: str) -> dict[str, dict]:
    """doc_id -> its kind and chunk count, read with the cursor iterator."""
    documents: dict[str, dict] = {}
    for obj in client.collections.use(collection).iterator(return_properties=["doc_id", "kind"]):
        entry = documents.setdefault(obj.properties["doc_id"], {"kind": obj.properties["kind"], "chunks": 0})
        entry["chunks"] += 1
    return documents


# --- measuring ----------------------------------------------------------------------------------

@dataclass
class ModeResult:
    mode: str
    alpha: float
    ranks: list[int | None] = field(default_factory=list)  # per question: 1-based rank or None

    def metrics(self, indexes: list[int] | None = None) -> dict:
        ranks = self.ranks if indexes is None else [self.ranks[i] for i in indexes]
        count = len(ranks)
        out: dict = {"questions": count}
        for k in HIT_AT:
            out[f"hit@{k}"] = round(sum(1 for r in ranks if r is not None and r <= k) / count, 3) if count else None
        out[f"mrr@{TOP_K}"] = round(sum(1 / r for r in ranks if r is not None) / count, 3) if count else None
        return out


def first_expected_rank(doc_ids: list[str], expected: list[str]) -> int | None:
    wanted = set(expected)
    return next((rank for rank, doc_id in enumerate(doc_ids, 1) if doc_id in wanted), None)


def cited_doc_ids(answer_text: str, sources) -> set[str]:
    by_number = {source.number: source.doc_id for source in sources}
    return {by_number[int(n)] for n in CITATION.findall(answer_text) if int(n) in by_number}


def run_questions(client, collection: str, embedder, questions: list[Question], log) -> tuple[dict, list[dict]]:
    from ragloop.answer import extractive_answer, retrieve
    from ragloop.index import search

    results = {mode: ModeResult(mode, alpha) for mode, alpha in MODES.items()}
    details = []
    for number, question in enumerate(questions, 1):
        detail: dict = {"question": question.text, "kind": question.kind, "expected": question.expected, "ranks": {}}
        for mode, alpha in MODES.items():
            hits = search(client, collection, embedder, question.text, limit=TOP_K, alpha=alpha)
            rank = first_expected_rank([hit.doc_id for hit in hits], question.expected)
            results[mode].ranks.append(rank)
            detail["ranks"][mode] = rank
            if mode == "ragloop":
                detail["top_docs"] = [hit.doc_id for hit in hits]
        sources = retrieve(client, collection, embedder, [question.text], TOP_K)
        cited = cited_doc_ids(extractive_answer(question.text, sources), sources)
        detail["answer_cites"] = sorted(cited)
        detail["answer_cites_expected"] = bool(cited & set(question.expected))
        details.append(detail)
        marks = " ".join(f"{mode}={detail['ranks'][mode] or '-'}" for mode in MODES)
        log(f"  [{number}/{len(questions)}] {marks} cites={'yes' if detail['answer_cites_expected'] else 'no'}  {question.text[:70]}")
    return results, details


def summarise(results: dict, details: list[dict]) -> dict:
    kinds = [*KINDS, *sorted({d["kind"] for d in details} - set(KINDS))]
    by_kind_indexes = {kind: [i for i, d in enumerate(details) if d["kind"] == kind] for kind in kinds}
    modes = {}
    for mode, result in results.items():
        modes[mode] = {
            "alpha": result.alpha,
            **result.metrics(),
            "by_kind": {kind: result.metrics(indexes) for kind, indexes in by_kind_indexes.items() if indexes},
        }
    cites = [d["answer_cites_expected"] for d in details]
    modes["ragloop"]["extractive_answer_cites_expected"] = round(sum(cites) / len(cites), 3) if cites else None
    return modes


def ratios(modes: dict) -> dict:
    """ragloop's metric / each baseline's, per metric (None where the baseline scored 0)."""
    out = {}
    for baseline in BASELINES:
        for metric in (*(f"hit@{k}" for k in HIT_AT), f"mrr@{TOP_K}"):
            ours, theirs = modes["ragloop"][metric], modes[baseline][metric]
            out[f"{metric}_ragloop_vs_{baseline}"] = round(ours / theirs, 3) if theirs else None
    return out


def table(modes: dict) -> str:
    metrics = (*(f"hit@{k}" for k in HIT_AT), f"mrr@{TOP_K}")
    header = f"{'mode':<8} {'alpha':>5} {'kind':<7} {'questions':>9} " + " ".join(f"{m:>6}" for m in metrics)
    lines = [header, "-" * len(header)]

    def row(mode: str, alpha: float, kind: str, values: dict) -> str:
        return f"{mode:<8} {alpha:>5} {kind:<7} {values['questions']:>9} " + " ".join(
            f"{values[m]:>6.3f}" for m in metrics)

    for mode, values in modes.items():
        lines.append(row(mode, values["alpha"], "all", values))
        for kind, per_kind in values["by_kind"].items():
            lines.append(row(mode, values["alpha"], kind, per_kind))
    share = modes["ragloop"]["extractive_answer_cites_expected"]
    lines.append(f"ragloop extractive answers citing an expected document: {share:.3f}")
    return "\n".join(lines)


# --- public, out of sample ----------------------------------------------------------------------

class CachedQueries:
    """The embedder, with each query embedded once (every alpha asks the same questions)."""

    def __init__(self, inner):
        self.inner = inner
        self.cache: dict[str, list[float]] = {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing), strict=False))
        return [self.cache[t] for t in texts]


def write_public_corpus(threads, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for thread in threads:
        (folder / f"so-{thread.thread_id}.md").write_text(f"# Answers\n\n{thread.answers}\n", encoding="utf-8")


def public_main(args) -> int:
    import yaml

    import public_questions
    from ragloop.cli import reserve_stdout_for_results

    threads = public_questions.load_threads(args.public)
    provenance = public_questions.provenance(args.public)
    alphas = [float(a) for a in args.alphas.split(",")]
    out = reserve_stdout_for_results()
    started = time.monotonic()
    with bench_environment("ragloop-bench-retrieval-public-", args.use_connection, log, private_state=False) as work:
        from ragloop.embedding import make_embedder
        from ragloop.index import connect, drop_collection, search
        from ragloop.ingest import ingest

        corpus = work / "stackoverflow"
        write_public_corpus(threads, corpus)
        base = yaml.safe_load(SOURCES_CONFIG.read_text())
        collection = f"{args.collection}Public"
        config = {"collection": collection, "embedder": args.embedder, "chunking": base["chunking"],
                  "staging": f"file://{work / 'staging'}",
                  "sources": [{"id": "so", "type": "docs", "path": str(corpus), "include": ["*.md"],
                               "url_template": "https://stackoverflow.com/questions/{path}"}]}
        config_path = work / "public-sources.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        embedder = CachedQueries(make_embedder(args.embedder))
        with connect() as client:
            drop_collection(client, collection)
        log(f"Ingesting {len(threads)} threads' answers into {collection}...")
        ingest_started = time.monotonic()
        ingest("bench-retrieval-public", str(config_path), source_type="docs", embedder=embedder.inner)
        ingest_seconds = time.monotonic() - ingest_started
        ranks: dict[float, dict[str, list[int | None]]] = {a: {"tune": [], "report": []} for a in alphas}
        with connect() as client:
            try:
                indexed = indexed_documents(client, collection)
                missing = [t.thread_id for t in threads if f"so:so-{t.thread_id}.md" not in indexed]
                log(f"Asking {len(threads)} titles at {len(alphas)} alphas...")
                for number, thread in enumerate(threads, 1):
                    expected = [f"so:so-{thread.thread_id}.md"]
                    for alpha in alphas:
                        hits = search(client, collection, embedder, thread.title, limit=TOP_K, alpha=alpha)  # type: ignore[arg-type]  # an Embedder by delegation
                        ranks[alpha][thread.split].append(first_expected_rank([h.doc_id for h in hits], expected))
                    if number % 100 == 0:
                        log(f"  {number}/{len(threads)}")
            finally:
                drop_collection(client, collection)

    def metrics(values: list[int | None]) -> dict:
        return ModeResult("", 0.0, values).metrics()

    table_rows = {a: {split: metrics(ranks[a][split]) for split in ("tune", "report")} for a in alphas}
    chosen = max(alphas, key=lambda a: (table_rows[a]["tune"][f"mrr@{TOP_K}"], -abs(a - HYBRID_ALPHA)))
    print(f"{'alpha':>5} {'tune MRR@5':>10} {'tune hit@1':>10} {'report MRR@5':>12} {'report hit@1':>12} {'report hit@5':>12}", file=out)
    for a in alphas:
        t, r = table_rows[a]["tune"], table_rows[a]["report"]
        mark = (" <- chosen on tune" if a == chosen else "") + (" <- current default" if a == HYBRID_ALPHA else "")
        print(f"{a:>5.2f} {t['mrr@5']:>10.3f} {t['hit@1']:>10.3f} {r['mrr@5']:>12.3f} {r['hit@1']:>12.3f} {r['hit@5']:>12.3f}{mark}",
              file=out)
    result = {
        "benchmark": "retrieval-public",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": os.popen(f"git -C {REPO} rev-parse HEAD").read().strip(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "command": "python bench/retrieval.py " + " ".join(sys.argv[1:]),
        "inputs": {"public": provenance, "documents": "each thread's answers (title and question left out)",
                   "questions": "each thread's title", "expected": "the thread's own answers document"},
        "embedder": embedder.name, "top_k": TOP_K, "chunking": base["chunking"],
        "collection": {"documents": len(indexed), "chunks": sum(d["chunks"] for d in indexed.values()),
                       "ingest_seconds": round(ingest_seconds, 1)},
        "missing_documents": missing,
        "splits": {split: sum(1 for t in threads if t.split == split) for split in ("tune", "report")},
        "selection_rule": "best tune MRR@5 (ties: the alpha nearest the current default)",
        "current_default": HYBRID_ALPHA,
        "chosen_on_tune": chosen,
        "report": {"chosen": table_rows[chosen]["report"], "current_default": table_rows.get(HYBRID_ALPHA, {}).get("report"),
                   "vector": table_rows.get(1.0, {}).get("report"), "bm25": table_rows.get(0.0, {}).get("report")},
        "by_alpha": {str(a): v for a, v in table_rows.items()},
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps({k: result[k] for k in ("chosen_on_tune", "current_default", "report")}), file=out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrieval.json").write_text(json.dumps(result, indent=2, default=str))
    return 1 if missing else 0


# --- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=QUESTIONS, help="the labelled question set (YAML)")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--collection", default=DEFAULT_COLLECTION,
                        help=f"the collection to (re)build; dropped first and afterwards (default {DEFAULT_COLLECTION})")
    parser.add_argument("--embedder", default="local", choices=("local", "local-torch"),
                        help="local: all-MiniLM-L6-v2 on ONNX Runtime, int8 (the default); local-torch: the same "
                             "weights through torch (needs the `export` dependency group)")
    parser.add_argument("--public", nargs="?", type=Path, const=Path("/work/.mirror/astronomer+ask-astro/repo"),
                        help="out of sample on public Stack Overflow threads: a clone or mirror of astronomer/ask-astro")
    parser.add_argument("--alphas", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", help="alphas tried with --public")
    add_common_arguments(parser, HERE / "results")
    args = parser.parse_args(argv)
    if args.public:
        return public_main(args)

    questions = load_questions(args.questions)
    all_expected = sorted({doc_id for q in questions for doc_id in q.expected})
    if args.limit:
        questions = questions[: args.limit]

    from ragloop.cli import reserve_stdout_for_results

    out = reserve_stdout_for_results()  # Airflow logs to stdout; the table and JSON line own it

    started = time.monotonic()
    with bench_environment("ragloop-bench-retrieval-", args.use_connection, log, private_state=False) as work:
        from ragloop.embedding import make_embedder
        from ragloop.index import connect, drop_collection

        config_path = write_bench_config(work, args.collection, args.embedder)
        embedder = make_embedder(args.embedder)
        with connect() as client:
            drop_collection(client, args.collection)  # a leftover of an interrupted run may hold other documents
        log(f"Ingesting the bundled samples into {args.collection} ({embedder.name})...")
        ingested = ingest_samples(config_path, embedder, log)

        with connect() as client:
            try:
                indexed = indexed_documents(client, args.collection)
                # Over the whole question set, not only the --limit ones: a wrong label is found on a quick run too.
                unknown = [doc_id for doc_id in all_expected if doc_id not in indexed]
                for question in questions:
                    question.kind = indexed.get(question.expected[0], {}).get("kind", "unknown")
                if unknown:
                    log(f"Labelled doc_ids not in the collection: {', '.join(unknown)}")
                log(f"Asking {len(questions)} questions in {len(MODES)} modes...")
                results, details = run_questions(client, args.collection, embedder, questions, log)
            finally:
                drop_collection(client, args.collection)

        modes = summarise(results, details)
        result = {
            "benchmark": "retrieval",
            "questions_file": str(args.questions),
            "questions": len(questions),
            "top_k": TOP_K,
            "collection": {
                "documents": len(indexed), "chunks": sum(d["chunks"] for d in indexed.values()),
                "documents_by_kind": {kind: sum(1 for d in indexed.values() if d["kind"] == kind) for kind in KINDS},
                "ingest_seconds": ingested["seconds"],
            },
            "labels": {"doc_ids": len(all_expected), "unknown": unknown},
            "embedder": embedder.name,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "modes": modes,
            "ratios": ratios(modes),
            "details": details,
            "seconds": round(time.monotonic() - started, 1),
        }
        print(table(modes), file=out)
        print("ratios: " + json.dumps(result["ratios"]), file=out)
        if unknown:
            print(f"labels not in the collection: {', '.join(unknown)}", file=out)
        print(json.dumps(result, default=str), file=out)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"retrieval-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2, default=str))
        return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
