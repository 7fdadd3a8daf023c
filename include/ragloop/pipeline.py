"""The task bodies the DAGs call. Each takes plain arguments and returns a small JSON-able dict,
so it runs the same under the scheduler, under `dag.test()` and from a test."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragloop.hooks.endpoint import WEAVIATE_CONN_ID
from ragloop.ingest.planning import MAX_INDEX_BATCHES, WorkItem, batch_work, plan_source

if TYPE_CHECKING:
    from ragloop.staging import DagRunRef

log = logging.getLogger(__name__)

# Set by the `ragloop` command: its progress lines then reach the terminal even though Airflow's
# logging (which carries them to the task log) is quiet at a terminal.
PROGRESS_ENV = "RAGLOOP_PROGRESS_TO_STDERR"


def progress(message: str, *args) -> None:
    """A progress line: in the task log, and on the terminal of a `ragloop` command."""
    log.info(message, *args)
    if os.environ.get(PROGRESS_ENV):
        print("  " + (message % args if args else message), file=sys.__stderr__, flush=True)


def check_weaviate(weaviate_conn_id: str = WEAVIATE_CONN_ID) -> dict:
    """Reach Weaviate through the connection; report its version and what it holds."""
    from ragloop.index import collection_counts, connect, endpoint_from_connection

    endpoint = endpoint_from_connection(weaviate_conn_id)
    with connect(weaviate_conn_id) as client:
        meta = client.get_meta()
        counts = collection_counts(client)
    report = {"url": endpoint.url, "version": meta.get("version"), "collections": counts}
    log.info("Weaviate %s at %s holds %s", report["version"], report["url"], counts or "no collections")
    return report


def prepare_collection(config_path: str | None = None, weaviate_conn_id: str = WEAVIATE_CONN_ID) -> dict:
    """Create the configured collection for the configured embedder, or refuse a mismatch."""
    from ragloop.config import load_config
    from ragloop.embedding import make_embedder
    from ragloop.index import connect, ensure_collection

    config = load_config(config_path)
    embedder = make_embedder(config.embedder)
    with connect(weaviate_conn_id) as client:
        created = ensure_collection(client, config.collection, embedder)
    return {
        "collection": config.collection,
        "created": created,
        "embedder": embedder.name,
        "dimension": embedder.dimension,
    }


FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)


def sample_passages(folder: Path, words: int = 200) -> list[str]:
    """Consecutive `words`-word passages of the markdown under `folder`: the unit the embedder's
    rate is quoted in (chunks of 200 words), independent of how the chunker splits."""
    passages = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in {".md", ".mdx", ".rst"} or not path.is_file():
            continue
        text_words = FRONT_MATTER.sub("", path.read_text(errors="replace")).split()
        passages += [" ".join(text_words[i : i + words]) for i in range(0, len(text_words), words)]
    return passages


def measure_embedder(config_path: str | None = None, samples: str | None = None, limit: int | None = None) -> dict:
    """Embed the bundled sample docs with the configured embedder and report its rate."""
    from ragloop.config import load_config
    from ragloop.embedding import LocalEmbedder, make_embedder
    from ragloop.localenv import project_root

    config = load_config(config_path)
    folder = Path(samples) if samples else project_root() / "include" / "samples" / "docs"
    passages = sample_passages(folder)[:limit]
    if not passages:
        raise ValueError(f"No markdown or rst files under {folder} to measure the embedder on")
    embedder = make_embedder(config.embedder)
    load_seconds = 0.0
    if isinstance(embedder, LocalEmbedder):
        started = time.monotonic()
        embedder.model  # load outside the timed run: a task pays it once per batch of documents
        load_seconds = time.monotonic() - started
    tokens_before = embedder.usage.tokens
    started = time.monotonic()
    vectors = embedder.embed(passages)
    seconds = time.monotonic() - started
    # The embedder already counts what it embeds (OpenAI: the API's own figure); no second pass.
    tokens = embedder.usage.tokens - tokens_before
    report = {
        "embedder": embedder.name,
        "dimension": len(vectors[0]),
        "passages": len(passages),
        "words_per_passage": 200,
        "tokens": tokens,
        "load_seconds": round(load_seconds, 2),
        "embed_seconds": round(seconds, 2),
        "passages_per_second": round(len(passages) / seconds, 1) if seconds else None,
    }
    log.info("Embedded %(passages)d passages (%(tokens)d tokens) with %(embedder)s in %(embed_seconds)s s", report)
    return report


# --- ingestion: select → extract (per source) → plan → index (per batch) → prune → report -------

INGEST_DAG_ID = "ragloop_ingest_docs"
# One ingest DAG per source type, all running the same task bodies.
INGEST_DAG_IDS = {
    "docs": INGEST_DAG_ID,
    "slack": "ragloop_ingest_slack",
    "github_issues": "ragloop_ingest_github_issues",
}
GROUP_CHUNKS = 1000  # chunks split, looked up, embedded and written together inside a batch
FAILURES_SHOWN = 20  # failures listed per source in a report (all are logged)


class IngestError(RuntimeError):
    """The ingest run did not cover everything; the message says which sources and why."""


def _config(config_path: str | None):
    from ragloop.config import load_config

    return load_config(config_path)


def _staging_root(config):
    from ragloop.staging import staging_root

    return staging_root(config.staging, config.staging_conn_id)


def _run_dir(config, dag_run: "DagRunRef"):
    from ragloop.staging import run_folder

    return run_folder(_staging_root(config), dag_run)


def select_sources(config_path: str | None = None, requested: list[str] | None = None, source_type: str = "docs") -> list[str]:
    """The ids of the sources this run ingests; checks the whole configuration first, so a
    mistake stops the run before anything is read or written."""
    from ragloop.config import ConfigError

    config = _config(config_path)
    of_type = [s["id"] for s in config.sources if s["type"] == source_type]
    if not requested:
        if not of_type:
            log.warning("%s has no sources of type %s: nothing to ingest", config.path, source_type)
        return of_type
    for source_id in requested:
        source = config.source(source_id)  # raises naming the known ids
        if source["type"] != source_type:
            raise ConfigError(f"{config.path}: source {source_id!r} has type {source['type']!r}, not {source_type!r}")
    return list(dict.fromkeys(requested))


def extract_source(
    source_id: str,
    dag_run: "DagRunRef",
    config_path: str | None = None,
    full_listing: bool = False,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> dict:
    """Read one source and stage its documents; returns where the listing is and the counts.

    An API source reads from the watermarks stored in the index (all of it on a full-listing
    run); the watermarks it proposes travel in the listing and are stored by `prune_sources`,
    after the documents are indexed.
    """
    from ragloop.sources import ExtractReport, make_source

    started = time.monotonic()
    config = _config(config_path)
    source = make_source(config.source(source_id))
    report = ExtractReport(source_id)
    watermarks: dict[str, dict] = {}
    if source.uses_watermarks and not full_listing:
        from ragloop.index import connect, read_watermarks

        with connect(weaviate_conn_id) as client:
            watermarks = read_watermarks(client, config.collection, source_id)
        progress(
            "%s: %s",
            source_id,
            f"watermarks of {', '.join(sorted(watermarks))}" if watermarks else "no watermarks in the index: reading everything",
        )
    return stage_documents(
        config,
        dag_run,
        source_id,
        source.read(report, watermarks, full_listing),
        report,
        source.lists_everything(full_listing),
        started,
    )


def stage_documents(
    config, dag_run: "DagRunRef", source_id: str, documents_read, report, lists_everything: bool, started: float | None = None
) -> dict:
    """Stage one source's documents as files and write its listing, which `plan_ingest` compares
    with the index: every source (written-back answers too) enters the index through here.

    `lists_everything`: the documents are all the source has, so indexed documents missing from
    them are pruned (unless some items failed to read, see `report`).
    """
    from ragloop.staging import ShardWriter, safe_key, write_json

    started = time.monotonic() if started is None else started
    folder = _run_dir(config, dag_run) / "sources" / safe_key(source_id)
    writer = ShardWriter(folder)
    documents: dict[str, list] = {}
    try:
        for document in documents_read:
            if document.doc_id in documents:
                report.fail(document.doc_id, "two items of this source give the same doc_id", document.doc_id)
                continue
            shard, line = writer.add(document)
            # [content hash, shard number, line, characters]: compact, the listing can hold 100k documents
            documents[document.doc_id] = [document.content_hash, len(writer.shards) - 1, line, len(document.content)]
            if len(documents) % 1000 == 0:
                progress("%s: read %d documents", source_id, len(documents))
    finally:
        writer.close()
    complete = lists_everything and not report.failed
    seconds = round(time.monotonic() - started, 2)
    listing = {
        "source_id": source_id,
        "complete": complete,
        # "incremental": a window of changes, never a reason to prune what it does not list.
        "mode": "full" if lists_everything else "incremental",
        "watermarks": report.watermarks,
        "withdrawn": sorted(set(report.skipped_doc_ids) - set(documents)),
        "seen": report.seen,
        "seconds": seconds,
        "shards": writer.shards,
        "documents": documents,
        "failed_doc_ids": report.failed_doc_ids,
        "failures": [f.to_json() for f in report.failed],
        "skipped": [f.to_json() for f in report.skipped],
    }
    listing_url = write_json(folder / "listing.json", listing)
    result = {
        "source_id": source_id,
        "listing": listing_url,
        "seen": report.seen,
        "documents": len(documents),
        "failed": len(report.failed),
        "skipped": len(report.skipped),
        "complete": complete,
        "seconds": seconds,
    }
    progress(
        "%s: %d documents staged, %d failed, %d skipped (listing %s) in %.1f s",
        source_id,
        len(documents),
        result["failed"],
        result["skipped"],
        "complete"
        if complete
        else "incremental: nothing will be pruned"
        if not lists_everything
        else "incomplete: nothing will be pruned",
        result["seconds"],
    )
    return result


def plan_path(config, dag_run: "DagRunRef"):
    """Where a run's plan is: prune and report find it from the DAG run, so XCom carries only
    the list of batches that the index task is mapped over."""
    return _run_dir(config, dag_run) / "plan.json"


def plan_ingest(
    dag_run: "DagRunRef",
    source_ids: list[str],
    config_path: str | None = None,
    full_refresh: bool = False,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> dict:
    """Compare the staged listings with the index (one streaming read) and write the work: batches
    of new and changed documents, and per source the documents to prune."""
    from ragloop.chunking import ChunkingSettings
    from ragloop.embedding import make_embedder
    from ragloop.index import connect, ensure_collection, read_indexed_documents
    from ragloop.staging import path, read_json, safe_key, write_json

    started = time.monotonic()
    config = _config(config_path)
    embedder = make_embedder(config.embedder)
    run_dir = _run_dir(config, dag_run)
    with connect(weaviate_conn_id) as client:
        ensure_collection(client, config.collection, embedder)
        indexed = read_indexed_documents(client, config.collection, set(source_ids), progress=progress)
    progress("Read the index state of %d documents of %s", len(indexed), ", ".join(source_ids) or "no sources")

    sources: dict[str, dict] = {}
    work: list[WorkItem] = []
    for source_id in source_ids:
        listing_path = run_dir / "sources" / safe_key(source_id) / "listing.json"
        if not path(str(listing_path)).exists():
            sources[source_id] = {"error": "extract did not finish (see the extract task's log); nothing changed or pruned"}
            continue
        chunking = config.chunking_for(source_id)
        planned = plan_source(
            read_json(str(listing_path)),
            indexed,
            full_refresh,
            ChunkingSettings(**chunking).signature,
            source_id=source_id,
            max_tokens=chunking["max_tokens"],
            overlap_tokens=chunking["overlap_tokens"],
        )
        sources[source_id] = planned["entry"]
        work += planned["work"]

    total = sum(item["estimated_chunks"] for item in work)
    batches = batch_work(work, config.index_batch_chunks, MAX_INDEX_BATCHES)
    batch_urls = [
        write_json(run_dir / "batches" / f"batch-{number:04d}.json", {"number": number, "of": len(batches), "items": items})
        for number, items in enumerate(batches)
    ]
    seconds = round(time.monotonic() - started, 2)
    plan_url = write_json(
        plan_path(config, dag_run),
        {
            "collection": config.collection,
            "sources": sources,
            "batches": batch_urls,
            "seconds": seconds,
            "indexed_documents": len(indexed),
        },
    )
    summary = {
        source_id: {k: v for k, v in entry.items() if k not in ("prune", "failures", "skipped_items", "watermarks")}
        for source_id, entry in sources.items()
    }
    progress(
        "Plan: %d documents to index in %d batches (about %d chunks), %d to prune, in %.1f s",
        len(work),
        len(batches),
        total,
        sum(len(e.get("prune") or []) for e in sources.values()),
        seconds,
    )
    return {"batches": batch_urls, "plan": plan_url, "summary": summary, "indexed_documents": len(indexed), "seconds": seconds}


def _empty_index_counts() -> dict:
    return {
        "documents_indexed": 0,
        "chunks_embedded": 0,
        "chunks_reused": 0,
        "chunks_written": 0,
        "chunks_deleted": 0,
        "embedding_tokens": 0,
        "seconds": 0.0,
    }


def index_batch(batch_url: str, config_path: str | None = None, embedder=None, weaviate_conn_id: str = WEAVIATE_CONN_ID) -> dict:
    """Split, embed what is new, write, then delete each document's stale chunks.

    Chunks whose text hash already has a vector in the index (in any document) reuse it. A
    document's new chunks are written before its stale ones are deleted, so search never finds
    it missing; chunk ids are uuid5(doc_id, index), so a retry rewrites the same objects.
    """
    from ragloop.chunking import ChunkingSettings, chunker_for
    from ragloop.embedding import make_embedder
    from ragloop.index import (
        chunk_object,
        connect,
        delete_documents,
        delete_stale_chunks,
        ensure_collection,
        vectors_for_hashes,
        write_objects,
    )
    from ragloop.staging import read_documents, read_json

    started = time.monotonic()
    config = _config(config_path)
    batch = read_json(batch_url)
    items = batch["items"]
    embedder = embedder or make_embedder(config.embedder)
    chunkers: dict[str, Any] = {}
    by_location = {(item["shard"], item["line"]): item for item in items}
    documents = dict(read_documents(by_location))
    missing = set(by_location) - set(documents)
    if missing:
        raise IngestError(f"Staged documents missing from {batch_url}: {sorted(missing)[:5]}")
    stats: dict[str, dict] = {}
    # One source per group (sources keep their own chunking), about GROUP_CHUNKS chunks each.
    groups: list[list[dict]] = []
    for item in items:
        if (
            not groups
            or groups[-1][0]["source_id"] != item["source_id"]
            or sum(i["estimated_chunks"] for i in groups[-1]) >= GROUP_CHUNKS
        ):
            groups.append([])
        groups[-1].append(item)

    label = f"batch {batch['number'] + 1}/{batch['of']}"
    done_docs = 0
    with connect(weaviate_conn_id) as client:
        ensure_collection(client, config.collection, embedder)
        for group in groups:
            group_started = time.monotonic()
            source_id = group[0]["source_id"]
            counts = stats.setdefault(source_id, _empty_index_counts())
            if source_id not in chunkers:
                chunkers[source_id] = chunker_for(embedder, ChunkingSettings(**config.chunking_for(source_id)))
            split = [(item, documents[(item["shard"], item["line"])]) for item in group]
            split = [(item, document, chunkers[source_id].split(document)) for item, document in split]
            hashes = {chunk.chunk_hash for _, _, chunks in split for chunk in chunks}
            vectors = vectors_for_hashes(client, config.collection, hashes)
            new_texts = {}
            for _, _, chunks in split:
                for chunk in chunks:
                    if chunk.chunk_hash not in vectors:
                        new_texts.setdefault(chunk.chunk_hash, chunk.text)
            tokens_before = embedder.usage.tokens
            if new_texts:
                for chunk_hash, vector in zip(new_texts, embedder.embed(list(new_texts.values()))):
                    vectors[chunk_hash] = vector
            objects = [
                chunk_object(document, chunk, item["doc_hash"], len(chunks), vectors[chunk.chunk_hash])
                for item, document, chunks in split
                for chunk in chunks
            ]
            counts["chunks_written"] += write_objects(client, config.collection, objects)
            # Only now, with the new chunks in place, do the old ones go.
            rewritten = {item["doc_id"]: item["doc_hash"] for item, _, chunks in split if item["existed"] and chunks}
            emptied = [item["doc_id"] for item, _, chunks in split if item["existed"] and not chunks]
            counts["chunks_deleted"] += delete_stale_chunks(client, config.collection, rewritten)
            counts["chunks_deleted"] += delete_documents(client, config.collection, emptied)
            counts["documents_indexed"] += len(group)
            counts["chunks_embedded"] += len(new_texts)
            counts["chunks_reused"] += len(objects) - len(new_texts)
            counts["embedding_tokens"] += embedder.usage.tokens - tokens_before
            counts["seconds"] = round(counts["seconds"] + time.monotonic() - group_started, 2)
            done_docs += len(group)
            progress(
                "%s: %d/%d documents, %d chunks written (%d embedded, %d reused) in %.1f s",
                label,
                done_docs,
                len(items),
                len(objects),
                len(new_texts),
                len(objects) - len(new_texts),
                time.monotonic() - group_started,
            )
    return {"batch": batch["number"], "documents": len(items), "sources": stats, "seconds": round(time.monotonic() - started, 2)}


def prune_sources(dag_run: "DagRunRef", config_path: str | None = None, weaviate_conn_id: str = WEAVIATE_CONN_ID) -> dict:
    """Delete documents gone from complete listings (incomplete listings prune nothing), then
    store the watermarks the API sources proposed.

    This task runs only when every index batch succeeded (trigger rule none_failed), so a
    watermark never moves past documents that are not in the index: a failed run re-reads the
    same window next time. A source whose extract failed proposes none.
    """
    from ragloop.index import connect, delete_documents, write_watermarks
    from ragloop.staging import read_json

    started = time.monotonic()
    config = _config(config_path)
    plan = read_json(str(plan_path(config, dag_run)))
    result: dict[str, dict] = {}
    with connect(weaviate_conn_id) as client:
        for source_id, entry in plan["sources"].items():
            gone = entry.get("prune")
            if gone is None:
                result[source_id] = {
                    "documents_deleted": 0,
                    "chunks_deleted": 0,
                    "prune": entry.get("prune_skipped") or entry.get("error", "skipped"),
                }
            else:
                chunks = delete_documents(client, config.collection, gone) if gone else 0
                result[source_id] = {
                    "documents_deleted": len(gone),
                    "chunks_deleted": chunks,
                    "prune": entry.get("prune_note") or "done",
                }
                if gone:
                    progress("%s: pruned %d documents (%d chunks) gone from the source", source_id, len(gone), chunks)
            watermarks = entry.get("watermarks") or {}
            if watermarks and "error" not in entry:
                write_watermarks(client, config.collection, source_id, watermarks)
                result[source_id]["watermarks"] = {item: state.get("watermark") for item, state in watermarks.items()}
                progress("%s: watermarks advanced for %s", source_id, ", ".join(sorted(watermarks)))
    return {"sources": result, "seconds": round(time.monotonic() - started, 2)}


def build_report(
    dag_run: "DagRunRef",
    source_ids: list[str],
    index_results: list[dict] | None,
    prune: dict,
    config_path: str | None = None,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> dict:
    """One report per run: per source what was seen, changed, embedded, written and deleted; and
    which Weaviate and staging store the run used. The run's staging is done with after this."""
    from ragloop.index import collection_counts, connect, endpoint_from_connection
    from ragloop.staging import read_json

    config = _config(config_path)
    plan = read_json(str(plan_path(config, dag_run)))
    plan_detail = plan["sources"]
    sources = {}
    for source_id in source_ids:
        planned = plan_detail.get(source_id, {})
        indexed = _empty_index_counts()
        for result in index_results or []:
            for key, value in (result or {}).get("sources", {}).get(source_id, {}).items():
                indexed[key] = round(indexed[key] + value, 2) if isinstance(value, float) else indexed[key] + value
        pruned = prune.get("sources", {}).get(source_id, {})
        sources[source_id] = {
            "documents": {
                "seen": planned.get("seen", 0),
                "new": planned.get("new", 0),
                "changed": planned.get("changed", 0),
                "unchanged": planned.get("unchanged", 0),
                "deleted": pruned.get("documents_deleted", 0),
                "failed": planned.get("failed", 0),
                "skipped": planned.get("skipped", 0),
            },
            "chunks": {
                "embedded": indexed["chunks_embedded"],
                "reused": indexed["chunks_reused"],
                "written": indexed["chunks_written"],
                "deleted": indexed["chunks_deleted"] + pruned.get("chunks_deleted", 0),
            },
            "embedding_tokens": indexed["embedding_tokens"],
            "seconds": {"extract": planned.get("extract_seconds"), "index": indexed["seconds"], "prune": prune.get("seconds")},
            "prune": pruned.get("prune", "not run"),
            "mode": planned.get("mode", "full"),
            # item -> the watermark stored by this run (API sources; absent when none advanced)
            "watermarks": pruned.get("watermarks", {}),
            "failures": planned.get("failures", [])[:FAILURES_SHOWN],
            "skipped_items": planned.get("skipped_items", [])[:FAILURES_SHOWN],
        }
        if "error" in planned:
            sources[source_id]["error"] = planned["error"]
    with connect(weaviate_conn_id) as client:
        counts = collection_counts(client)
    finish_staging(config, dag_run)
    report = {
        "dag_id": dag_run.dag_id,
        "dag_run_id": dag_run.run_id,
        "weaviate": endpoint_from_connection(weaviate_conn_id).url,
        "staging": str(_staging_root(config)),
        "collection": config.collection,
        "collection_chunks": counts.get(config.collection, 0),
        "sources": sources,
        "totals": {key: sum(s["chunks"][key] for s in sources.values()) for key in ("embedded", "reused", "written", "deleted")},
        "embedding_tokens": sum(s["embedding_tokens"] for s in sources.values()),
        "seconds": {
            "plan": plan.get("seconds"),
            "index": round(sum((r or {}).get("seconds", 0) for r in index_results or []), 2),
            "prune": prune.get("seconds"),
        },
        "errors": [f"{sid}: {s['error']}" for sid, s in sources.items() if "error" in s],
    }
    log.info("Ingest report:\n%s", format_report(report))
    return report


def finish_staging(config, dag_run: "DagRunRef") -> int:
    """Mark the run's staged folder finished and remove older finished runs of the same DAG."""
    from ragloop.staging import mark_finished, remove_old_runs

    root = _staging_root(config)
    mark_finished(root, dag_run)
    removed = remove_old_runs(root, dag_run)
    if removed:
        log.info("Removed %d staged folders of finished %s runs", removed, dag_run.dag_id)
    return removed


def format_report(report: dict) -> str:
    """The report as a small table for logs and the CLI."""
    header = (
        f"{'source':<20} {'seen':>6} {'new':>5} {'chg':>5} {'same':>6} {'del':>5} {'fail':>5} {'skip':>5} "
        f"{'embedded':>9} {'reused':>7} {'written':>8} {'deleted':>8} {'tokens':>8}"
    )
    lines = [header]
    for source_id, s in report["sources"].items():
        d, c = s["documents"], s["chunks"]
        lines.append(
            f"{source_id:<20} {d['seen']:>6} {d['new']:>5} {d['changed']:>5} {d['unchanged']:>6} {d['deleted']:>5} "
            f"{d['failed']:>5} {d['skipped']:>5} {c['embedded']:>9} {c['reused']:>7} {c['written']:>8} {c['deleted']:>8} "
            f"{s['embedding_tokens']:>8}"
        )
        for failure in s["failures"]:
            lines.append(f"  failed: {failure['item']}: {failure['reason']}")
        for skipped in s["skipped_items"]:
            lines.append(f"  skipped: {skipped['item']}: {skipped['reason']}")
        if s["prune"] != "done":
            lines.append(f"  prune: {s['prune']}")
        if s.get("watermarks"):
            lines.append("  watermarks: " + ", ".join(f"{item} → {mark}" for item, mark in sorted(s["watermarks"].items())))
        if "error" in s:
            lines.append(f"  ERROR: {s['error']}")
    seconds = report["seconds"]
    lines.append(
        f"{report['collection']}: {report['collection_chunks']} chunks; embedded {report['totals']['embedded']} "
        f"({report['embedding_tokens']} tokens), reused {report['totals']['reused']}, written {report['totals']['written']}, "
        f"deleted {report['totals']['deleted']}; plan {seconds['plan']} s, index {seconds['index']} s, prune {seconds['prune']} s"
    )
    return "\n".join(lines)


def merge_reports(reports: list[dict]) -> dict:
    """One report for several ingest runs (one per source type): `ragloop ingest` with no
    --source runs each type's DAG."""
    if len(reports) == 1:
        return reports[0]
    return {
        "dag_id": ", ".join(r["dag_id"] for r in reports),
        "dag_run_id": ", ".join(r["dag_run_id"] for r in reports),
        "weaviate": reports[-1]["weaviate"],
        "staging": reports[-1]["staging"],
        "collection": reports[-1]["collection"],
        "collection_chunks": reports[-1]["collection_chunks"],  # the last run saw all the others' writes
        "sources": {sid: s for r in reports for sid, s in r["sources"].items()},
        "totals": {k: sum(r["totals"][k] for r in reports) for k in reports[0]["totals"]},
        "embedding_tokens": sum(r["embedding_tokens"] for r in reports),
        "seconds": {k: round(sum(r["seconds"].get(k) or 0 for r in reports), 2) for k in ("plan", "index", "prune")},
        "errors": [e for r in reports for e in r["errors"]],
    }


def ingest(
    run_id: str,
    config_path: str | None = None,
    requested: list[str] | None = None,
    full_refresh: bool = False,
    source_type: str = "docs",
    embedder=None,
    full_listing: bool = False,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> dict:
    """All task bodies in order, in this process, without a scheduler: what the DAG of
    `source_type` runs (staged under that DAG's id and `run_id`), for benchmarks and tests that
    need no Airflow run."""
    from ragloop.staging import DagRunRef

    dag_run = DagRunRef(INGEST_DAG_IDS[source_type], run_id)
    source_ids = select_sources(config_path, requested, source_type)
    for source_id in source_ids:
        extract_source(source_id, dag_run, config_path, full_listing, weaviate_conn_id)
    plan = plan_ingest(dag_run, source_ids, config_path, full_refresh, weaviate_conn_id)
    index_results = [index_batch(url, config_path, embedder, weaviate_conn_id) for url in plan["batches"]]
    prune = prune_sources(dag_run, config_path, weaviate_conn_id)
    return build_report(dag_run, source_ids, index_results, prune, config_path, weaviate_conn_id)
