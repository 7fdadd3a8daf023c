"""Ingestion benchmark: ragloop against an ask-astro-style ingest and the raw embedder, in the
same run, on the same chunks, in the same (private) local Weaviate.

Not a test. Prints a table and one JSON line, and writes bench/results/ingest-<time>.json.

    python bench/ingest.py                       # 2,000 generated files, hash and local embedders, 100k-chunk scale run
    python bench/ingest.py --files 200 --scale 0 # a quick one
    python bench/ingest.py --docs ~/src/airflow/airflow-core/docs --embedders local

Contenders
- ragloop: the DAG's task bodies in order without a scheduler (`ragloop.ingest.ingest`), and
  once through Airflow's dag.test() to show the scheduler's share.
- ask-astro style: the installed Weaviate provider's `WeaviateHook.create_or_replace_document_objects`
  with existing="replace" and the document column = doc id, called once per source DataFrame (the
  whole corpus here), as ask-astro's DAGs call it; every chunk the hook sends is embedded as it is
  sent (as a Weaviate-side vectorizer would). ask-astro passed batch_config_params={"batch_size": 7};
  the installed provider has no such parameter: its batch_data uses the client's dynamic batch.
- straight into Weaviate: the same objects ragloop writes (properties, uuids and vectors made
  beforehand, untimed) written with the client's fastest batch, tried in several settings; the
  floor for any pipeline on this Weaviate.
- raw embedder: only embedding the same chunks, nothing else: the limit for this embedder here.
Scenarios: full ingest; re-run with nothing changed; 1 % of files edited by one line; 10 % deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from bench_env import add_common_arguments, bench_environment, git_commit, log  # noqa: E402

SCENARIOS = ("full", "no-change", "edit-1%", "delete-10%")


# --- measuring ----------------------------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def peak_rss():
    """Samples this process's resident memory every 50 ms; yields a dict filled with the peak, and
    the resident memory at the start: the contenders run one after another in this process, and
    memory an earlier one freed is not always returned to the system, so a peak is read against
    its start (`rss_at_start_mb`, in each row's extra)."""
    result = {"peak_rss_mb": rss_mb()}
    result["rss_at_start_mb"] = round(result["peak_rss_mb"], 1)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            result["peak_rss_mb"] = max(result["peak_rss_mb"], rss_mb())
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result["peak_rss_mb"] = round(max(result["peak_rss_mb"], rss_mb()), 1)


@dataclass
class Row:
    embedder: str
    contender: str
    scenario: str
    seconds: float
    chunks: int  # chunks in the collection afterwards (or embedded, for the raw embedder)
    embedded: int
    written: int
    deleted: int
    peak_rss_mb: float
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def chunks_per_second(self) -> float | None:
        work = self.embedded if self.contender == "raw embedder" else self.written or self.embedded
        return round(work / self.seconds, 1) if self.seconds and work else None


# --- the contenders -----------------------------------------------------------------------------

def write_bench_config(folder: Path, collection: str, docs: Path, embedder: str) -> Path:
    import yaml

    config = {
        "collection": collection,
        "embedder": embedder,
        "chunking": {"max_tokens": 256, "overlap_tokens": 32},
        "staging": f"file://{folder / 'staging'}",
        "sources": [{"id": "bench", "type": "docs", "path": str(docs), "include": ["**/*.md", "**/*.mdx", "**/*.rst"]}],
    }
    path = folder / f"{collection}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def make_embedder(name: str):
    from ragloop.embedding import make_embedder as build

    return build(name)


def chunk_corpus(config_path: Path, embedder) -> list[tuple]:
    """(document, chunk) pairs exactly as ragloop splits them: the same chunks for every contender."""
    from ragloop.chunking import ChunkingSettings, chunker_for
    from ragloop.config import load_config
    from ragloop.sources import ExtractReport, make_source

    config = load_config(config_path)
    chunker = chunker_for(embedder, ChunkingSettings(**config.chunking_for("bench")))
    pairs = []
    for document in make_source(config.source("bench")).load_all(ExtractReport("bench")):
        pairs += [(document, chunk) for chunk in chunker.split(document)]
    return pairs


def run_raw(embedder_name: str, config_path: Path) -> Row:
    embedder = make_embedder(embedder_name)
    pairs = chunk_corpus(config_path, embedder)
    if hasattr(embedder, "model"):
        _ = embedder.model  # loaded once per process, as in every contender
    texts = [chunk.text for _, chunk in pairs]
    with peak_rss() as memory:
        started = time.monotonic()
        embedder.embed(texts)
        seconds = time.monotonic() - started
    return Row(embedder_name, "raw embedder", "full", round(seconds, 2), len(texts), len(texts), 0, 0, memory["peak_rss_mb"])


def run_ragloop(embedder_name: str, config_path: Path, scenario: str, run_id: str, embedder) -> Row:
    from ragloop.ingest import ingest

    with peak_rss() as memory:
        started = time.monotonic()
        report = ingest(run_id, str(config_path), embedder=embedder)
        seconds = time.monotonic() - started
    totals = report["totals"]
    return Row(embedder_name, "ragloop", scenario, round(seconds, 2), report["collection_chunks"], totals["embedded"],
               totals["written"], totals["deleted"], memory["peak_rss_mb"],
               extra={"plan_seconds": report["seconds"]["plan"], "index_seconds": report["seconds"]["index"],
                      "rss_at_start_mb": memory["rss_at_start_mb"]})


def run_ragloop_dag(embedder_name: str, config_path: Path, scenario: str) -> Row:
    from ragloop.airflow.dagrun import run_dag

    with peak_rss() as memory:
        started = time.monotonic()
        result = run_dag("ragloop_ingest_docs", {"config": str(config_path), "sources": [], "full_refresh": False}, retries=0)
        seconds = time.monotonic() - started
    report = result.returns["report"]
    totals = report["totals"]
    return Row(embedder_name, "ragloop via dag.test()", scenario, round(seconds, 2), report["collection_chunks"],
               totals["embedded"], totals["written"], totals["deleted"], memory["peak_rss_mb"])


# The client's batch settings tried for the straight-into-Weaviate contender; the fastest counts.
STRAIGHT_MODES = {
    "fixed_size(1000, 2)": lambda batch: batch.fixed_size(batch_size=1000, concurrent_requests=2),
    "fixed_size(200, 4)": lambda batch: batch.fixed_size(batch_size=200, concurrent_requests=4),
    "dynamic()": lambda batch: batch.dynamic(),
}


def run_straight(embedder_name: str, config_path: Path, collection: str, embedder, modes=STRAIGHT_MODES) -> list[Row]:
    """The floor: ragloop's own objects (`index.chunk_object`, the same properties, uuids and
    vectors), made before the clock starts, written straight into fresh collections with each of
    the client's batch settings."""
    from ragloop.documents import indexed_hash
    from ragloop.index import chunk_object, connect, count_chunks, drop_collection, ensure_collection

    pairs = chunk_corpus(config_path, embedder)
    vectors = embedder.embed([chunk.text for _, chunk in pairs])
    counts: dict[str, int] = {}
    for document, _ in pairs:
        counts[document.doc_id] = counts.get(document.doc_id, 0) + 1
    objects = [chunk_object(document, chunk, indexed_hash(document.content_hash, "bench"), counts[document.doc_id], vector)
               for (document, chunk), vector in zip(pairs, vectors, strict=False)]
    rows = []
    for number, (mode, batch_of) in enumerate(modes.items()):
        name = f"{collection}{number}"
        with connect() as client:
            drop_collection(client, name)
            ensure_collection(client, name, embedder)
            target = client.collections.use(name)
            with peak_rss() as memory:
                started = time.monotonic()
                with batch_of(target.batch) as batch:
                    for o in objects:
                        batch.add_object(properties=o.properties, uuid=o.uuid, vector=o.vector)
                seconds = time.monotonic() - started
            failed = len(target.batch.failed_objects)
            after = count_chunks(client, name)
            drop_collection(client, name)
        rows.append(Row(embedder_name, "straight into Weaviate", "full", round(seconds, 2), after, 0, len(objects) - failed,
                        0, memory["peak_rss_mb"], error=f"{failed} objects failed" if failed else None, extra={"batch": mode, "rss_at_start_mb": memory["rss_at_start_mb"]}))
    return rows


class AskAstroStyle:
    """The reference app's path: documents as rows, the provider hook decides what to replace."""

    def __init__(self, embedder_name: str, collection: str, embedder):
        from airflow.providers.weaviate.hooks.weaviate import WeaviateHook

        from ragloop.index import connect, ensure_collection

        self.embedder_name, self.collection, self.embedder = embedder_name, collection, embedder
        with connect() as client:
            ensure_collection(client, collection, embedder)  # the same schema, so the same objects
        self.hook = WeaviateHook(conn_id="weaviate_default")
        self.embedded = 0
        self.budget: tuple[float, float | None, int] = (0.0, None, 0)
        original = self.hook.batch_data

        def embed_then_send(collection_name, data, vector_col="Vector", uuid_col="id", **kwargs):
            # What a Weaviate-side vectorizer does: every object sent is embedded. With a time
            # budget, the objects go in slices so that a slow run stops once it is spent.
            started, budget, total = self.budget
            data = data.copy()
            data[vector_col] = self.embedder.embed(data["text"].tolist())
            step = len(data) if budget is None else 2000
            for start in range(0, len(data), step):
                spent = time.monotonic() - started
                if budget is not None and spent > budget and self.embedded:
                    raise BudgetSpent(
                        f"stopped by the time budget after {spent:.0f} s at {self.embedded} of {total} chunks; "
                        f"all of them would take about {spent * total / self.embedded:.0f} s")
                part = data.iloc[start : start + step]
                original(collection_name=collection_name, data=part, vector_col=vector_col, uuid_col=uuid_col, **kwargs)
                self.embedded += len(part)

        self.hook.batch_data = embed_then_send  # type: ignore[method-assign,assignment]  # the contender embeds as it sends

    def close(self) -> None:
        self.hook.conn.close()  # the client the hook cached and used

    def count(self) -> int:
        from ragloop.index import connect, count_chunks

        with connect() as client:
            return count_chunks(client, self.collection)

    def run(self, config_path: Path, scenario: str, budget_seconds: float | None = None) -> Row:
        """One scenario. With a budget, calls stop once it is spent and the row says how far they
        got and what the whole would take at the rate measured so far."""
        pairs = chunk_corpus(config_path, self.embedder)
        by_doc: dict[str, list[dict]] = {}
        for document, chunk in pairs:
            by_doc.setdefault(document.doc_id, []).append({
                "doc_id": document.doc_id, "source_id": document.source_id, "kind": document.kind,
                "title": document.title, "url": document.url, "text": chunk.text,
                "heading_path": " > ".join(chunk.heading_path), "chunk_index": chunk.index, "chunk_hash": chunk.chunk_hash,
            })
        doc_ids = sorted(by_doc)
        before = self.count()
        self.embedded = 0
        error = None
        with peak_rss() as memory:
            started = time.monotonic()
            try:
                # One call per source DataFrame, as ask-astro's DAGs make it: here one source.
                rows = [row for doc_id in doc_ids for row in by_doc[doc_id]]
                self.budget = (started, budget_seconds, len(rows))
                with warnings.catch_warnings():
                    # The hook warns about a pandas deprecation on every call.
                    warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.drop")
                    self.hook.create_or_replace_document_objects(
                        data=rows, collection_name=self.collection, document_column="doc_id", existing="replace",
                        vector_column="Vector",
                    )
            except BudgetSpent as spent:
                error = str(spent)
            except Exception as err:  # noqa: BLE001 - the failure is the measurement
                error = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
            seconds = time.monotonic() - started
        after = self.count()
        deleted = max(0, before + self.embedded - after)
        return Row(self.embedder_name, "ask-astro style", scenario, round(seconds, 2), after, self.embedded,
                   self.embedded, deleted, memory["peak_rss_mb"], error=error)


class BudgetSpent(Exception):
    pass


# --- scenarios ----------------------------------------------------------------------------------

def fresh_copy(base: Path, target: Path) -> list[Path]:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(base, target)
    return sorted(p for p in target.rglob("*") if p.is_file())


def mutate(paths: list[Path], scenario: str) -> list[Path]:
    """Apply a scenario's change to the working copy; returns the files still present."""
    if scenario == "edit-1%":
        corpus.edit_one_line(paths, 0.01)
    elif scenario == "delete-10%":
        gone = set(corpus.delete_some(paths, 0.10))
        return [p for p in paths if p not in gone]
    return paths


def bench_embedder(embedder_name: str, base: Path, work: Path, scenarios: tuple[str, ...], with_dag: bool, log,
                   with_askastro: bool = True) -> list[Row]:
    rows: list[Row] = []
    tag = embedder_name.capitalize()
    embedder = make_embedder(embedder_name)

    config = write_bench_config(work, f"BenchRaw{tag}", base, embedder_name)
    log(f"[{embedder_name}] raw embedder over the corpus's chunks...")
    rows.append(run_raw(embedder_name, config))
    log(f"  {rows[-1].embedded} chunks in {rows[-1].seconds} s")
    if embedder_name == "hash":  # the floor is Weaviate's cost: measured where embedding costs nothing
        log(f"[{embedder_name}] straight into Weaviate, the client's batch in {len(STRAIGHT_MODES)} settings...")
        rows += run_straight(embedder_name, config, f"BenchStraight{tag}", embedder)
        log("  " + ", ".join(f"{r.extra['batch']}: {r.seconds} s" for r in rows[-len(STRAIGHT_MODES):]))

    docs = work / "docs-ragloop"
    paths = fresh_copy(base, docs)
    config = write_bench_config(work, f"BenchRagloop{tag}", docs, embedder_name)
    for scenario in scenarios:
        paths = mutate(paths, scenario)
        log(f"[{embedder_name}] ragloop: {scenario}...")
        rows.append(run_ragloop(embedder_name, config, scenario, f"bench-{embedder_name}-{scenario}", embedder))
        log(f"  {rows[-1].seconds} s, embedded {rows[-1].embedded}, written {rows[-1].written}, deleted {rows[-1].deleted}")

    docs = work / "docs-askastro"
    paths = fresh_copy(base, docs)
    config = write_bench_config(work, f"BenchAskAstro{tag}", docs, embedder_name)
    contender = AskAstroStyle(embedder_name, f"BenchAskAstro{tag}", embedder)
    for scenario in scenarios if with_askastro else ():
        paths = mutate(paths, scenario)
        log(f"[{embedder_name}] ask-astro style: {scenario}...")
        rows.append(contender.run(config, scenario))
        log(f"  {rows[-1].seconds} s, embedded {rows[-1].embedded}, deleted {rows[-1].deleted}"
            + (f" -> {rows[-1].error}" if rows[-1].error else ""))
    contender.close()

    if with_dag:
        docs = work / "docs-dag"
        fresh_copy(base, docs)
        config = write_bench_config(work, f"BenchDag{tag}", docs, embedder_name)
        for scenario in ("full", "no-change"):
            log(f"[{embedder_name}] ragloop via dag.test(): {scenario}...")
            rows.append(run_ragloop_dag(embedder_name, config, scenario))
            log(f"  {rows[-1].seconds} s")
    return rows


def bench_scale(chunks_target: int, work: Path, log, askastro_budget: float, with_askastro: bool = True,
                with_straight: bool = True) -> list[Row]:
    """100k chunks with the hash embedder: ragloop full, no-change and 1 % edit; ask-astro style
    full and no-change within a time budget each (one hook call per 7 documents, about a second
    each, would take over an hour here: the row reports how far it got and the projected total).

    `with_straight=False` leaves out the straight-into-Weaviate contender, which runs first and
    grows this process to gigabytes that are not all given back: ragloop's peak memory is then
    its own (the memory-in-corpus-size runs)."""
    files = max(1, round(chunks_target / 3.8))  # generated files split into 3.8 chunks on average (measured: 73,223 from 19,231)
    base = work / "scale-base"
    log(f"[scale] generating {files} files for about {chunks_target} chunks...")
    corpus.generate(base, files, seed=101)
    embedder = make_embedder("hash")
    rows = []
    if with_straight:
        config = write_bench_config(work, "BenchScaleStraight", base, "hash")
        log(f"[scale] straight into Weaviate ({', '.join(STRAIGHT_MODES)})...")
        rows += run_straight("hash", config, "BenchScaleStraight", embedder)
        for row in rows:
            row.contender = "straight into Weaviate (scale)"
        log("  " + ", ".join(f"{r.extra['batch']}: {r.seconds} s" for r in rows))
    docs = work / "scale-ragloop"
    paths = fresh_copy(base, docs)
    config = write_bench_config(work, "BenchScaleRagloop", docs, "hash")
    for scenario in ("full", "no-change", "edit-1%"):
        paths = mutate(paths, scenario)
        log(f"[scale] ragloop: {scenario}...")
        rows.append(run_ragloop("hash", config, scenario, f"scale-{scenario}", embedder))
        rows[-1].contender = "ragloop (scale)"
        log(f"  {rows[-1].seconds} s, {rows[-1].chunks} chunks, embedded {rows[-1].embedded}")
    docs = work / "scale-askastro"
    fresh_copy(base, docs)
    config = write_bench_config(work, "BenchScaleAskAstro", docs, "hash")
    contender = AskAstroStyle("hash", "BenchScaleAskAstro", embedder)
    for scenario in ("full", "no-change") if with_askastro else ():
        log(f"[scale] ask-astro style: {scenario} (time budget {askastro_budget:.0f} s)...")
        rows.append(contender.run(config, scenario, budget_seconds=askastro_budget))
        rows[-1].contender = "ask-astro style (scale)"
        log(f"  {rows[-1].seconds} s" + (f" -> {rows[-1].error}" if rows[-1].error else ""))
        if rows[-1].error:
            break  # a re-run of an unfinished ingest measures nothing
    contender.close()
    return rows


# --- report -------------------------------------------------------------------------------------

def find(rows: list[Row], embedder: str, contender: str, scenario: str) -> Row | None:
    return next((r for r in rows if (r.embedder, r.contender, r.scenario) == (embedder, contender, scenario)), None)


def ratios(rows: list[Row]) -> dict:
    out: dict = {}
    for embedder in sorted({r.embedder for r in rows}):
        raw, full = find(rows, embedder, "raw embedder", "full"), find(rows, embedder, "ragloop", "full")
        entry: dict = {}
        if raw and full and full.seconds:
            entry["efficiency_full"] = round(raw.seconds / full.seconds, 3)
        for scenario in ("no-change", "edit-1%", "delete-10%"):
            row = find(rows, embedder, "ragloop", scenario)
            if row and full and full.seconds:
                entry[f"time_{scenario}_vs_full"] = round(row.seconds / full.seconds, 4)
                entry[f"embedded_{scenario}_share"] = round(row.embedded / max(1, full.chunks), 4)
            astro = find(rows, embedder, "ask-astro style", scenario)
            if row and astro and row.seconds:
                entry[f"askastro_vs_ragloop_time_{scenario}"] = round(astro.seconds / row.seconds, 2)
        astro_full = find(rows, embedder, "ask-astro style", "full")
        if astro_full and full and full.seconds:
            entry["askastro_vs_ragloop_time_full"] = round(astro_full.seconds / full.seconds, 2)
        straight = [r for r in rows if r.embedder == embedder and r.contender == "straight into Weaviate" and not r.error]
        if straight and full:
            fastest = min(straight, key=lambda r: r.seconds)
            entry["straight_fastest_batch"] = fastest.extra["batch"]
            entry["ragloop_vs_straight_full"] = round(full.seconds / fastest.seconds, 2)
        dag_full = find(rows, embedder, "ragloop via dag.test()", "full")
        if dag_full and full:
            entry["airflow_share_full_seconds"] = round(dag_full.seconds - full.seconds, 2)
        out[embedder] = entry
    scale_full = find(rows, "hash", "ragloop (scale)", "full")
    scale_straight = [r for r in rows if r.contender == "straight into Weaviate (scale)" and not r.error]
    if scale_full:
        out["scale"] = {"chunks": scale_full.chunks, "peak_rss_mb_full": scale_full.peak_rss_mb,
                        "rss_at_start_mb_full": scale_full.extra.get("rss_at_start_mb")}
    if scale_full and scale_straight:
        fastest = min(scale_straight, key=lambda r: r.seconds)
        out["scale"].update({"straight_fastest_batch": fastest.extra["batch"],
                             "ragloop_vs_straight_full": round(scale_full.seconds / fastest.seconds, 2)})
        no_change = find(rows, "hash", "ragloop (scale)", "no-change")
        if no_change:
            out["scale"]["time_no-change_vs_full"] = round(no_change.seconds / scale_full.seconds, 4)
            out["scale"]["no-change_embedded_written"] = [no_change.embedded, no_change.written]
        astro = find(rows, "hash", "ask-astro style (scale)", "full")
        if astro and not astro.error:
            out["scale"]["askastro_vs_ragloop_time_full"] = round(astro.seconds / scale_full.seconds, 2)
    return out


def targets(result: dict) -> dict:
    """Issue 26's targets (ratios from one run each on this machine)."""
    local = result["ratios"].get("local", {})
    checks = {}
    for name, entry in result["ratios"].items():
        if "ragloop_vs_straight_full" in entry:
            chunks = f", {entry['chunks']} chunks" if "chunks" in entry else ""
            checks[f"ragloop full <= 1.3x straight into Weaviate ({name}{chunks})"] = entry["ragloop_vs_straight_full"] <= 1.3
    scale = result["ratios"].get("scale", {})
    if "time_no-change_vs_full" in scale:
        checks[f"no-change <= 2% of full, 0 embedded and 0 written (hash, scale {scale['chunks']} chunks)"] = (
            scale["time_no-change_vs_full"] <= 0.02 and scale["no-change_embedded_written"] == [0, 0])
    if "efficiency_full" in local:
        checks["efficiency >= 0.9 (local, full)"] = local["efficiency_full"] >= 0.9
    if "time_no-change_vs_full" in local:
        no_change = find(result["_rows"], "local", "ragloop", "no-change")
        checks["no-change <= 2% of full, 0 embedded (local)"] = local["time_no-change_vs_full"] <= 0.02 and no_change is not None and no_change.embedded == 0
    if "embedded_edit-1%_share" in local:
        checks["1% edit embeds <= 1.5% of chunks (local)"] = local["embedded_edit-1%_share"] <= 0.015
    return checks


def table(rows: list[Row]) -> str:
    header = f"{'embedder':<8} {'contender':<24} {'scenario':<11} {'seconds':>8} {'chunks/s':>9} {'chunks':>8} " \
             f"{'embedded':>9} {'written':>8} {'deleted':>8} {'peak MB':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.embedder:<8} {r.contender:<24} {r.scenario:<11} {r.seconds:>8} {r.chunks_per_second or '-':>9} {r.chunks:>8} "
            f"{r.embedded:>9} {r.written:>8} {r.deleted:>8} {r.peak_rss_mb:>8}" + (f"  {r.extra['batch']}" if "batch" in r.extra else "")
            + (f"  -> {r.error}" if r.error else "")
        )
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------

def code_under_test() -> dict:
    """Where the imported ragloop is and its commit (a `git archive` of main has none: the
    caller's --label says which)."""
    import subprocess

    import ragloop

    folder = Path(ragloop.__file__).resolve().parents[2]
    # Files changed since that commit: a run on a dirty tree measures more than the commit.
    changed = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, check=False)
    return {"path": str(folder), "commit": git_commit(folder) or None,
            "uncommitted_changes": [line[3:] for line in changed.stdout.splitlines()]}


def compare(before_path: Path, after_path: Path, out_dir: Path) -> int:
    """Both runs' ratios and targets side by side, and after/before of every timed row."""
    before, after = json.loads(before_path.read_text()), json.loads(after_path.read_text())

    def seconds(result: dict) -> dict:
        return {f"{r['embedder']} | {r['contender']} | {r['scenario']}": r["seconds"] for r in result["rows"]}

    old, new = seconds(before), seconds(after)
    result = {
        "benchmark": "ingest before/after",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "before": {"file": str(before_path), "label": before.get("label"), "code": before.get("code"),
                   "ratios": before["ratios"], "targets": before["targets"], "machine": before.get("machine")},
        "after": {"file": str(after_path), "label": after.get("label"), "code": after.get("code"),
                  "ratios": after["ratios"], "targets": after["targets"], "machine": after.get("machine")},
        "seconds_after_over_before": {k: round(new[k] / old[k], 3) for k in sorted(set(old) & set(new)) if old[k]},
        "peak_rss_mb": {
            "before": {f"{r['embedder']} | {r['contender']} | {r['scenario']}": r["peak_rss_mb"] for r in before["rows"]},
            "after": {f"{r['embedder']} | {r['contender']} | {r['scenario']}": r["peak_rss_mb"] for r in after["rows"]},
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"ingest-compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="generated markdown files (default 2000)")
    parser.add_argument("--docs", type=Path, help="benchmark on a copy of this folder instead of a generated corpus")
    parser.add_argument("--embedders", default="hash,local", help="comma-separated: hash, local (default both)")
    parser.add_argument("--scale", type=int, default=100_000, help="chunks in the scale scenario (0 skips it)")
    parser.add_argument("--askastro-scale-budget", type=float, default=600,
                        help="seconds the ask-astro-style contender may spend on each scale scenario (default 600)")
    parser.add_argument("--no-dag", action="store_true", help="skip the dag.test() runs")
    parser.add_argument("--no-askastro", action="store_true", help="skip the ask-astro-style contender")
    parser.add_argument("--no-straight", action="store_true",
                        help="scale scenario without the straight-into-Weaviate contender (ragloop's own peak memory)")
    parser.add_argument("--label", default="", help="what code is measured (e.g. 'before: main'), kept in the results")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                        help="no run: write the ratios of two results files side by side (ingest-compare-<time>.json)")
    add_common_arguments(parser, HERE / "results")
    args = parser.parse_args(argv)
    if args.compare:
        before_path, after_path = args.compare
        return compare(before_path, after_path, args.out)

    from ragloop.cli import reserve_stdout_for_results

    out = reserve_stdout_for_results()  # Airflow logs to stdout; the table and JSON line own it

    started = time.monotonic()
    # The dag.test() runs need an Airflow metadata DB of their own, whichever Weaviate is used.
    with bench_environment("ragloop-bench-", args.use_connection, log, private_state=True) as work:
        from ragloop.local import localenv

        if not args.no_dag:
            log("Preparing a private Airflow metadata DB for the dag.test() runs...")
            localenv.ensure_local_airflow(force=True)

        # A task process has Airflow imported before its task body runs; the first ingest of this
        # process would otherwise pay that import (4-9 s here), which no later run pays.
        import airflow.sdk  # noqa: F401

        base = work / "corpus"
        embedders = [e.strip() for e in args.embedders.split(",") if e.strip()]
        corpus_name = None
        if embedders:
            if args.docs:
                shutil.copytree(args.docs, base)
                corpus_name = str(args.docs)
            else:
                corpus.generate(base, args.files)
                corpus_name = f"generated, {args.files} files"
        rows: list[Row] = []
        for embedder_name in embedders:
            rows += bench_embedder(embedder_name, base, work, SCENARIOS, not args.no_dag, log, not args.no_askastro)
        if args.scale:
            rows += bench_scale(args.scale, work, log, args.askastro_scale_budget, not args.no_askastro,
                                not args.no_straight)

        result = {
            "benchmark": "ingest",
            "corpus": corpus_name,
            "label": args.label,
            "code": code_under_test(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_average_at_start": os.getloadavg()},
            "args": {k: str(v) for k, v in vars(args).items()},
            "rows": [{**r.__dict__, "chunks_per_second": r.chunks_per_second} for r in rows],
            "_rows": rows,
        }
        result["ratios"] = ratios(rows)
        result["targets"] = targets(result)
        result["seconds"] = round(time.monotonic() - started, 1)
        del result["_rows"]
        print(table(rows), file=out)
        print("ratios: " + json.dumps(result["ratios"]), file=out)
        for name, ok in result["targets"].items():
            print(f"target {name}: {'met' if ok else 'MISSED'}", file=out)
        print(json.dumps(result, default=str), file=out)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2, default=str))
        return 0


if __name__ == "__main__":
    sys.exit(main())
