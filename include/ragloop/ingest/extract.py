"""Extract: read one source and stage its documents as files with a listing, which the plan
compares with the index. Every source (written-back answers too) enters the index through here."""

from __future__ import annotations

import logging
import time

from ragloop.config import ConfigError, load_config
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import open_weaviate_index
from ragloop.ingest.run_files import run_dir
from ragloop.ingest.types import ExtractResult, IdListing
from ragloop.progress import progress, progress_bar
from ragloop.sources import ExtractReport, Source, make_source
from ragloop.staging import DagRunRef, ShardWriter, safe_key, write_json

log = logging.getLogger(__name__)


def select_sources(config_path: str | None = None, requested: list[str] | None = None, source_type: str = "docs") -> list[str]:
    """The ids of the sources this run ingests; checks the whole configuration first, so a
    mistake stops the run before anything is read or written."""

    config = load_config(config_path)
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
    dag_run: DagRunRef,
    config_path: str | None = None,
    full_listing: bool = False,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> ExtractResult:
    """Read one source and stage its documents; returns where the listing is and the counts.

    An API source reads from the watermarks stored in the index (all of it on a full-listing
    run); the watermarks it proposes travel in the listing and are stored by `prune_sources`,
    after the documents are indexed.
    """

    started = time.monotonic()
    config = load_config(config_path)
    source = make_source(config.source(source_id))
    report = ExtractReport(source_id)
    watermarks: dict[str, dict] = {}
    if source.uses_watermarks and not full_listing:
        with open_weaviate_index(config.collection, weaviate_conn_id) as index:
            watermarks = index.read_watermarks(source_id)
        progress(
            "%s: %s",
            source_id,
            f"watermarks of {', '.join(sorted(watermarks))}" if watermarks else "no watermarks in the index: reading everything",
        )
    lists_everything = source.lists_everything(full_listing)
    # A run whose own listing is incomplete prunes from the source's ids-only listing, if it has one.
    id_listing = list_source_ids(source) if not lists_everything and source.offers_id_listing else None
    return stage_documents(
        config,
        dag_run,
        source_id,
        source.read(report, watermarks, full_listing),
        report,
        lists_everything,
        started,
        id_listing=id_listing,
    )


def list_source_ids(source: Source) -> IdListing:
    """The source's ids-only listing (`Source.list_ids`): every doc_id it holds now, plus those of
    items that failed to list (kept, never pruned); incomplete when a failure named no document."""
    report = ExtractReport(source.id)
    ids = set(source.list_ids(report)) | set(report.failed_doc_ids)
    progress(
        "%s: ids-only listing of %d documents%s",
        source.id,
        len(ids),
        f", incomplete ({len(report.listing_gaps)} items failed to list): prunes nothing" if report.listing_gaps else "",
    )
    return {"ids": sorted(ids), "complete": not report.listing_gaps, "gaps": [f.to_json() for f in report.listing_gaps]}


def stage_documents(
    config,
    dag_run: DagRunRef,
    source_id: str,
    documents_read,
    report,
    lists_everything: bool,
    started: float | None = None,
    id_listing: IdListing | None = None,
) -> ExtractResult:
    """Stage one source's documents as files and write its listing, which `plan_ingest` compares
    with the index: every source (written-back answers too) enters the index through here.

    `lists_everything`: the documents are all the source has, so indexed documents missing from
    them are pruned, except those of items that failed to read; a failure that names no document
    (a folder, a channel) may hide some, so then nothing is pruned (see `ExtractReport.fail`).
    `id_listing`: on a run that does not list everything, the source's ids-only listing, which
    the plan prunes from instead.
    """

    started = time.monotonic() if started is None else started
    folder = run_dir(config, dag_run) / "sources" / safe_key(source_id)
    writer = ShardWriter(folder)
    documents: dict[str, list] = {}
    try:
        with progress_bar(None, f"{source_id}: reading", "doc") as bar:
            for document in documents_read:
                bar.update()
                if document.doc_id in documents:
                    report.fail(document.doc_id, "two items of this source give the same doc_id", document.doc_id)
                    continue
                _shard, line = writer.add(document)
                # [content hash, shard number, line, characters]: compact, the listing can hold 100k documents
                documents[document.doc_id] = [document.content_hash, len(writer.shards) - 1, line, len(document.content)]
                if len(documents) % 1000 == 0:
                    progress("%s: read %d documents", source_id, len(documents))
    finally:
        writer.close()
    complete = lists_everything and not report.listing_gaps
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
        "listing_gaps": [f.to_json() for f in report.listing_gaps],
        "skipped": [f.to_json() for f in report.skipped],
        "id_listing": id_listing,
    }
    listing_url = write_json(folder / "listing.json", listing)
    result: ExtractResult = {
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
