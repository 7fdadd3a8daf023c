"""Stored DAG-run reports: every ingest and feedback DAG run's report in the run store's
`ragloop_reports` table (migration 4), where the operator's page and `ragloop report` read it.
XCom and asset-event extras are cleaned up with Airflow's metadata; these rows are not."""

from __future__ import annotations

import logging
from datetime import datetime

from ragloop.errors import ConnectionProblem
from ragloop.runs.connection import RunStoreError
from ragloop.runs.store import RunStore

log = logging.getLogger(__name__)

REPORT_KINDS = ("ingest", "feedback")


def keep_report(kind: str, report: dict) -> str:
    """Store a DAG run's report from its report task, and say where it went. A run store that
    cannot be used (its connection unreadable, the database down) does not fail the task that
    reports it: the report still reaches XCom and the asset event, the task log warns, and the
    report says it was not stored and why (`report_stored`)."""
    try:
        save_report(kind, report)
        return "stored in the run store"
    except (RunStoreError, ConnectionProblem) as err:
        log.warning("The %s report of %s %s was not stored: %s", kind, report.get("dag_id"), report.get("dag_run_id"), err)
        return f"not stored: {err}"


def save_report(kind: str, report: dict, store: RunStore | None = None) -> int:
    """Store one DAG run's report (it names `dag_id` and `dag_run_id`); a report stored again for
    the same DAG run (a retried report task) replaces the earlier one. Returns the row's id."""
    if kind not in REPORT_KINDS:
        raise ValueError(f"report kind must be one of {REPORT_KINDS}, not {kind!r}")
    dag_id, dag_run_id = str(report.get("dag_id") or ""), str(report.get("dag_run_id") or "")
    if not dag_id or not dag_run_id:
        raise ValueError("a stored report names its dag_id and dag_run_id")
    owned = store is None
    store = store or RunStore.default()
    try:
        return store.save_report(kind, dag_id, dag_run_id, report)
    finally:
        if owned:
            store.close()


def list_reports(store: RunStore, kind: str | None = None, since: datetime | None = None, limit: int | None = None) -> list[dict]:
    """Stored reports, newest first: {report_id, kind, dag_id, dag_run_id, created_at, ok, report}."""
    return store.list_reports(kind, since=since, limit=limit)
