"""The one in-process way to ingest what a run has staged: plan → index every batch → prune.

`ingest_listings` takes what it works on (`IngestTarget`: configuration, Index, embedder) and
returns a typed `ListingIngest`, so no caller reads the plan file's layout. The DAG's tasks run
the same three steps one by one (`plan_listings`, `index_documents`, `prune_planned`, through the
task bodies `plan_ingest`, `index_batch` and `prune_sources` of ragloop.airflow.task_groups), the CLI runs
that DAG, write-back calls `ingest_staged_listings` and `ragloop.ingest.run.ingest` (benchmarks,
tests without a scheduler) calls `ingest_listings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragloop.config import load_config
from ragloop.embedding import make_embedder
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import open_weaviate_index
from ragloop.ingest.indexing import index_documents
from ragloop.ingest.plan import plan_listings
from ragloop.ingest.prune import prune_planned
from ragloop.ingest.types import IngestTarget, ListingIngest

if TYPE_CHECKING:
    from ragloop.embedding import Embedder
    from ragloop.staging import DagRunRef


def ingest_listings(target: IngestTarget, dag_run: DagRunRef, source_ids: list[str], full_refresh: bool = False) -> ListingIngest:
    """Index the listings `dag_run` staged for `source_ids` into `target.index`: plan, index every
    batch, then prune. A failed batch raises before anything is pruned or any watermark moves
    (the DAG's prune task has trigger rule none_failed for the same reason)."""
    plan = plan_listings(target, dag_run, source_ids, full_refresh)
    batches = [index_documents(target, url) for url in plan["batches"]]
    return {"plan": plan, "batches": batches, "prune": prune_planned(target.config, target.index, dag_run)}


def ingest_staged_listings(
    dag_run: DagRunRef,
    source_ids: list[str],
    config_path: str | None = None,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
    full_refresh: bool = False,
    embedder: Embedder | None = None,
) -> ListingIngest:
    """`ingest_listings` into the configured collection of the Weaviate of `weaviate_conn_id`
    (the configured embedder unless one is given)."""
    config = load_config(config_path)
    with open_weaviate_index(config.collection, weaviate_conn_id) as index:
        target = IngestTarget(config, index, embedder or make_embedder(config.embedder))
        return ingest_listings(target, dag_run, source_ids, full_refresh)


def pruned_doc_ids(result: ListingIngest, source_id: str) -> list[str]:
    """The documents of `source_id` the run pruned."""
    pruned = result["prune"]["sources"].get(source_id)
    return list(pruned.get("doc_ids") or []) if pruned else []
