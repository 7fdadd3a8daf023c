"""Plan: compare the staged listings with the index (one streaming read) and stage the work.
The decisions are `planning.plan_source`'s, a pure function; this is the task around it."""

from __future__ import annotations

import time

from ragloop.chunking import ChunkingSettings
from ragloop.config import load_config
from ragloop.embedding import make_embedder
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import open_weaviate_index
from ragloop.ingest.planning import MAX_INDEX_BATCHES, WorkItem, batch_work, plan_source
from ragloop.ingest.run_files import plan_path, run_dir
from ragloop.ingest.types import IngestTarget, PlanResult
from ragloop.progress import progress
from ragloop.staging import DagRunRef, path, read_json, safe_key, write_json


def plan_ingest(
    dag_run: DagRunRef,
    source_ids: list[str],
    config_path: str | None = None,
    full_refresh: bool = False,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> PlanResult:
    """The plan task: `plan_listings` against the collection of the Weaviate of `weaviate_conn_id`."""
    config = load_config(config_path)
    with open_weaviate_index(config.collection, weaviate_conn_id) as index:
        return plan_listings(IngestTarget(config, index, make_embedder(config.embedder)), dag_run, source_ids, full_refresh)


def plan_listings(target: IngestTarget, dag_run: DagRunRef, source_ids: list[str], full_refresh: bool = False) -> PlanResult:
    """Compare the staged listings with the index's document records (one object per document)
    and write the work: batches of new and changed documents, and per source the documents to
    prune."""

    started = time.monotonic()
    config = target.config
    folder = run_dir(config, dag_run)
    target.index.prepare(target.embedder, config.replication)
    indexed = target.index.read_records(set(source_ids))
    progress("Read the index state of %d documents of %s", len(indexed), ", ".join(source_ids) or "no sources")

    sources: dict[str, dict] = {}
    work: list[WorkItem] = []
    for source_id in source_ids:
        listing_path = folder / "sources" / safe_key(source_id) / "listing.json"
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
        write_json(folder / "batches" / f"batch-{number:04d}.json", {"number": number, "of": len(batches), "items": items})
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
