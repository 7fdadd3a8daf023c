"""The public task groups, built into DAGs as a user would: task ids, wiring, trigger rules, the
approval step, and how settings are resolved (argument, then the DAG's Param, then the default)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from ragloop.airflow.task_groups import _resolved, feedback_loop, ingest_sources


def build(approval: bool):
    with DAG("users_dag", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        notes = ingest_sources(group_id="notes", source_type="acme_kb.notes:NotesSource", config="/tmp/acme.yaml")
        docs = ingest_sources(group_id="docs", source_type="docs")
        approve = None
        if approval:

            @task
            def approve_answers() -> None:
                pass

            approve = approve_answers()
        graded, _written = feedback_loop(config="/tmp/acme.yaml", approval=approve)
        [notes, docs] >> graded
    return dag


def test_two_ingest_groups_and_the_feedback_loop_in_one_dag():
    dag = build(approval=False)
    ids = set(dag.task_ids)
    for group in ("notes", "docs"):
        assert {f"{group}.{t}" for t in ("settings", "select_sources", "extract", "plan", "index", "prune", "report",
                                         "check_complete")} <= ids
    assert {"grade_runs.feedback_settings", "grade_runs.select_runs", "grade_runs.grade",
            "write_back_answers.write_back", "write_back_answers.report", "write_back_answers.check_complete"} <= ids
    write_back = dag.get_task("write_back_answers.write_back")
    # Without approval, write-back runs even when a grade batch failed (revocations are not held up).
    assert str(write_back.trigger_rule) == "TriggerRule.ALL_DONE" and "grade_runs.grade" in write_back.upstream_task_ids
    assert "notes.check_complete" in dag.get_task("grade_runs.feedback_settings").upstream_task_ids


def test_with_approval_write_back_waits_for_it():
    dag = build(approval=True)
    write_back = dag.get_task("write_back_answers.write_back")
    assert str(write_back.trigger_rule) == "TriggerRule.ALL_SUCCESS"
    assert "approve_answers" in write_back.upstream_task_ids
    assert "grade_runs.grade" in dag.get_task("approve_answers").upstream_task_ids


def test_settings_argument_then_param_then_default():
    defaults = {"config": None, "weaviate_conn_id": "weaviate_default", "limit": 1000}
    assert _resolved({"weaviate_conn_id": "kb"}, {"weaviate_conn_id": "other", "limit": 5}, defaults) == {
        "config": None, "weaviate_conn_id": "kb", "limit": 5}
    assert _resolved({}, None, defaults) == defaults
