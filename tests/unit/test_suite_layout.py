"""The two-worker layout of `make test` (tests/conftest.py): xdist's per-file scheduling, with the
modules that start a multi-process Airflow as one unit of work, handed out first."""

from __future__ import annotations

from pathlib import Path

import conftest
from conftest import AIRFLOW_DEPLOYMENTS, AIRFLOW_DEPLOYMENTS_UNIT, REPO


class FakeConfig:
    """The two settings the scheduler hook and xdist's per-file scheduler read (`-n 2` is
    `--tx 2*popen` to xdist)."""

    def getvalue(self, name):
        return {"dist": "loadfile", "tx": ["2*popen"]}[name]


def test_the_deployment_modules_exist_and_share_one_unit_every_other_module_is_its_own():
    assert AIRFLOW_DEPLOYMENTS, "no deployment modules listed"
    for module in AIRFLOW_DEPLOYMENTS:
        assert (REPO / module).is_file(), f"{module} is listed in conftest.AIRFLOW_DEPLOYMENTS but does not exist"
    scheduler = conftest.pytest_xdist_make_scheduler(FakeConfig(), log=None)
    assert scheduler is not None, "the scheduler hook does not answer --dist loadfile"
    units = {module: scheduler._split_scope(f"{module}::test_x[a]") for module in AIRFLOW_DEPLOYMENTS}
    assert set(units.values()) == {AIRFLOW_DEPLOYMENTS_UNIT}, units
    for module in ("tests/integration/test_runs_api.py", "tests/unit/test_links.py"):
        assert scheduler._split_scope(f"{module}::test_y") == module


def test_other_distribution_modes_keep_xdist_s_own_scheduler():
    class Load(FakeConfig):
        def getvalue(self, name):
            return "load" if name == "dist" else super().getvalue(name)

    assert conftest.pytest_xdist_make_scheduler(Load(), log=None) is None


# How a test module starts a multi-process Airflow: `ragloop airflow start` (standalone) through
# run_cli, airflow_helpers.standalone_airflow, or the Celery cluster's workers.
STARTS_A_DEPLOYMENT = ('run_cli("airflow", "start"', "standalone_airflow(", "celery_cluster(", '"celery", "worker"')


def test_every_module_that_starts_an_airflow_deployment_is_in_the_deployment_unit():
    starting = {
        str(path.relative_to(REPO))
        for path in (REPO / "tests").rglob("test_*.py")
        if path.name != Path(__file__).name and any(marker in path.read_text(encoding="utf-8") for marker in STARTS_A_DEPLOYMENT)
    }
    assert starting, "no module found starting a deployment: the markers are stale"
    missing = sorted(starting - AIRFLOW_DEPLOYMENTS)
    assert not missing, f"these modules start an Airflow deployment but are not in conftest.AIRFLOW_DEPLOYMENTS: {missing}"
