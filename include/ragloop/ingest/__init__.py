"""Ingestion: select → extract (per source) → plan → index (per batch) → prune → report.

One module per stage; `planning` is the pure core of the plan, `types` what the stages hand each
other, `run_files` where a run's files are in the staging store, `listing` the one in-process
entry point (plan → index → prune over an Index, typed result). The names below are what the
DAGs, the CLI and the tests use.
"""

from ragloop.errors import IngestError
from ragloop.ingest.extract import extract_source, select_sources, stage_documents
from ragloop.ingest.indexing import index_batch, index_documents
from ragloop.ingest.listing import ingest_listings, ingest_staged_listings, pruned_doc_ids
from ragloop.ingest.plan import plan_ingest, plan_listings
from ragloop.ingest.prune import prune_planned, prune_sources
from ragloop.ingest.report import build_report, format_report, merge_reports
from ragloop.ingest.run import ingest
from ragloop.ingest.run_files import finish_staging, plan_path

__all__ = [
    "IngestError",
    "build_report",
    "extract_source",
    "finish_staging",
    "format_report",
    "index_batch",
    "index_documents",
    "ingest",
    "ingest_listings",
    "ingest_staged_listings",
    "merge_reports",
    "plan_ingest",
    "plan_listings",
    "plan_path",
    "prune_planned",
    "prune_sources",
    "pruned_doc_ids",
    "select_sources",
    "stage_documents",
]
