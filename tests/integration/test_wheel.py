"""ragloop as a user installs it: `uv build` gives a wheel and an sdist; the wheel, installed into
a fresh virtual environment with Airflow 3.3.2 (resolved against requirements.txt, so uv's cache
serves it), works with no repository checkout on the path: Airflow lists the provider, the hook
imports and the `weaviate` type keeps its official hook, the example DAG parses, and the cluster
extra is not installed unless asked for. About a minute and a half on 2 cores, most of it
Airflow's first start in the new environment. Then the example DAG runs from that venv with
`airflow dags test` against the session's Weaviate, ingesting, grading and writing back (the
DAG test took 462 s with the build, on 2 cores at a load average of 28: several sessions)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SAMPLES, weaviate_conn_json

pytestmark = pytest.mark.integration

UV = shutil.which("uv")
QUESTION = "How long does an old SDK key keep working after rotation?"


def run(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@dataclass(frozen=True)
class Installed:
    """The built wheel installed into a fresh venv, and an environment with nothing of the checkout."""

    venv: Path
    python: Path
    env: dict[str, str]
    home: Path
    folder: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    if UV is None:
        pytest.skip("uv is not installed (make uv-bootstrap)")
    tmp_path = tmp_path_factory.mktemp("wheel")
    dist = tmp_path / "dist"
    run(UV, "build", "--quiet", "--out-dir", dist, REPO, cwd=REPO)
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert {"ragloop/airflow/task_groups.py", "ragloop/prompts/groundedness.yaml", "ragloop/data/all-MiniLM-L6-v2/tokenizer.json"} <= set(names)

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
    return Installed(venv, python, env, home, tmp_path)


def test_the_wheel_installs_and_works_in_a_clean_environment(installed):
    venv, python, env, tmp_path = installed.venv, installed.python, installed.env, installed.folder
    providers = run(venv / "bin" / "airflow", "providers", "list", "--output", "json", env=env, cwd=tmp_path).stdout
    listed = {p["package_name"]: p for p in json.loads(providers[providers.index("["):])}
    assert listed["airflow-provider-ragloop"]["version"] == "0.1.0"

    probe = run(python, "-c", PROBE, env=env, cwd=tmp_path).stdout
    result = json.loads(probe.split("RESULT ", 1)[1])
    assert result["ragloop_file"].startswith(str(venv))  # the installed copy, not the checkout
    assert result["weaviate_hook"] == "airflow.providers.weaviate.hooks.weaviate.WeaviateHook"
    assert result["import_errors"] == {} and result["tasks"] >= 14
    assert result["celery"] is False  # the cluster extra is optional: `airflow-provider-ragloop[cluster]`


def test_the_example_dag_runs_from_the_installed_wheel(installed, weaviate_server, weaviate_client, collection_name):
    """The example DAG, run with `airflow dags test` from the clean venv against the session's
    Weaviate: run 1 ingests the sample docs; a question is then asked and voted up with the venv's
    own `ragloop` command; run 2 finds the docs unchanged, grades that run and writes it back.

    `airflow dags test` rather than the scheduler: it is the installed Airflow's own command, runs
    every task body of the DAG (mapped tasks, XComs, the metadata DB) from the installed package,
    and fails here when a task does; the scheduler path (task processes, one run id across DAGs)
    is proven from the checkout by test_showcase.py and test_scheduled_runs.py, and a scheduler
    started in this venv would add minutes for no other code."""
    venv, env, tmp_path = installed.venv, dict(installed.env), installed.folder
    project = tmp_path / "project"
    (project / "include").mkdir(parents=True)
    shutil.copytree(SAMPLES, project / "docs")  # data only: the package comes from the wheel
    config = project / "include" / "sources.yaml"
    config.write_text(yaml.safe_dump({
        "collection": collection_name, "staging": f"file://{project / 'staging'}",
        "sources": [{"id": "samples-docs", "type": "docs", "path": str(project / "docs"),
                     "url_template": "https://docs.fernwood.example/{path}"}],
    }, sort_keys=False))
    env.update({"RAGLOOP_PROJECT_DIR": str(project), "RAGLOOP_CONFIG": str(config),
                "AIRFLOW_CONN_WEAVIATE_DEFAULT": weaviate_conn_json(weaviate_server)})
    airflow, ragloop = venv / "bin" / "airflow", venv / "bin" / "ragloop"
    run(airflow, "db", "migrate", env=env, cwd=project)

    def dag_run(runs_expected: int) -> None:
        run(airflow, "dags", "test", "example_knowledge_base", "-c", json.dumps({"config": str(config)}),
            env=env, cwd=project, timeout=900)
        runs = run(airflow, "dags", "list-runs", "example_knowledge_base", "--output", "json", env=env, cwd=project).stdout
        states = [r["state"] for r in json.loads(runs.strip().splitlines()[-1])]  # log lines come first
        assert states == ["success"] * runs_expected, states

    dag_run(1)
    indexed = {o.properties["doc_id"] for o in weaviate_client.collections.use(collection_name).iterator(return_properties=["doc_id"])}
    assert indexed and all(doc_id.startswith("samples-docs:") for doc_id in indexed)

    asked = json.loads(run(ragloop, "ask", "--json", QUESTION, env=env, cwd=project).stdout)
    run(ragloop, "feedback", asked["run_id"], "up", env=env, cwd=project)
    dag_run(2)
    qa = [o.properties for o in weaviate_client.collections.use(collection_name).iterator(return_properties=["doc_id", "kind"])
          if o.properties["kind"] == "qa"]
    assert qa and all(asked["run_id"] in p["doc_id"] for p in qa), qa


PROBE = """
import importlib.util, json
import ragloop
from ragloop.airflow.hooks.weaviate import RagloopWeaviateHook
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
