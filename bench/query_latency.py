"""Query latency: `search` and offline `ask` (no language model: the extractive answer), p50 and p95,
at 100k chunks in a private local Weaviate, optionally behind bench/latency_proxy.py.

Not a test. Prints a table and writes bench/results/query-latency-<time>.json.

    python bench/query_latency.py                         # 100k chunks, 200 queries per mode
    python bench/query_latency.py --chunks 5000 --queries 50 --delay-ms 2   # quick, through the proxy

What it times, per query (after 5 untimed warm-up queries per mode):
- search, one client reused: `index.search` with the client of one `connect()`;
- search, a client per query: `connect()` then `search`, as a caller holding no client does;
  and the same with client reuse switched off (what every `connect()` cost before it kept
  clients), likewise for ask;
- the same search and ask with the collection checked on every query (exists, its embedder
  record, its records collection), as before search checked it once per client and TTL;
- ask (offline): `answer.ask` with a config whose embedder is `hash` and no `llm:` (load the
  config, build the embedder, connect, retrieve, quote): what the CLI and apps call;
- the local model's query embedding: `LocalEmbedder().embed([query])`, the share the model adds
  to a query when the collection is filled by `embedder: local`;
- a profile (cProfile) of the offline asks: the functions that take the time.

The collection: generated markdown (bench/corpus.py) cut by ragloop's chunker, embedded with the
hash embedder and written straight with the client's batch (untimed). The hash embedder is used for
bulk writing and querying alike: the index's search cost depends on the number and dimension (384)
of the vectors, not on what made them, and the query must be embedded by the embedder the
collection records; the local model's own share is timed apart, on the same queries.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from bench_env import add_common_arguments, bench_environment, git_commit, log, write_results  # noqa: E402

COLLECTION = "BenchQueryLatency"
WARM_UP = 5


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def summary(milliseconds: list[float]) -> dict:
    return {"n": len(milliseconds), "p50_ms": round(percentile(milliseconds, 0.5), 2),
            "p95_ms": round(percentile(milliseconds, 0.95), 2), "mean_ms": round(statistics.fmean(milliseconds), 2),
            "max_ms": round(max(milliseconds), 2)}


def timed(queries: list[str], call: Callable[[str], object]) -> list[float]:
    for query in queries[:WARM_UP]:
        call(query)
    times = []
    for query in queries:
        started = time.perf_counter()
        call(query)
        times.append((time.perf_counter() - started) * 1000)
    return times


@contextmanager
def no_client_reuse() -> Iterator[None]:
    from ragloop.airflow.hooks import weaviate as hook

    saved = hook._IdleClients.IDLE_SECONDS
    hook._IdleClients.IDLE_SECONDS = -1.0
    try:
        yield
    finally:
        hook._IdleClients.IDLE_SECONDS = saved


@contextmanager
def collection_checked_every_query() -> Iterator[None]:
    """As before search checked its collection once per client: a TTL of zero checks every time."""
    import importlib

    search_module: Any = importlib.import_module("ragloop.index.search")  # the package exports the function
    saved = search_module.CHECK_TTL_SECONDS
    search_module.CHECK_TTL_SECONDS = 0.0
    try:
        yield
    finally:
        search_module.CHECK_TTL_SECONDS = saved


def queries_for(count: int, seed: int = 23) -> list[str]:
    """Question-like queries in the corpus' vocabulary (so BM25 and vectors both have work)."""
    rng = random.Random(seed)
    return [corpus._sentence(rng) for _ in range(count)]


def fill_collection(work: Path, chunks_target: int) -> tuple[Path, int, float]:
    """Generate, chunk, embed (hash) and write about `chunks_target` chunks; (config, chunks, seconds)."""
    import yaml

    from ragloop.chunking import ChunkingSettings, chunker_for
    from ragloop.config import load_config
    from ragloop.documents import indexed_hash
    from ragloop.embedding import HashEmbedder
    from ragloop.index import chunk_object, connect, count_chunks, ensure_collection
    from ragloop.sources import ExtractReport, make_source

    started = time.monotonic()
    files = max(1, round(chunks_target / 3.8))  # 3.8 chunks per generated file on average (bench/ingest.py)
    corpus.generate(work / "docs", files, seed=101)
    config_path = work / "latency.yaml"
    config_path.write_text(yaml.safe_dump({
        "collection": COLLECTION, "embedder": "hash", "chunking": {"max_tokens": 256, "overlap_tokens": 32},
        "staging": f"file://{work / 'staging'}",
        "sources": [{"id": "bench", "type": "docs", "path": str(work / "docs"), "include": ["**/*.md"]}],
    }, sort_keys=False))
    config = load_config(config_path)
    embedder = HashEmbedder()
    chunker = chunker_for(embedder, ChunkingSettings(**config.chunking_for("bench")))
    with connect() as client:
        ensure_collection(client, COLLECTION, embedder)
        target = client.collections.use(COLLECTION)
        pending: list = []
        progress = {"written": 0}

        def flush() -> None:
            vectors = embedder.embed([chunk.text for _, chunk, _ in pending])
            with target.batch.fixed_size(batch_size=1000, concurrent_requests=2) as batch:
                for (document, chunk, count), vector in zip(pending, vectors, strict=True):
                    o = chunk_object(document, chunk, indexed_hash(document.content_hash, "bench"), count, vector)
                    batch.add_object(properties=o.properties, uuid=o.uuid, vector=o.vector)
            failed = len(target.batch.failed_objects)
            if failed:
                raise SystemExit(f"{failed} objects failed to write: {target.batch.failed_objects[:1]}")
            progress["written"] += len(pending)
            log(f"  {progress['written']} chunks written ({time.monotonic() - started:.0f} s)")
            pending.clear()

        for document in make_source(config.source("bench")).load_all(ExtractReport("bench")):
            chunks = chunker.split(document)
            pending += [(document, chunk, len(chunks)) for chunk in chunks]
            if len(pending) >= 5000:
                flush()
        if pending:
            flush()
        written = count_chunks(client, COLLECTION)
    return config_path, written, time.monotonic() - started


def profile_asks(queries: list[str], ask: Callable[[str], object], top: int = 18) -> list[dict]:
    profiler = cProfile.Profile()
    profiler.enable()
    for query in queries:
        ask(query)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    rows = []
    for (filename, line, function), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "ragloop" in filename or "weaviate" in filename or "grpc" in filename or "httpx" in filename:
            rows.append({"function": f"{Path(filename).parent.name}/{Path(filename).name}:{line}({function})",
                         "calls_per_query": round(calls / len(queries), 2),
                         "cumulative_ms_per_query": round(cumulative * 1000 / len(queries), 2)})
    rows.sort(key=lambda r: -r["cumulative_ms_per_query"])
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the collection (default 100000)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per mode (default 200)")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="also time through bench/latency_proxy.py with this delay per chunk, each way")
    add_common_arguments(parser, HERE / "results")
    args = parser.parse_args(argv)
    queries = queries_for(args.queries + WARM_UP)
    load_at_start = os.getloadavg()
    result: dict = {"benchmark": "query-latency", "commit": git_commit(),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with bench_environment("ragloop-bench-latency-", args.use_connection, log) as work:
        from ragloop.answer import ask
        from ragloop.embedding import HashEmbedder, LocalEmbedder
        from ragloop.index import connect
        from ragloop.index.search import search

        log(f"Filling {COLLECTION} with about {args.chunks} chunks (hash embedder, straight batch)...")
        config_path, written, fill_seconds = fill_collection(work, args.chunks)
        log(f"  {written} chunks in {fill_seconds:.0f} s")
        direct = json.loads(os.environ["AIRFLOW_CONN_WEAVIATE_DEFAULT"])
        embedder = HashEmbedder()

        def measure(label: str) -> dict:
            modes: dict[str, dict] = {}
            with connect() as client:
                log(f"[{label}] search, one client reused...")
                modes["search (client reused)"] = summary(timed(queries, lambda q: search(client, COLLECTION, embedder, q)))
                with collection_checked_every_query():
                    log(f"[{label}] search, one client reused, the collection checked every query...")
                    modes["search (client reused, collection checked every query)"] = summary(
                        timed(queries, lambda q: search(client, COLLECTION, embedder, q)))

            def search_with_own_client(query: str) -> None:
                with connect() as own:
                    search(own, COLLECTION, embedder, query)

            log(f"[{label}] search, a client per query...")
            modes["search (client per query)"] = summary(timed(queries, search_with_own_client))
            log(f"[{label}] ask (offline)...")
            modes["ask (offline, extractive)"] = summary(timed(queries, lambda q: ask(q, config_path=str(config_path))))
            with collection_checked_every_query():
                log(f"[{label}] ask (offline), the collection checked every query...")
                modes["ask (offline, extractive, collection checked every query)"] = summary(
                    timed(queries, lambda q: ask(q, config_path=str(config_path))))
            # Before connect() kept clients: every block made a new one. An idle time below zero
            # makes every kept client stale, which is that behaviour (plus closing the stale one).
            with no_client_reuse():
                log(f"[{label}] search, a client per query, no client reuse...")
                modes["search (client per query, no reuse)"] = summary(timed(queries, search_with_own_client))
                log(f"[{label}] ask (offline), no client reuse...")
                modes["ask (offline, extractive, no reuse)"] = summary(
                    timed(queries, lambda q: ask(q, config_path=str(config_path))))
            for name, row in modes.items():
                log(f"  {name}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms")
            return modes

        result["direct"] = measure("direct")
        log("Profiling the offline asks...")
        result["ask_profile_direct"] = profile_asks(queries[: min(60, len(queries))],
                                                    lambda q: ask(q, config_path=str(config_path)))
        log("The local model's query embedding...")
        local = LocalEmbedder()
        result["local_model_query_embedding"] = summary(timed(queries, lambda q: local.embed([q])))
        if args.delay_ms:
            from latency_proxy import LatencyProxy

            delay = args.delay_ms / 1000
            with LatencyProxy(("127.0.0.1", int(direct["port"])), delay) as http, \
                    LatencyProxy((direct["extra"]["grpc_host"], int(direct["extra"]["grpc_port"])), delay) as grpc:
                os.environ["AIRFLOW_CONN_WEAVIATE_DEFAULT"] = json.dumps(
                    {**direct, "port": http.port, "extra": {**direct["extra"], "grpc_port": grpc.port}})
                try:
                    result[f"proxy_{args.delay_ms:g}ms"] = measure(f"proxy {args.delay_ms:g} ms")
                    result[f"ask_profile_proxy_{args.delay_ms:g}ms"] = profile_asks(
                        queries[: min(30, len(queries))], lambda q: ask(q, config_path=str(config_path)))
                finally:
                    os.environ["AIRFLOW_CONN_WEAVIATE_DEFAULT"] = json.dumps(direct)
        result["inputs"] = {
            "chunks": written, "queries": args.queries, "warm_up": WARM_UP, "fill_seconds": round(fill_seconds, 1),
            "corpus": "bench/corpus.py generated markdown, seed 101 (written here: a latency load, not a quality figure)",
            "queries_from": "bench/corpus.py sentences, seed 23", "embedder": "hash (bulk and queries), local model timed apart",
            "weaviate": "private local server (ragloop.local.weaviate_local)", "delay_ms_each_way": args.delay_ms or None,
        }
    result["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                         "load_average_at_start": [round(x, 1) for x in load_at_start],
                         "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
                         # What else ran is told by the load averages (2 cores: above 2, shared).
                         "note": "latencies include whatever else the machine ran: see the load averages"}
    print(f"{'mode':<34} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for section in [k for k in result if k == "direct" or k.startswith("proxy_")]:
        for name, row in result[section].items():
            print(f"{section + ': ' + name:<48} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['mean_ms']:>8}")
    row = result["local_model_query_embedding"]
    print(f"{'local model query embedding':<48} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['mean_ms']:>8}")
    write_results(args.out, "query-latency", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
