"""An example DAG built only from ragloop's public surface (`ragloop.airflow.task_groups`): ingest the docs
sources of a sources.yaml into its collection, then grade the recorded Q&A runs and write the good
answers back, with a place for a human approval between grading and write-back.

Copy it into your DAGs folder; trigger it with `config` (a sources.yaml path) and
`weaviate_conn_id` (a connection of type `weaviate`), or keep the defaults.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from ragloop.airflow.task_groups import grade_runs, ingest_sources, write_back_answers


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "config": Param(None, type=["null", "string"], description="sources.yaml path"),
        "weaviate_conn_id": Param("weaviate_default", type="string", description="the Weaviate to fill"),
    },
    tags=["ragloop", "example"],
)
def example_knowledge_base():
    docs = ingest_sources(group_id="docs", source_type="docs")
    graded = grade_runs()

    # none_failed, not all_success: on a night with nothing to grade the mapped grade task is
    # skipped, and an all_success approval would be skipped with it, and write-back (with its
    # revocations) after it, failing the run.
    @task(trigger_rule="none_failed")
    def approve() -> None:
        """Stands for a human approval (a later issue): write-back runs only when this succeeds."""

    approval = approve()
    graded >> approval
    docs >> graded
    write_back_answers(graded, after=approval)


example_knowledge_base()
