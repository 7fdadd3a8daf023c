"""The feedback DAG: grade recorded Q&A runs, write the good answers back into the knowledge
base, and revoke the ones that stopped being good. Task bodies: `ragloop.grading`."""

from __future__ import annotations

from airflow.configuration import conf
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from ragloop.catalog import DEFAULT_ARGS, GRADE_DAG_ID, TAGS, ingest_asset, runs_asset
from ragloop.hooks.endpoint import WEAVIATE_CONN_ID

KNOWLEDGE_BASE = ingest_asset()


@dag(
    dag_id=GRADE_DAG_ID,
    # Nightly at 01:00, after the midnight ingests; and whenever a run or a vote is recorded
    # (the runs API, `ragloop ask`/`feedback`/`runs import` emit ragloop://runs events).
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 1 * * *", timezone=conf.get("core", "default_timezone", fallback="utc")),
        assets=[runs_asset()],
    ),
    catchup=False,
    max_active_runs=1,  # two runs grading and writing back the same runs would double the work
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "feedback"],
    params={
        "config": Param(None, type=["null", "string"], description="sources.yaml path (default: include/sources.yaml)"),
        "weaviate_conn_id": Param(WEAVIATE_CONN_ID, type="string", description="Airflow connection of the Weaviate written back to"),
        "limit": Param(1000, type="integer", minimum=1, description="runs graded per DAG run, oldest first"),
        "regrade_outdated": Param(
            False, type="boolean",
            description="also grade again every run graded by an older criterion version (written-back runs always are)",
        ),
    },
    doc_md=__doc__,
)
def grade_feedback():
    @task
    def select_runs(params=None) -> list[list[str]]:
        from ragloop.grading import select_runs

        return select_runs(params["config"], params["limit"], params["regrade_outdated"])

    @task(max_active_tis_per_dagrun=4)
    def grade(run_ids: list[str], params=None) -> dict:
        from ragloop.grading import grade_batch

        return grade_batch(run_ids, params["config"])

    # all_done: revocations (down votes) happen even when a grade batch failed.
    @task(trigger_rule="all_done")
    def write_back(dag_run=None, params=None) -> dict:
        from ragloop.grading import write_back
        from ragloop.staging import DagRunRef

        return write_back(DagRunRef.from_context(dag_run), params["config"], params["weaviate_conn_id"])

    # all_done, pulling results itself: a failed batch or write-back has no result, and the report
    # still goes out, naming what did not finish.
    @task(trigger_rule="all_done", outlets=[KNOWLEDGE_BASE])
    def report(batches: list, dag_run=None, params=None, outlet_events=None, ti=None) -> dict:
        from ragloop.grading import grade_report
        from ragloop.staging import DagRunRef

        batches = batches or []
        graded = ti.xcom_pull(task_ids="grade", map_indexes=list(range(len(batches)))) if batches else []
        result = grade_report(DagRunRef.from_context(dag_run), batches, graded, ti.xcom_pull(task_ids="write_back"),
                              params["config"], params["weaviate_conn_id"])
        outlet_events[KNOWLEDGE_BASE].extra = result
        return result

    @task(trigger_rule="all_done")
    def check_complete(result: dict) -> None:
        from ragloop.grading import check_complete

        check_complete(result)

    batches = select_runs()
    graded = grade.expand(run_ids=batches)
    written = write_back()
    result = report(batches)
    graded >> written >> result
    check_complete(result)


grade_feedback()
