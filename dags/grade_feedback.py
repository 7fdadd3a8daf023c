"""The feedback DAG: grade recorded Q&A runs, write the good answers back into the knowledge
base, and revoke the ones that stopped being good. Built from the public task groups
`ragloop.airflow.task_groups.grade_runs` and `write_back_answers` (task bodies: `ragloop.grading`)."""

from __future__ import annotations

from airflow.configuration import conf
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag

from ragloop.airflow.assets import DEFAULT_ARGS, TAGS, ingest_asset, runs_asset
from ragloop.catalog import GRADE_DAG_ID
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.airflow.task_groups import feedback_loop


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
    # Settings from the Params above, read once and passed whole to every task (grounding and
    # write-back use the same `weaviate_conn_id`). Task ids unprefixed: the CLI reads them.
    feedback_loop(outlets=[ingest_asset()], prefix_group_id=False)


grade_feedback()
