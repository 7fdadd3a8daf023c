"""Every CLI command ended with `ResourceWarning: unclosed file` on stderr (issue 27): the
duplicate of stdout that keeps it for results was never closed. A real command in a child
process, warnings shown, results still complete on stdout."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.integration


def test_a_command_closes_its_results_stream(airflow_db, tmp_path):
    # PYTHONWARNINGS=default shows every ResourceWarning (they are hidden by default, and some
    # libraries turn them back on, which is how users saw it); tracemalloc says where a leak was opened.
    result = run_cli("runs", "--limit", "1", "--json", env={"PYTHONWARNINGS": "default", "PYTHONTRACEMALLOC": "5",
                                 "AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps(
                                     {"conn_type": "sqlite", "host": str(tmp_path / "runs.db")})}, timeout=300)
    assert "ResourceWarning" not in result.stderr, result.stderr[-3000:]
    assert result.stdout.strip(), result.stderr[-3000:]
    json.loads(result.stdout)  # the whole result reached stdout before the stream was closed


def test_a_failing_command_closes_it_too(airflow_db):
    result = run_cli("runs", "--since", "yesterday", env={"PYTHONWARNINGS": "default"}, timeout=300)
    assert result.returncode == 2 and "--since 'yesterday'" in result.stderr
    assert "ResourceWarning" not in result.stderr, result.stderr[-3000:]
