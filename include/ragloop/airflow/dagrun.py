"""Run a ragloop DAG in this process through Airflow's `dag.test()`: the CLI's path to the same
DAGs the scheduler runs (one code path, not two)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ragloop.errors import RagloopError


class DagRunFailed(RagloopError):
    pass


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str] = field(default_factory=dict)
    # Return value of each task; mapped tasks give a list in map-index order.
    returns: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_tasks(self) -> dict[str, str]:
        """Tasks that neither succeeded nor were skipped, with their state."""
        return {task: state for task, state in self.task_states.items() if state not in ("success", "skipped")}


def load_dag(dag_id: str):
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    folder = Path(conf.get("core", "dags_folder"))
    bag = DagBag(dag_folder=str(folder))
    if bag.import_errors:
        details = "\n".join(f"{path}: {error.strip().splitlines()[-1]}" for path, error in bag.import_errors.items())
        raise DagRunFailed(f"DAG files under {folder} failed to import:\n{details}")
    if dag_id not in bag.dags:
        raise DagRunFailed(f"No DAG {dag_id!r} under {folder} (found: {', '.join(sorted(bag.dags))})")
    return bag.dags[dag_id]


def run_dag(dag_id: str, conf: dict | None = None, raise_on_failure: bool = True, retries: int | None = None) -> DagRunResult:
    """`retries=0` makes a failing task fail the run at once: someone at a terminal wants the
    error now, not after the scheduler's backoff (dag.test() waits out retry delays)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = load_dag(dag_id)
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
    dagrun = dag.test(run_conf=conf or {})
    result = DagRunResult(dag_id=dag_id, run_id=dagrun.run_id, state=str(dagrun.state))
    with create_session() as session:
        for ti in dagrun.get_task_instances(session=session):
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            result.task_states[key] = str(ti.state)
        query = XComModel.get_many(run_id=dagrun.run_id, dag_ids=dag_id, key="return_value")
        rows = cast("list[XComModel]", session.scalars(query).all())  # the select's rows are XComModels
        for row in sorted(rows, key=lambda r: (r.task_id, r.map_index)):
            value = XComModel.deserialize_value(row)
            if row.map_index >= 0:
                result.returns.setdefault(row.task_id, []).append(value)
            else:
                result.returns[row.task_id] = value
    if raise_on_failure and result.state != "success":
        failed = {task: state for task, state in result.task_states.items() if state != "success"}
        raise DagRunFailed(f"DAG {dag_id} run {result.run_id} ended {result.state}; tasks not successful: {failed}")
    return result
