"""The showcase: a DAG written only against ragloop's public surface (`ragloop.airflow.task_groups`), in a
temporary project outside `include/ragloop` that also defines a source of its own
(`acme_kb.notes:NotesSource`, see custom_source_project.py). Airflow standalone's scheduler runs
it, every task in a process of its own: it ingests the custom source and the sample docs in two
task groups, then grades the recorded runs and writes the good answers back.

Run 1 fills the collection (nothing to grade yet). A run is then recorded with `ask` and voted up;
run 2 finds every document unchanged, grades that run and writes it back."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import urllib.parse

import pytest
import yaml

from airflow_helpers import Api, standalone_airflow, standalone_ports, task_log_tail, wait_for, xcom
from conftest import SAMPLES, weaviate_conn_json
from custom_source_project import NOTES, write_project

pytestmark = pytest.mark.integration

DAG_ID = "acme_knowledge_base"
COLLECTION = "AcmeShowcase"
QUESTION = "How long does an old SDK key keep working after rotation?"

DAG_FILE = textwrap.dedent(
    '''
    """Acme's knowledge base: its team notes (a source of its own) and the product docs, then the
    feedback loop. Only ragloop's public surface is used."""

    from datetime import datetime, timedelta

    from airflow.sdk import dag

    from ragloop.airflow.task_groups import feedback_loop, ingest_sources

    CONFIG = {config!r}


    @dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["acme"],
         default_args={{"retries": 2, "retry_delay": timedelta(seconds=5)}})
    def acme_knowledge_base():
        notes = ingest_sources(group_id="notes", source_type="acme_kb.notes:NotesSource", config=CONFIG)
        docs = ingest_sources(group_id="docs", source_type="docs", config=CONFIG)
        graded, _ = feedback_loop(config=CONFIG)
        [notes, docs] >> graded


    acme_knowledge_base()
    '''
)


@pytest.fixture(scope="module")
def acme(weaviate_server, tmp_path_factory):
    """The temp project, its DAG folder, and Airflow standalone running that folder."""
    folder = tmp_path_factory.mktemp("acme")
    project = write_project(folder / "project")
    config = folder / "sources.yaml"
    config.write_text(yaml.safe_dump({
        "collection": COLLECTION, "embedder": "local", "chunking": {"max_tokens": 256, "overlap_tokens": 32},
        "staging": f"file://{folder / 'staging'}",
        "sources": [
            {"id": "team-notes", "type": "acme_kb.notes:NotesSource", "path": str(project / "notes.jsonl")},
            {"id": "docs", "type": "docs", "path": str(SAMPLES), "url_template": "https://docs.example/{path}"},
        ],
    }, sort_keys=False))
    dags = folder / "dags"
    dags.mkdir()
    (dags / "acme_knowledge_base.py").write_text(DAG_FILE.format(config=str(config)))
    runs_db = folder / "runs.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "RAGLOOP_STATE_DIR": str(folder / "state"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "PYTHONPATH": str(project),  # the project's own package, beside ragloop
        "AIRFLOW_CONN_WEAVIATE_DEFAULT": weaviate_conn_json(weaviate_server),
        "AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(runs_db)}),
        **standalone_ports(),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # A loaded 2-core machine (other suites beside this one) answers the execution API slowly.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        # OpenLineage events of every task, through the provider's file transport, one JSON a line.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(folder / "lineage.jsonl"),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "acme",
    })
    with standalone_airflow(env, folder / "state", timeout=540) as api:
        # This process asks the knowledge base too (`ask` checks the whole sources.yaml): it
        # imports the project's source as the workers do.
        sys.path.insert(0, str(project))
        try:
            yield api, config, runs_db, folder / "lineage.jsonl"
        finally:
            sys.path.remove(str(project))


def trigger_and_wait(api: Api) -> str:
    run_id = api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None})["dag_run_id"]
    quoted = urllib.parse.quote(run_id, safe="")

    def ended():
        try:
            state = api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}")["state"]
        except OSError:  # the API server slow to answer under load: ask again
            return None
        return state if state in ("success", "failed") else None

    state = wait_for(f"{DAG_ID} run {run_id} to end", ended, timeout=900)
    assert state == "success", task_log_tail(api, DAG_ID, run_id)
    return run_id


def test_a_dag_of_ones_own_ingests_a_custom_source_grades_and_writes_back(acme, weaviate_client, weaviate_server):
    def weaviate_server_port() -> int:
        return weaviate_server.http_port

    from ragloop.answer import ask
    from ragloop.runs import RunRecorder, RunStore, VoteIn

    api, config, runs_db, lineage = acme
    wait_for("the DAG processor to parse the project's DAG",
             lambda: any(d["dag_id"] == DAG_ID for d in api("GET", f"/api/v2/dags?dag_id_pattern={DAG_ID}")["dags"]),
             timeout=180)
    api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

    first = trigger_and_wait(api)
    notes = xcom(api, DAG_ID, first, "notes.report")
    assert set(notes["sources"]) == {"team-notes"} and notes["sources"]["team-notes"]["documents"]["new"] == len(NOTES)
    docs = xcom(api, DAG_ID, first, "docs.report")
    assert set(docs["sources"]) == {"docs"} and docs["sources"]["docs"]["documents"]["new"] > 10
    assert xcom(api, DAG_ID, first, "write_back_answers.report")["selected"] == 0

    with RunStore(f"sqlite:///{runs_db}") as store:
        with RunRecorder(app="showcase", store=store):
            run_id = ask(QUESTION, config_path=str(config)).run_id
        store.add_vote(run_id, VoteIn(vote="up", user_id="acme-1", comment="clear"))

    second = trigger_and_wait(api)
    assert xcom(api, DAG_ID, second, "notes.report")["sources"]["team-notes"]["documents"]["unchanged"] == len(NOTES)
    feedback = xcom(api, DAG_ID, second, "write_back_answers.report")
    assert (feedback["selected"], feedback["graded"], feedback["write_back"]["written"]) == (1, 1, 1), feedback

    from ragloop.index import read_indexed_documents

    indexed = read_indexed_documents(weaviate_client, COLLECTION, None)
    assert {f"team-notes:{n['id']}" for n in NOTES} <= set(indexed) and f"qa:{run_id}" in indexed

    # OpenLineage: the extract tasks name their source's data and the collection; write-back the
    # run store and the collection. Captured from the scheduler's task processes.
    collection = (f"weaviate://127.0.0.1:{weaviate_server_port()}", COLLECTION)
    datasets = lineage_datasets(lineage)
    assert collection in datasets["notes.extract"]["outputs"] and collection in datasets["docs.extract"]["outputs"], datasets
    # NotesSource declares no lineage_uris(): it is named by its source id (docs/custom-sources.md).
    assert ("ragloop://source", "team-notes") in datasets["notes.extract"]["inputs"], datasets["notes.extract"]
    assert any(name.endswith("samples/docs") for _, name in datasets["docs.extract"]["inputs"]), datasets["docs.extract"]
    assert collection in datasets["write_back_answers.write_back"]["outputs"], datasets
    assert any(name.endswith("runs.db") for _, name in datasets["write_back_answers.write_back"]["inputs"]), datasets


def lineage_datasets(path) -> dict[str, dict[str, set[tuple[str, str]]]]:
    """task id -> the (namespace, name) of the inputs and outputs of its COMPLETE events."""
    found: dict[str, dict[str, set[tuple[str, str]]]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("eventType") != "COMPLETE" or not event["job"]["name"].startswith(DAG_ID + "."):
            continue
        task_id = event["job"]["name"][len(DAG_ID) + 1:]
        entry = found.setdefault(task_id, {"inputs": set(), "outputs": set()})
        for side in ("inputs", "outputs"):
            entry[side].update((d["namespace"], d["name"]) for d in event.get(side) or [])
    return found
