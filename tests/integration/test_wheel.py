"""ragloop as a user installs it: `uv build` gives a wheel and an sdist; the wheel, installed into
a fresh virtual environment with Airflow 3.3.2 (resolved against requirements.txt, so uv's cache
serves it), works with no repository checkout on the path: Airflow lists the provider, the hook
imports and the `weaviate` type keeps its official hook, the example DAG parses, and the cluster
extra is not installed unless asked for. About a minute and a half on 2 cores, most of it
Airflow's first start in the new environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile

import pytest

from conftest import REPO

pytestmark = pytest.mark.integration

UV = shutil.which("uv")


def run(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.skipif(UV is None, reason="uv is not installed (make uv-bootstrap)")
def test_the_wheel_installs_and_works_in_a_clean_environment(tmp_path):
    dist = tmp_path / "dist"
    run(UV, "build", "--quiet", "--out-dir", dist, REPO, cwd=REPO)
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert {"ragloop/task_groups.py", "ragloop/prompts/groundedness.yaml", "ragloop/data/all-MiniLM-L6-v2/tokenizer.json"} <= set(names)

    venv = tmp_path / "venv"
    run(UV, "venv", "--quiet", "--python", "3.11", venv)
    python = venv / "bin" / "python"
    run(UV, "pip", "install", "--quiet", "--python", python, "-c", REPO / "requirements.txt", wheels[0])

    home, dags = tmp_path / "home", tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "examples" / "example_knowledge_base.py", dags)
    # Nothing of the checkout: no PYTHONPATH, no RAGLOOP_* pointing into it, another working folder.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AIRFLOW", "RAGLOOP", "PYTHON", "VIRTUAL_ENV"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})

    providers = run(venv / "bin" / "airflow", "providers", "list", "--output", "json", env=env, cwd=tmp_path).stdout
    listed = {p["package_name"]: p for p in json.loads(providers[providers.index("["):])}
    assert listed["airflow-provider-ragloop"]["version"] == "0.1.0"

    probe = run(python, "-c", PROBE, env=env, cwd=tmp_path).stdout
    result = json.loads(probe.split("RESULT ", 1)[1])
    assert result["ragloop_file"].startswith(str(venv))  # the installed copy, not the checkout
    assert result["weaviate_hook"] == "airflow.providers.weaviate.hooks.weaviate.WeaviateHook"
    assert result["import_errors"] == {} and result["tasks"] >= 14
    assert result["celery"] is False  # the cluster extra is optional: `airflow-provider-ragloop[cluster]`


PROBE = """
import importlib.util, json
import ragloop
from ragloop.hooks.weaviate import RagloopWeaviateHook
from airflow.providers_manager import ProvidersManager
from airflow.dag_processing.dagbag import DagBag
from airflow.configuration import conf
bag = DagBag(dag_folder=conf.get("core", "dags_folder"))
print("RESULT " + json.dumps({
    "ragloop_file": ragloop.__file__,
    "weaviate_hook": ProvidersManager().hooks["weaviate"].hook_class_name,
    "import_errors": bag.import_errors,
    "tasks": len(bag.dags["example_knowledge_base"].tasks) if "example_knowledge_base" in bag.dags else 0,
    "celery": importlib.util.find_spec("celery") is not None,
}))
"""
