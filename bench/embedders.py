"""Embedder benchmark: all-MiniLM-L6-v2 on ONNX Runtime (int8, ragloop's `local`) against the same
weights through torch (`local-torch`), in the same run, on the same chunks.

Not a test. Prints a table and one JSON line, and writes bench/results/embedders-<time>.json.

    python bench/embedders.py                      # speed, memory, closeness and retrieval quality
    python bench/embedders.py --no-retrieval       # speed, memory and closeness only (about 2 min)
    python bench/embedders.py --settings [--texts N] [--rounds R]
        # the local model's run settings on real docs chunks (Airflow provider sdists, read in place):
        # today's (one text per run, intra-op threads), workers (one text per core), and ONNX
        # Runtime's own best throughput setting for the same model (length-sorted batches of 32,
        # all threads, spinning on); writes bench/results/embedder-settings-<time>.json

Each embedder runs in a process of its own, so its peak memory (the kernel's VmHWM) and its load
time are its own: ONNX in this environment (which has no torch), torch in the export environment
(`make export-env`: torch, sentence-transformers, the weights). The rounds alternate ONNX and torch
so that whatever else runs on the machine weighs on both alike.

The chunks: the bundled sample docs and `--files` generated markdown files, split by ragloop's
chunker for the model (at most 254 word pieces each). Retrieval quality: bench/retrieval.py once
per embedder (its hit@5 = recall@5 of the labelled documents, and MRR@5), the torch one in a
project environment with the `export` group (created by uv in the cache on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_env import git_commit, write_results  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- a worker: one embedder in one process --------------------------------------------------------

def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def worker(kind: str, texts_path: Path, out: Path) -> None:
    started = time.monotonic()
    import numpy as np

    from ragloop.embedding import LocalEmbedder, TorchEmbedder

    embedder = LocalEmbedder() if kind == "onnx" else TorchEmbedder()
    texts = json.loads(texts_path.read_text())
    _ = embedder.model  # the load, timed apart from embedding
    loaded = time.monotonic() - started
    embedder.embed(texts[:8])  # first-call allocations are not part of the rate
    began = time.monotonic()
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    seconds = time.monotonic() - began
    np.save(out.with_suffix(".npy"), vectors)
    out.write_text(json.dumps({
        "embedder": embedder.name, "texts": len(texts), "seconds": round(seconds, 2),
        "texts_per_second": round(len(texts) / seconds, 2), "load_seconds": round(loaded, 2),
        "peak_rss_mb": peak_rss_mb(), "torch_imported": "torch" in sys.modules,
    }))


# --- the driver -----------------------------------------------------------------------------------

def bench_chunks(files: int, work: Path) -> list[str]:
    """Chunk texts as ragloop's chunker cuts them for all-MiniLM-L6-v2."""
    import corpus

    from ragloop.chunking import ChunkingSettings, chunker_for
    from ragloop.embedding import HashEmbedder
    from ragloop.sources import ExtractReport, make_source

    folders = [REPO / "include" / "samples" / "docs"]
    if files:
        corpus.generate(work / "generated", files, seed=5)
        folders.append(work / "generated")
    chunker = chunker_for(HashEmbedder(), ChunkingSettings(max_tokens=256, overlap_tokens=32))
    texts = []
    for number, folder in enumerate(folders):
        source = make_source({"id": f"bench{number}", "type": "docs", "path": str(folder),
                              "include": ["**/*.md", "**/*.mdx", "**/*.rst"]}, REPO)
        for document in source.load_all(ExtractReport(f"bench{number}")):
            texts += [chunk.text for chunk in chunker.split(document)]
    return texts


def run_worker(kind: str, texts_path: Path, out: Path) -> dict:
    from ragloop.embedding.onnx_manifest import export_env

    python = sys.executable if kind == "onnx" else str(export_env() / "bin" / "python")
    if not Path(python).exists():
        raise SystemExit(f"No export environment at {export_env()}: run `make export-env` first")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(HERE)]),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([python, str(Path(__file__).resolve()), "--worker", kind, "--texts-file", str(texts_path),
                             "--worker-out", str(out)], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the {kind} worker failed:\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())


# --- the local model's run settings ---------------------------------------------------------------

PROVIDER_SDISTS = Path.home() / ".cache" / "ragloop" / "bench" / "provider-sdists"


def provider_doc_chunks(folder: Path, limit: int) -> tuple[list[str], list[str]]:
    """Chunks of the docs/ pages of the Airflow provider sdists (read in place, never copied), cut by
    ragloop's chunker; a seeded sample of `limit`. Returns (texts, the archives read)."""
    import random
    import tarfile

    from ragloop.chunking import ChunkingSettings, chunker_for
    from ragloop.documents import Document
    from ragloop.embedding import HashEmbedder

    archives = sorted(folder.glob("apache_airflow_providers_*.tar.gz"))
    if not archives:
        raise SystemExit(f"No provider sdists in {folder}: get them as bench/grounding.py's docstring says "
                         "(pip download --no-deps --no-binary :all: -d DIR apache-airflow-providers-http==6.3.0 ...)")
    chunker = chunker_for(HashEmbedder(), ChunkingSettings())
    texts = []
    for archive in archives:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if "/docs/" not in member.name or not member.name.endswith((".rst", ".md")):
                    continue
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                document = Document(doc_id=member.name, source_id="bench", kind="docs", title=Path(member.name).stem,
                                    content=handle.read().decode("utf-8", "replace"),
                                    metadata={"format": "rst" if member.name.endswith(".rst") else "markdown"})
                texts += [chunk.text for chunk in chunker.split(document)]
    random.Random(26).shuffle(texts)
    return texts[:limit], [a.name for a in archives]


def ort_best_vectors(embedder, texts: list[str]):
    """ONNX Runtime's own best throughput setting for the same model file: length-sorted batches of
    32, its default thread pool (all cores, spinning on). Vectors then depend on the batch."""
    import numpy as np
    import onnxruntime

    from ragloop.embedding.onnx_manifest import MODEL_FILE

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(Path(embedder.model_dir) / MODEL_FILE), options,
                                           providers=["CPUExecutionProvider"])
    tokenizer = embedder.model.tokenizer
    encoded = [e.ids[:255] + e.ids[-1:] if len(e.ids) > 256 else e.ids for e in tokenizer.encode_batch_fast(texts)]

    def run() -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        out = np.empty((len(texts), embedder.dimension), dtype=np.float32)
        for start in range(0, len(order), 32):
            rows = order[start:start + 32]
            width = max(len(encoded[i]) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, i in enumerate(rows):
                ids[row, :len(encoded[i])] = encoded[i]
                mask[row, :len(encoded[i])] = 1
            out[rows] = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                           "token_type_ids": np.zeros_like(ids)})[0]
        return out

    return run


def settings_bench(args) -> int:
    import numpy as np

    from ragloop.embedding import LocalEmbedder

    texts, archives = provider_doc_chunks(args.sdists, args.texts)
    today = LocalEmbedder(workers=1)  # one text per run, ONNX Runtime's intra-op threads on all cores
    workers = LocalEmbedder(workers=os.cpu_count() or 2)  # one text per run, one run per core
    best = ort_best_vectors(today, texts)
    settings = {
        "today (1 text per run, intra-op threads)": lambda: np.asarray(today.embed(texts), dtype=np.float32),
        f"workers={workers.workers} (1 text per run per core)": lambda: np.asarray(workers.embed(texts), dtype=np.float32),
        "ONNX Runtime best (batches of 32, all threads)": best,
    }
    today.embed(texts[:8])  # loads the session before timing
    workers.embed(texts[:8])
    load = os.getloadavg()
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in settings}
    vectors = {}
    for round_number in range(args.rounds):
        for name, run in settings.items():
            cpu, wall = time.process_time(), time.monotonic()
            vectors[name] = run()
            timings[name].append((time.monotonic() - wall, time.process_time() - cpu))
            log(f"  round {round_number + 1} {name}: {len(texts) / timings[name][-1][0]:.1f} texts/s")
    names = list(settings)
    reference = vectors[names[0]]
    rows = {}
    for name in names:
        wall = sum(w for w, _ in timings[name])
        cpu = sum(c for _, c in timings[name])
        cosines = (vectors[name] * reference).sum(axis=1)
        rows[name] = {"texts_per_second": round(len(texts) * args.rounds / wall, 2),
                      "per_round": [round(len(texts) / w, 2) for w, _ in timings[name]],
                      "cpu_ms_per_text": round(1000 * cpu / (len(texts) * args.rounds), 2),
                      "max_abs_diff_to_today": float(np.abs(vectors[name] - reference).max()),
                      "min_cosine_to_today": round(float(cosines.min()), 5)}
    base = rows[names[0]]["texts_per_second"]
    for name in names:
        rows[name]["speed_vs_today"] = round(rows[name]["texts_per_second"] / base, 2)
    words = [len(t.split()) for t in texts]
    result = {
        "benchmark": "embedder-settings", "commit": git_commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_average_at_start": [round(x, 1) for x in load], "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
                    "note": "wall-clock figures include whatever else ran (see the load averages); cpu_ms_per_text is the process's own CPU time"},
        "model": today.name, "model_dir": today.model_dir,
        "inputs": {"texts": len(texts), "median_words": int(np.median(words)), "rounds": args.rounds,
                   "provenance": {"source": "Apache Airflow provider sdists (PyPI), docs/ pages, read in place",
                                  "archives": archives, "chunker": "ragloop ChunkingSettings() defaults", "sample_seed": 26}},
        "settings": rows,
    }
    for name, row in rows.items():
        print(f"{name:<52} {row['texts_per_second']:>7} texts/s  x{row['speed_vs_today']:<5} "
              f"{row['cpu_ms_per_text']:>6} cpu-ms/text  max|diff| {row['max_abs_diff_to_today']:.2e}")
    write_results(args.out, "embedder-settings", result)
    return 0



def run_retrieval(embedder: str) -> dict:
    """bench/retrieval.py with one embedder; its JSON line. torch runs in a project environment
    with the export group (uv keeps it in its cache; the project's .venv is not touched)."""
    from ragloop.paths import cache_dir

    command = [sys.executable, str(HERE / "retrieval.py"), "--embedder", embedder]
    env = dict(os.environ)
    if embedder == "local-torch":
        env["UV_PROJECT_ENVIRONMENT"] = str(cache_dir() / "torch-project-env")
        command = ["uv", "run", "--frozen", "--group", "export", "python", str(HERE / "retrieval.py"), "--embedder", embedder]
    log(f"  retrieval: {' '.join(command[-4:])}...")
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"bench/retrieval.py --embedder {embedder} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=150, help="generated markdown files added to the sample docs (default 150)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating ONNX/torch rounds (default 2)")
    parser.add_argument("--no-retrieval", action="store_true", help="skip bench/retrieval.py")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--settings", action="store_true", help="compare the local model's run settings (see above)")
    parser.add_argument("--texts", dest="text_count", type=int, default=400, help="--settings: docs chunks sampled (default 400)")
    parser.add_argument("--sdists", type=Path, default=PROVIDER_SDISTS, help="--settings: folder of provider sdists")
    parser.add_argument("--worker", choices=("onnx", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--texts-file", dest="texts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.texts, args.worker_out)
        return 0
    if args.settings:
        args.texts = args.text_count
        return settings_bench(args)

    import numpy as np

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ragloop-bench-embedders-") as folder:
        work = Path(folder)
        texts = bench_chunks(args.files, work)
        texts_path = work / "texts.json"
        texts_path.write_text(json.dumps(texts))
        words = [len(t.split()) for t in texts]
        log(f"{len(texts)} chunks (median {int(np.median(words))} words); {args.rounds} rounds of ONNX then torch")
        runs: dict[str, list[dict]] = {"onnx": [], "torch": []}
        vectors = {}
        for round_number in range(args.rounds):
            for kind in ("onnx", "torch"):
                out = work / f"{kind}-{round_number}.json"
                runs[kind].append(run_worker(kind, texts_path, out))
                vectors[kind] = np.load(out.with_suffix(".npy"))
                log(f"  round {round_number + 1} {kind}: {runs[kind][-1]['texts_per_second']} texts/s, "
                    f"load {runs[kind][-1]['load_seconds']} s, peak {runs[kind][-1]['peak_rss_mb']} MB")
        cosines = (vectors["onnx"] * vectors["torch"]).sum(axis=1)

    def summary(kind: str) -> dict:
        rows = runs[kind]
        total = sum(r["seconds"] for r in rows)
        return {"embedder": rows[0]["embedder"], "texts_per_second": round(len(texts) * len(rows) / total, 2),
                "per_round": [r["texts_per_second"] for r in rows],
                "load_seconds": round(min(r["load_seconds"] for r in rows), 2),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in rows), "torch_imported": rows[0]["torch_imported"]}

    result: dict[str, Any] = {"benchmark": "embedders", "chunks": len(texts), "median_words": int(np.median(words)),
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
              "onnx": summary("onnx"), "torch": summary("torch"),
              "cosine_onnx_torch": {"min": round(float(cosines.min()), 4), "mean": round(float(cosines.mean()), 4),
                                    "p01": round(float(np.percentile(cosines, 1)), 4)}}
    result["ratios"] = {
        "texts_per_second_onnx_vs_torch": round(result["onnx"]["texts_per_second"] / result["torch"]["texts_per_second"], 2),
        "peak_rss_onnx_vs_torch": round(result["onnx"]["peak_rss_mb"] / result["torch"]["peak_rss_mb"], 2),
        "load_seconds_onnx_vs_torch": round(result["onnx"]["load_seconds"] / result["torch"]["load_seconds"], 3),
    }
    if not args.no_retrieval:
        for name, embedder in (("onnx", "local"), ("torch", "local-torch")):
            retrieval = run_retrieval(embedder)
            result[name]["retrieval"] = {mode: {"recall@5": values["hit@5"], "mrr@5": values["mrr@5"], "hit@1": values["hit@1"]}
                                         for mode, values in retrieval["modes"].items()}
            result[name]["retrieval_embedder"] = retrieval["embedder"]
        for mode in ("ragloop", "vector"):
            result["ratios"][f"recall@5_{mode}_onnx_minus_torch"] = round(
                result["onnx"]["retrieval"][mode]["recall@5"] - result["torch"]["retrieval"][mode]["recall@5"], 4)
            result["ratios"][f"mrr@5_{mode}_onnx_minus_torch"] = round(
                result["onnx"]["retrieval"][mode]["mrr@5"] - result["torch"]["retrieval"][mode]["mrr@5"], 4)
    result["targets"] = {"texts/s ONNX >= 1.5x torch": result["ratios"]["texts_per_second_onnx_vs_torch"] >= 1.5}
    if not args.no_retrieval:
        result["targets"]["recall@5 (ragloop hybrid) within 0.01 of torch"] = \
            abs(result["ratios"]["recall@5_ragloop_onnx_minus_torch"]) <= 0.01
        result["targets"]["recall@5 (vector alone) within 0.01 of torch"] = \
            abs(result["ratios"]["recall@5_vector_onnx_minus_torch"]) <= 0.01
    result["seconds"] = round(time.monotonic() - started, 1)

    header = f"{'embedder':<36} {'texts/s':>8} {'per round':>16} {'load s':>7} {'peak MB':>8} {'recall@5':>9} {'MRR@5':>6} {'vec r@5':>8} {'vec MRR':>8}"
    print(header)
    print("-" * len(header))
    for kind in ("onnx", "torch"):
        s = result[kind]
        r = s.get("retrieval", {})
        cells = [f"{r[m][k]:.3f}" if r else "-" for m, k in (("ragloop", "recall@5"), ("ragloop", "mrr@5"),
                                                             ("vector", "recall@5"), ("vector", "mrr@5"))]
        print(f"{s['embedder']:<36} {s['texts_per_second']:>8} {'/'.join(map(str, s['per_round'])):>16} "
              f"{s['load_seconds']:>7} {s['peak_rss_mb']:>8} {cells[0]:>9} {cells[1]:>6} {cells[2]:>8} {cells[3]:>8}")
    print(f"cosine ONNX/torch over {len(texts)} chunks: {result['cosine_onnx_torch']}")
    print("ratios: " + json.dumps(result["ratios"]))
    for name, ok in result["targets"].items():
        print(f"target {name}: {'met' if ok else 'MISSED'}")
    print(json.dumps(result))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"embedders-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
