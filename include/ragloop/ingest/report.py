"""Report: one per ingest run, per source what was seen, changed, embedded, written and deleted.
Building it ends the run's use of its staging."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ragloop.config import load_config
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import collection_counts, connect, endpoint_from_connection
from ragloop.ingest.indexing import add_index_counts, empty_index_counts
from ragloop.ingest.run_files import finish_staging, plan_path, staging_root_of
from ragloop.ingest.types import BatchResult, ChunkCounts, IngestReport, PruneResult, SourcePruned, SourceReport
from ragloop.staging import DagRunRef, read_json

log = logging.getLogger(__name__)

FAILURES_SHOWN = 20  # failures listed per source in a report (all are logged)


def build_report(
    dag_run: DagRunRef,
    source_ids: list[str],
    index_results: list[BatchResult] | None,
    prune: PruneResult,
    config_path: str | None = None,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> IngestReport:
    """One report per run: per source what was seen, changed, embedded, written and deleted; and
    which Weaviate and staging store the run used. The run's staging is done with after this."""

    config = load_config(config_path)
    plan = read_json(str(plan_path(config, dag_run)))
    plan_detail = plan["sources"]
    sources: dict[str, SourceReport] = {}
    for source_id in source_ids:
        planned = plan_detail.get(source_id, {})
        indexed = empty_index_counts()
        for result in index_results or []:
            if result and source_id in result["sources"]:
                add_index_counts(indexed, result["sources"][source_id])
        pruned: SourcePruned | dict = prune.get("sources", {}).get(source_id, {})
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
        found = indexed.get("credential_documents") or []
        if found:
            # Named by doc id and rule, never quoted: the report is shown on the operator page.
            sources[source_id]["credentials"] = {
                "documents": len(found),
                "quarantined": sum(1 for d in found if d["quarantined"]),
                "named": found[:FAILURES_SHOWN],
            }
    with connect(weaviate_conn_id) as client:
        counts = collection_counts(client)
    finish_staging(config, dag_run)
    report: IngestReport = {
        "dag_id": dag_run.dag_id,
        "dag_run_id": dag_run.run_id,
        "weaviate": endpoint_from_connection(weaviate_conn_id).url,
        "staging": str(staging_root_of(config)),
        "collection": config.collection,
        "collection_chunks": counts.get(config.collection, 0),
        "sources": sources,
        "totals": sum_chunk_counts(s["chunks"] for s in sources.values()),
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


def sum_chunk_counts(counts: Iterable[ChunkCounts]) -> ChunkCounts:
    total: ChunkCounts = {"embedded": 0, "reused": 0, "written": 0, "deleted": 0}
    for c in counts:
        total["embedded"] += c["embedded"]
        total["reused"] += c["reused"]
        total["written"] += c["written"]
        total["deleted"] += c["deleted"]
    return total


def format_report(report: IngestReport) -> str:
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
        credentials = s.get("credentials")
        if credentials:
            lines.append(
                f"  credentials found in {credentials['documents']} document(s), {credentials['quarantined']} kept out of public search:"
            )
            for named in credentials["named"]:
                lines.append(f"    {named['doc_id']}: {', '.join(named['rules'])} ({named['chunks']} chunk(s))")
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


def merge_reports(reports: list[IngestReport]) -> IngestReport:
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
        "totals": sum_chunk_counts(r["totals"] for r in reports),
        "embedding_tokens": sum(r["embedding_tokens"] for r in reports),
        "seconds": {k: round(sum(r["seconds"].get(k) or 0 for r in reports), 2) for k in ("plan", "index", "prune")},
        "errors": [e for r in reports for e in r["errors"]],
    }
