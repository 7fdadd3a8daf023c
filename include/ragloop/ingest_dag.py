"""The ingest flow every ingest DAG declares: one per source type, the same tasks.

select sources → extract (one mapped task per source; documents staged as files) → plan (one
streaming read of the index) → index (one mapped task per batch of new and changed documents)
→ prune (documents gone from complete listings; then the API sources' watermarks advance) →
report (log, return value, asset event) → check_complete.

`ingest_dag(...)` returns the `@dag`-decorated function; the DAG file calls it, so Airflow
records the DAG file (not this module) as the DAG's file. Only `airflow.sdk` is imported here:
DAG files stay light at parse time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from airflow.sdk import Param, dag, task

from ragloop.catalog import DEFAULT_ARGS, TAGS, ingest_asset
from ragloop.hooks.endpoint import WEAVIATE_CONN_ID

if TYPE_CHECKING:
    from ragloop.ingest.types import PruneResult

KNOWLEDGE_BASE = ingest_asset()


def ingest_dag(dag_id: str, source_type: str, doc_md: str | None = None, api_source: bool = False):
    """The ingest DAG for sources of `source_type`. API sources (live Slack, GitHub) also take
    `full_listing`: read everything instead of the window since the watermarks, and prune
    documents gone from the source."""
    params = {
        "config": Param(None, type=["null", "string"], description="sources.yaml path (default: include/sources.yaml)"),
        "weaviate_conn_id": Param(WEAVIATE_CONN_ID, type="string", description="Airflow connection of the Weaviate to fill"),
        "sources": Param(
            [], type="array", items={"type": "string"}, description=f"source ids to ingest (default: all {source_type} sources)"
        ),
        "full_refresh": Param(
            False, type="boolean", description="rewrite every document, changed or not (vectors of unchanged text are reused)"
        ),
    }
    if api_source:
        params["full_listing"] = Param(
            False,
            type="boolean",
            description="read everything, not just what changed since the watermarks, and prune documents gone "
            "from the source (run it now and then: deleted threads, deleted or transferred issues)",
        )

    @dag(
        dag_id=dag_id,
        schedule="@daily",  # nightly, at midnight in the deployment's time zone
        catchup=False,
        max_active_runs=1,  # two runs planning against the same collection would double work
        default_args=DEFAULT_ARGS,
        tags=[*TAGS, "ingest", source_type],
        params=params,
        doc_md=doc_md,
    )
    def ingest():
        @task
        def select_sources(params=None) -> list[str]:
            from ragloop.ingest import select_sources

            return select_sources(params["config"], params["sources"], source_type)

        @task(map_index_template="{{ task.op_kwargs['source_id'] }}")
        def extract(source_id: str, dag_run=None, params=None) -> dict:
            from ragloop.ingest import extract_source
            from ragloop.staging import DagRunRef

            # A plain dict for XCom (and `-> dict` keeps Airflow pushing each key, as before).
            return dict(
                extract_source(
                    source_id,
                    DagRunRef.from_context(dag_run),
                    params["config"],
                    bool(params.get("full_listing")),
                    params["weaviate_conn_id"],
                )
            )

        # Runs when some extracts failed: the others are still indexed, and the failed ones are
        # neither changed nor pruned, nor do their watermarks move (the report says so and the
        # run ends failed).
        @task(trigger_rule="all_done")
        def plan(source_ids: list[str], dag_run=None, params=None) -> list[str]:
            from ragloop.ingest import plan_ingest
            from ragloop.staging import DagRunRef

            # The batches to map over; prune and report read the rest of the plan from staging.
            return plan_ingest(
                DagRunRef.from_context(dag_run), source_ids, params["config"], params["full_refresh"], params["weaviate_conn_id"]
            )["batches"]

        @task(max_active_tis_per_dagrun=4)
        def index(batch: str, params=None) -> dict:
            from ragloop.ingest import index_batch

            return dict(index_batch(batch, params["config"], weaviate_conn_id=params["weaviate_conn_id"]))

        # none_failed: with any index batch failed, nothing is pruned and no watermark advances.
        @task(trigger_rule="none_failed")
        def prune(dag_run=None, params=None) -> dict:
            from ragloop.ingest import prune_sources
            from ragloop.staging import DagRunRef

            return dict(prune_sources(DagRunRef.from_context(dag_run), params["config"], params["weaviate_conn_id"]))

        @task(trigger_rule="none_failed", outlets=[KNOWLEDGE_BASE])
        def report(source_ids: list[str], indexed: list, pruned: dict, dag_run=None, params=None, outlet_events=None) -> dict:
            from ragloop.ingest import build_report
            from ragloop.runs.reports import keep_report
            from ragloop.staging import DagRunRef

            # One slice request: iterating the lazy sequence probes past its end, which Airflow
            # logs as an error ("XCom not found") on every run.
            results = list(indexed[:]) if indexed else []
            result = dict(
                build_report(
                    DagRunRef.from_context(dag_run),
                    source_ids,
                    results,
                    cast("PruneResult", pruned),
                    params["config"],
                    params["weaviate_conn_id"],
                )
            )
            outlet_events[KNOWLEDGE_BASE].extra = result
            # For the operator's page and `ragloop report`, past XCom clean-up.
            result["report_stored"] = keep_report("ingest", result)
            return result

        @task(trigger_rule="none_failed")
        def check_complete(result: dict) -> None:
            from ragloop.errors import IngestError

            if result["errors"]:
                raise IngestError("Sources not ingested: " + "; ".join(result["errors"]))

        source_ids = select_sources()
        extracted = extract.expand(source_id=source_ids)
        planned = plan(source_ids)
        extracted >> planned
        indexed = index.expand(batch=planned)
        pruned = prune()
        indexed >> pruned
        result = report(source_ids, indexed, pruned)
        check_complete(result)

    return ingest
