"""The package's layers, held by a test: the core (documents, chunking, embedding, index, ingest,
grading, feedback, runs, sources, answering) loads no Airflow when imported, so its logic runs and
is tested without a scheduler; only the modules named below as the Airflow layer or as local
operations may. A new module is core unless it is added to one of those lists, with its reason.

The check imports every core module in a fresh interpreter and looks for `airflow` in
sys.modules; a core module importing Airflow at its top (or importing a module that does) fails
it. Deferred imports inside functions (connection lookups through Airflow's secrets backends)
are allowed: they run only when a connection is resolved."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Airflow's side: DAG factories and task bodies, the hook and connections, assets, the page and
# the runs API (served by Airflow's API server), lineage, the CLI that drives DAG runs.
AIRFLOW_LAYER = (
    "ragloop.catalog",
    "ragloop.cli",
    "ragloop.connections",
    "ragloop.dagrun",
    "ragloop.doctor",
    "ragloop.hooks",
    "ragloop.ingest_dag",
    "ragloop.lineage",
    "ragloop.operator",
    "ragloop.provider",
    "ragloop.review_operator",
    "ragloop.runs.events",
    "ragloop.runs_api",
    "ragloop.staging",
    "ragloop.task_groups",
)
# Running things on this machine: the local Weaviate, the cluster, process groups, the ONNX export.
LOCAL_OPERATIONS = (
    "ragloop.cluster",
    "ragloop.localenv",
    "ragloop.onnx_model",
    "ragloop.processes",
    "ragloop.weaviate_local",
)

PROBE = """
import importlib, json, pkgutil, sys
import ragloop
outside = tuple(json.loads(sys.argv[1]))
core, loaders = [], []
for info in pkgutil.walk_packages(ragloop.__path__, prefix="ragloop."):
    if any(info.name == p or info.name.startswith(p + ".") for p in outside):
        continue
    had = "airflow" in sys.modules
    importlib.import_module(info.name)
    core.append(info.name)
    if not had and "airflow" in sys.modules:
        loaders.append(info.name)
print(json.dumps({"core": core, "loaders": loaders}))
"""


def probe(outside: tuple[str, ...]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(outside)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def core_probe() -> dict:
    return probe(AIRFLOW_LAYER + LOCAL_OPERATIONS)


def test_the_core_loads_no_airflow(core_probe):
    assert core_probe["loaders"] == [], "core modules that load Airflow (move them up, or defer the import)"


def test_the_core_is_most_of_the_package(core_probe):
    # The lists above stay short: the layer rule means something only while most code is core.
    names = set(core_probe["core"])
    assert {"ragloop.index.weaviate_index", "ragloop.ingest.plan", "ragloop.grading.writeback", "ragloop.runs.store",
            "ragloop.answer", "ragloop.sources.registry", "ragloop.feedback.boosts"} <= names
    assert len(names) >= 70, len(names)


def test_the_probe_sees_a_module_that_loads_airflow():
    # With the Airflow layer counted as core, the probe must name the first of its modules it
    # imports (after that, Airflow is loaded and no later module can be caught).
    found = probe(LOCAL_OPERATIONS)["loaders"]
    assert len(found) == 1 and found[0].startswith(AIRFLOW_LAYER), found
