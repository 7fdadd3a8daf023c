"""Prune: delete documents gone from complete listings, then store the watermarks the API
sources proposed."""

from __future__ import annotations

import time

from ragloop.config import Config, load_config
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import Index, open_weaviate_index
from ragloop.ingest.run_files import plan_path
from ragloop.ingest.types import PruneResult, SourcePruned
from ragloop.progress import progress
from ragloop.staging import DagRunRef, read_json


def prune_sources(dag_run: DagRunRef, config_path: str | None = None, weaviate_conn_id: str = WEAVIATE_CONN_ID) -> PruneResult:
    """The prune task: `prune_planned` on the collection of the Weaviate of `weaviate_conn_id`."""
    config = load_config(config_path)
    with open_weaviate_index(config.collection, weaviate_conn_id) as index:
        return prune_planned(config, index, dag_run)


def prune_planned(config: Config, index: Index, dag_run: DagRunRef) -> PruneResult:
    """Delete documents gone from complete listings (incomplete listings prune nothing), then
    store the watermarks the API sources proposed.

    This task runs only when every index batch succeeded (trigger rule none_failed), so a
    watermark never moves past documents that are not in the index: a failed run re-reads the
    same window next time. A source whose extract failed proposes none.
    """

    started = time.monotonic()
    plan = read_json(str(plan_path(config, dag_run)))
    result: dict[str, SourcePruned] = {}
    for source_id, entry in plan["sources"].items():
        gone = entry.get("prune")
        if gone is None:
            result[source_id] = {
                "documents_deleted": 0,
                "chunks_deleted": 0,
                "prune": entry.get("prune_skipped") or entry.get("error", "skipped"),
            }
        else:
            chunks = index.delete_documents(gone) if gone else 0
            result[source_id] = {
                "documents_deleted": len(gone),
                "chunks_deleted": chunks,
                "prune": entry.get("prune_note") or "done",
            }
            if gone:
                result[source_id]["doc_ids"] = list(gone)
                progress("%s: pruned %d documents (%d chunks) gone from the source", source_id, len(gone), chunks)
        watermarks = entry.get("watermarks") or {}
        if watermarks and "error" not in entry:
            index.write_watermarks(source_id, watermarks)
            result[source_id]["watermarks"] = {item: state.get("watermark") for item, state in watermarks.items()}
            progress("%s: watermarks advanced for %s", source_id, ", ".join(sorted(watermarks)))
    return {"sources": result, "seconds": round(time.monotonic() - started, 2)}
