"""ragloop's ingest DAGs: one per source type, each the public task group
`ragloop.airflow.task_groups.ingest_sources` with the Params people trigger it with.

settings → select sources → extract (one mapped task per source; documents staged as files) → plan (one
streaming read of the index) → index (one mapped task per batch of new and changed documents)
→ prune (documents gone from complete listings; then the API sources' watermarks advance) →
report (log, return value, asset event) → check_complete.

`ingest_dag(...)` returns the `@dag`-decorated function; the DAG file calls it, so Airflow
records the DAG file (not this module) as the DAG's file. Only `airflow.sdk` is imported here:
DAG files stay light at parse time.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from ragloop.airflow.assets import DEFAULT_ARGS, TAGS, ingest_asset
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.airflow.task_groups import ingest_sources

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
        # Task ids unprefixed ("extract", "report"...): the CLI and the operator's page read them.
        # The settings are read from the Params above.
        ingest_sources(group_id="ingest", source_type=source_type, outlets=[KNOWLEDGE_BASE], prefix_group_id=False)

    return ingest
