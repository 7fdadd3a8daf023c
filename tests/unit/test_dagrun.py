"""What the CLI reports of a DAG run that did not succeed."""

from ragloop.airflow.dagrun import DagRunResult


def test_failed_tasks_leave_out_successful_and_skipped_ones():
    result = DagRunResult("d", "r", "failed", task_states={
        "select_runs": "success", "grade[0]": "failed", "grade[1]": "success", "write_back": "upstream_failed",
        "index": "skipped"})
    assert result.failed_tasks == {"grade[0]": "failed", "write_back": "upstream_failed"}
