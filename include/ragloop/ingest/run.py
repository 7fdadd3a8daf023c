"""All ingest stages in order in one process, without a scheduler."""

from __future__ import annotations

from ragloop.catalog import INGEST_DAG_IDS
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.ingest.extract import extract_source, select_sources
from ragloop.ingest.listing import ingest_staged_listings
from ragloop.ingest.report import build_report
from ragloop.ingest.types import IngestReport
from ragloop.staging import DagRunRef


def ingest(
    run_id: str,
    config_path: str | None = None,
    requested: list[str] | None = None,
    full_refresh: bool = False,
    source_type: str = "docs",
    embedder=None,
    full_listing: bool = False,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> IngestReport:
    """All task bodies in order, in this process, without a scheduler: what the DAG of
    `source_type` runs (staged under that DAG's id and `run_id`), for benchmarks and tests that
    need no Airflow run."""

    dag_run = DagRunRef(INGEST_DAG_IDS[source_type], run_id)
    source_ids = select_sources(config_path, requested, source_type)
    for source_id in source_ids:
        extract_source(source_id, dag_run, config_path, full_listing, weaviate_conn_id)
    done = ingest_staged_listings(dag_run, source_ids, config_path, weaviate_conn_id, full_refresh, embedder)
    return build_report(dag_run, source_ids, done["batches"], done["prune"], config_path, weaviate_conn_id)
