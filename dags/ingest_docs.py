"""Keeps the knowledge base in step with the docs sources of `include/sources.yaml`.

select sources → extract (one mapped task per source; documents staged as files) → plan (one
streaming read of the index) → index (one mapped task per batch of new and changed documents)
→ prune (documents gone from complete listings) → report (log, return value, asset event).
Only changed text is embedded; re-running any task, or the whole DAG, converges to the same index.
Trigger with `sources` to ingest some sources only, `full_refresh` to rewrite every document.
"""

from airflow.sdk import Param, dag, task

from ragloop.dag_defaults import DEFAULT_ARGS, TAGS, ingest_asset

KNOWLEDGE_BASE = ingest_asset()


@dag(
    dag_id="ragloop_ingest_docs",
    schedule="@daily",  # nightly, at midnight in the deployment's time zone
    catchup=False,
    max_active_runs=1,  # two runs planning against the same collection would double work
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "ingest", "docs"],
    params={
        "config": Param(None, type=["null", "string"], description="sources.yaml path (default: include/sources.yaml)"),
        "sources": Param([], type="array", items={"type": "string"}, description="source ids to ingest (default: all docs sources)"),
        "full_refresh": Param(False, type="boolean", description="rewrite every document, changed or not (vectors of unchanged text are reused)"),
    },
    doc_md=__doc__,
)
def ragloop_ingest_docs():
    @task
    def select_sources(params=None) -> list[str]:
        from ragloop.pipeline import select_sources

        return select_sources(params["config"], params["sources"], "docs")

    @task(map_index_template="{{ task.op_kwargs['source_id'] }}")
    def extract(source_id: str, run_id=None, params=None) -> dict:
        from ragloop.pipeline import extract_source

        return extract_source(source_id, run_id, params["config"])

    # Runs when some extracts failed: the others are still indexed, and the failed ones are
    # neither changed nor pruned (the report says so and the run ends failed).
    @task(trigger_rule="all_done")
    def plan(source_ids: list[str], run_id=None, params=None) -> list[str]:
        from ragloop.pipeline import plan_ingest

        # The batches to map over; prune and report read the rest of the plan from staging.
        return plan_ingest(run_id, source_ids, params["config"], params["full_refresh"])["batches"]

    @task(max_active_tis_per_dagrun=4)
    def index(batch: str, params=None) -> dict:
        from ragloop.pipeline import index_batch

        return index_batch(batch, params["config"])

    @task(trigger_rule="none_failed")
    def prune(run_id=None, params=None) -> dict:
        from ragloop.pipeline import prune_sources

        return prune_sources(run_id, params["config"])

    @task(trigger_rule="none_failed", outlets=[KNOWLEDGE_BASE])
    def report(source_ids: list[str], indexed: list, pruned: dict, run_id=None, params=None, outlet_events=None) -> dict:
        from ragloop.pipeline import build_report

        # One slice request: iterating the lazy sequence probes past its end, which Airflow
        # logs as an error ("XCom not found") on every run.
        results = list(indexed[:]) if indexed else []
        result = build_report(run_id, source_ids, results, pruned, params["config"])
        outlet_events[KNOWLEDGE_BASE].extra = result
        return result

    @task(trigger_rule="none_failed")
    def check_complete(result: dict) -> None:
        from ragloop.pipeline import IngestError

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


ragloop_ingest_docs()
