"""Where an ingest run's files are: the staging store's folder of this DAG run, and its plan."""

from __future__ import annotations

import logging

from ragloop.config import Config
from ragloop.staging import DagRunRef, mark_finished, remove_old_runs, run_folder, staging_root

log = logging.getLogger(__name__)


def staging_root_of(config: Config):
    return staging_root(config.staging, config.staging_conn_id)


def run_dir(config: Config, dag_run: DagRunRef):
    return run_folder(staging_root_of(config), dag_run)


def plan_path(config: Config, dag_run: DagRunRef):
    """Where a run's plan is: prune and report find it from the DAG run, so XCom carries only
    the list of batches that the index task is mapped over."""
    return run_dir(config, dag_run) / "plan.json"


def finish_staging(config: Config, dag_run: DagRunRef) -> int:
    """Mark the run's staged folder finished and remove older finished runs of the same DAG."""
    root = staging_root_of(config)
    mark_finished(root, dag_run)
    removed = remove_old_runs(root, dag_run)
    if removed:
        log.info("Removed %d staged folders of finished %s runs", removed, dag_run.dag_id)
    return removed
