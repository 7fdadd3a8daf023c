"""Human review before write-back (issue 25), as users run it: Airflow standalone's scheduler runs
the real feedback DAG (dags/grade_feedback.py) with `review: {apps: [reviewed-app]}` in the config.

Three good answers are recorded and voted up through the runs API: two by `reviewed-app`, one by
another app. The answer of the other app is written back at once; the two wait in Airflow's
Required Actions (the standard provider's HITL task), each showing its question, answer, cited
passage and grades. Through Airflow's REST API (the hitlDetails endpoint) one is approved and one
rejected with a reason; the approval's asset event starts the next feedback run, which writes
the approved answer back. The rejected one stays out, revoked as by hand, with the reason.

Then feedback in retrieval (feedback_ranking on): the API's up votes show as boosts on the cited
chunks; the approved answer's question asked again is served the curated answer, its hit counted;
a chunk hidden through the API is left out of retrieval; a down vote on the hit, through the API,
starts a scheduler-made feedback run that revokes the curated answer."""

from __future__ import annotations

import json
import re
import os
import shutil
import urllib.parse

import pytest
import yaml

from conftest import SAMPLES, run_cli, weaviate_conn_json
from ragloop.local.weaviate_local import free_port
from airflow_helpers import Api, retried_tasks, task_log_tail, wait_for

pytestmark = pytest.mark.integration

GRADE_DAG = "ragloop_grade_feedback"
COLLECTION = "ReviewLoop"
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
STANDALONE_LOG: dict = {}  # the running deployment's log file, for failure messages


@pytest.fixture(scope="module")
def reviewed(weaviate_server, postgres_server, tmp_path_factory):
    """Airflow standalone running the feedback DAG alone, over a config that reviews one app."""
    folder = tmp_path_factory.mktemp("review")
    config = folder / "sources.yaml"
    config.write_text(yaml.safe_dump({
        "collection": COLLECTION, "embedder": "hash", "chunking": {"max_tokens": 256, "overlap_tokens": 32},
        "staging": f"file://{folder / 'staging'}",
        "sources": [{"id": "docs", "type": "docs", "path": str(SAMPLES), "url_template": "https://docs.example/{path}"}],
        "review": {"apps": ["reviewed-app"]},
        # Votes move retrieval and written-back answers are served as curated (off by default).
        "feedback_ranking": {"boosts": True, "curated_answers": True},
    }, sort_keys=False))
    dags = folder / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "grade_feedback.py", dags / "grade_feedback.py")
    runs_db = folder / "runs.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "RAGLOOP_STATE_DIR": str(folder / "state"),
        "RAGLOOP_CONFIG": str(config),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW_CONN_WEAVIATE_DEFAULT": weaviate_conn_json(weaviate_server),
        "AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(runs_db)}),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_server.url("airflow_review"),
        "AIRFLOW__API__PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
    })
    postgres_server.psql('DROP DATABASE IF EXISTS "airflow_review" WITH (FORCE)')
    postgres_server.psql('CREATE DATABASE "airflow_review"')
    started = run_cli("airflow", "start", "--json", "--timeout", "600", env=env, inherit_env=False, timeout=700)
    STANDALONE_LOG["path"] = folder / "state" / "airflow" / "standalone.log"
    try:
        assert started.returncode == 0, started.stderr[-4000:]
        info = json.loads(started.stdout)
        passwords = json.loads((folder / "state" / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        import urllib.request

        request = urllib.request.Request(
            f"{info['url']}/auth/token", data=json.dumps({"username": "admin", "password": passwords["admin"]}).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            token = json.loads(response.read())["access_token"]
        yield Api(info["url"], token), config, runs_db
    finally:
        stopped = run_cli("airflow", "stop", env=env, inherit_env=False, timeout=400)
        assert stopped.returncode == 0, stopped.stderr


def feedback_states(api: Api) -> str:
    """Every feedback run's task states, the review requests and what the triggerer logged about
    them (a review resumes through the triggerer), for a failure message."""
    lines = []
    for detail in api("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails")["hitl_details"]:
        ti = detail["task_instance"]
        lines.append(f"review {ti['task_id']}[{ti['map_index']}] {ti['state']}: response_received={detail['response_received']} "
                     f"chosen={detail.get('chosen_options')}")
    log_file = STANDALONE_LOG.get("path")
    if log_file and log_file.exists():
        lines += [line for line in log_file.read_text(errors="replace").splitlines()
                  if "triggerer" in line.lower() or "hitl" in line.lower()][-40:]
    for run in api("GET", f"/api/v2/dags/{GRADE_DAG}/dagRuns")["dag_runs"]:
        quoted = urllib.parse.quote(run["dag_run_id"], safe="")
        tis = api("GET", f"/api/v2/dags/{GRADE_DAG}/dagRuns/{quoted}/taskInstances?limit=100")["task_instances"]
        lines.append(f"{run['dag_run_id']} {run['state']}: " + ", ".join(f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in tis))
    return "\n".join(lines)


def waited(api: Api, what: str, check, timeout: float):
    def patient_check():
        try:
            return check()
        except OSError:  # the API server slow to answer on a loaded machine: ask again at the next poll
            return None

    try:
        return wait_for(what, patient_check, timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{feedback_states(api)}") from None


def decide(api: Api, run_id: str, choice: str, reason: str, answered: list[int]):
    """One poll of a person deciding the review of `run_id`: answer its request when it waits
    unanswered (again, if Airflow retried the task and asked anew); true once the task is done."""
    details = [d for d in api("GET", f"/api/v2/dags/{GRADE_DAG}/dagRuns/~/hitlDetails")["hitl_details"]
               if f"run `{run_id}`" in d["body"]]
    if not details:
        return None
    detail = max(details, key=lambda d: d["task_instance"]["try_number"])
    ti = detail["task_instance"]
    if ti["state"] == "success":
        return True
    if ti["state"] == "awaiting_input" and not detail["response_received"]:
        path = (f"/api/v2/dags/{GRADE_DAG}/dagRuns/{urllib.parse.quote(ti['dag_run_id'], safe='')}"
                f"/taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails")
        api("PATCH", path, {"chosen_options": [choice], "params_input": {"reason": reason}})
        answered.append(ti["try_number"])
    return None


# The scheduler's message for it, whichever state the task had moved on to (queued or scheduled
# after the trigger fired, or running its resumed try).
STALE_SUCCESS = re.compile(r"review_answer \S+ map_index=(\d+) \[(?:queued|scheduled|running)\].*finished with state "
                           r"success, but the task instance's state attribute is (?:queued|scheduled|running)")


def stale_success_races(folder) -> set[int]:
    """The review tasks (map indexes) Airflow's scheduler failed on its stale defer-exit race."""
    log_file = folder / "state" / "airflow" / "standalone.log"
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    return {int(m.group(1)) for m in STALE_SUCCESS.finditer(text)}


def unexplained_retries(api: Api, dag_run_id: str, folder) -> list[str]:
    """The retried tasks of a feedback run, less review tasks retried by Airflow's known race."""
    raced = stale_success_races(folder)
    return [line for line in retried_tasks(api, GRADE_DAG, dag_run_id)
            if not any(f"review_answer[{index}]:" in line for index in raced)]


def quoted_answers(client, count: int) -> list[dict]:
    """`count` runs, each quoting a sentence of a different sample-docs chunk (graded good offline),
    with the chunk as `ask` records it."""
    from ragloop.answer import passage_text, prose_sentences
    from ragloop.passages import Passage

    runs, seen_docs = [], set()
    for chunk in client.collections.use(COLLECTION).query.fetch_objects(limit=200).objects:
        p = chunk.properties
        if p["doc_id"] in seen_docs or p["kind"] != "docs":
            continue
        passage = passage_text(Passage(p["doc_id"], p["source_id"], p["kind"], p["title"], p["url"], p["heading_path"],
                                       p["text"], 0.9, str(chunk.uuid)))
        sentences = [s.strip().rstrip(".") for s in prose_sentences(passage) if 8 <= len(s.split()) <= 40]
        if not sentences:
            continue
        seen_docs.add(p["doc_id"])
        runs.append({
            "question": f"{sentences[0]}?", "answer": f"{sentences[0]} [1].",
            "sources": [{"doc_id": p["doc_id"], "chunk_id": str(chunk.uuid), "title": p["title"], "url": p["url"],
                         "kind": p["kind"], "visibility": p.get("visibility") or "", "text": passage}],
        })
        if len(runs) == count:
            assert len({r["question"] for r in runs}) == count
            return runs
    raise AssertionError(f"fewer than {count} sample docs with a quotable sentence")


@pytest.mark.timeout(2400)  # Airflow standalone starts in minutes on a loaded machine; three feedback runs follow
def test_reviewers_approve_and_reject_answers_in_airflow_then_votes_move_retrieval_and_curated_answers(reviewed, weaviate_client):
    from ragloop.answer import ask
    from ragloop.index import read_indexed_documents
    from ragloop.ingest import ingest
    from ragloop.runs import RunRecorder

    api, config, runs_db = reviewed
    report = ingest("review-test", str(config))
    assert report["sources"]["docs"]["documents"]["failed"] == 0
    wait_for("the DAG processor to parse the feedback DAG",
             lambda: GRADE_DAG in {d["dag_id"] for d in api("GET", "/api/v2/dags?dag_id_pattern=ragloop")["dags"]}, timeout=180)

    # The three runs, each with its up vote, recorded while the DAG is paused, then one run triggered:
    # one DAG run sees all three (a run that saw only some would hold the others' reviews back
    # behind its own, max_active_runs=1).
    approve, reject, unreviewed = quoted_answers(weaviate_client, 3)
    ids = {}
    for name, run, app in (("approve", approve, "reviewed-app"), ("reject", reject, "reviewed-app"),
                           ("unreviewed", unreviewed, "support-widget")):
        ids[name] = api("POST", "/ragloop/runs", {**run, "app": app})["run_id"]
        api("POST", f"/ragloop/runs/{ids[name]}/feedback", {"vote": "up", "user_id": "u1"})
    api("PATCH", f"/api/v2/dags/{GRADE_DAG}", {"is_paused": False})
    api("POST", f"/api/v2/dags/{GRADE_DAG}/dagRuns", {"logical_date": None})

    def writeback(name: str) -> dict:
        return api("GET", f"/ragloop/runs/{ids[name]}").get("writeback") or {}

    # The answer of the app nobody reviews goes straight through; the two others wait for a person.
    def pending_reviews():
        details = api("GET", f"/api/v2/dags/{GRADE_DAG}/dagRuns/~/hitlDetails")["hitl_details"]
        # Answered only once both tasks are parked: a response to a task still starting is lost
        # when its execute() writes the request again.
        waiting = [d for d in details if not d["response_received"] and d["task_instance"]["state"] == "awaiting_input"]
        return waiting if len(waiting) == 2 else None

    waiting = waited(api, "two answers waiting for review in Required Actions", pending_reviews, timeout=600)
    waited(api, "the unreviewed app's answer to be written back", lambda: writeback("unreviewed").get("state") == "written",
           timeout=600)
    by_run = {}
    for detail in waiting:
        run_id = next(i for i in ids.values() if f"run `{i}`" in detail["body"])
        by_run[run_id] = detail
    assert set(by_run) == {ids["approve"], ids["reject"]}, [d["subject"] for d in waiting]
    for name in ("approve", "reject"):
        body = by_run[ids[name]]["body"]
        run = {"approve": approve, "reject": reject}[name]
        assert run["question"] in body and run["answer"] in body, body
        assert run["sources"][0]["text"].splitlines()[0].strip() in body, body  # the cited passage
        assert "**Grades**" in body and "helpfulness@" in body, body
        assert by_run[ids[name]]["options"] == ["Approve", "Reject"]
        assert writeback(name) == {}, name  # nothing written while it waits
    qa = read_indexed_documents(weaviate_client, COLLECTION, {"qa"})
    assert f"qa:{ids['unreviewed']}" in qa and f"qa:{ids['approve']}" not in qa and f"qa:{ids['reject']}" not in qa

    answered: dict[str, list[int]] = {"approve": [], "reject": []}  # the tries each decision was given to
    for name, choice, reason in (("approve", "Approve", "checked against the docs"),
                                 ("reject", "Reject", "wrong tone for customers")):
        waited(api, f"the {name} decision to be taken by its review task",
               lambda name=name, choice=choice, reason=reason: decide(api, ids[name], choice, reason, answered[name]),
               timeout=600)
    # A person answers a request once; it is asked again only when Airflow itself retried the task
    # (the scheduler's stale defer-exit race, apache/airflow#67287, #71580 and #72716: it logs
    # "finished with state success, but the task instance's state attribute is queued" (or
    # running) and fails a task that did nothing wrong). Anything else asking twice fails here.
    raced = stale_success_races(runs_db.parent)
    for name, tries in answered.items():
        if len(tries) > 1:
            map_index = by_run[ids[name]]["task_instance"]["map_index"]
            assert map_index in raced, (f"the {name} review was asked {len(tries)} times (tries {tries}) "
                                        f"without Airflow's stale-success race logged for it; raced: {raced}")

    # The approval's asset event starts the next feedback run: it writes the approved answer back.
    waited(api, "the approved answer to be written back", lambda: writeback("approve").get("state") == "written", timeout=600)

    def all_runs_ended():
        runs = api("GET", f"/api/v2/dags/{GRADE_DAG}/dagRuns")["dag_runs"]
        return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None

    for run in waited(api, "the feedback runs to end", all_runs_ended, timeout=600):
        assert run["state"] == "success", f"{run['dag_run_id']}: {task_log_tail(api, GRADE_DAG, run['dag_run_id'])}"
        assert unexplained_retries(api, run["dag_run_id"], runs_db.parent) == []

    rejected = api("GET", f"/ragloop/runs/{ids['reject']}")
    assert rejected["writeback"]["state"] == "revoked_by_hand", rejected["writeback"]
    assert "rejected in review by admin: wrong tone for customers" in rejected["writeback"]["revoke_reason"]
    reviews = {name: [g for g in api("GET", f"/ragloop/runs/{ids[name]}")["grades"] if g["criterion"] == "human_review"]
               for name in ("approve", "reject", "unreviewed")}
    assert [(g["passed"], g["judge"], g["reason"]) for g in reviews["approve"]] == [(True, "human:admin", "checked against the docs")]
    assert [(g["passed"], g["judge"]) for g in reviews["reject"]] == [(False, "human:admin")]
    assert reviews["unreviewed"] == []
    qa = read_indexed_documents(weaviate_client, COLLECTION, {"qa"})
    assert f"qa:{ids['approve']}" in qa and f"qa:{ids['unreviewed']}" in qa
    assert f"qa:{ids['reject']}" not in qa
    # Decided answers are not proposed again.
    details = api("GET", f"/api/v2/dags/{GRADE_DAG}/dagRuns/~/hitlDetails")["hitl_details"]
    latest = {}
    for detail in sorted(details, key=lambda d: d["task_instance"]["try_number"]):
        latest[(detail["task_instance"]["dag_run_id"], detail["task_instance"]["map_index"])] = detail
    assert len(latest) == 2 and all(d["response_received"] for d in latest.values()), details

    # Feedback in retrieval, through the runs API and the scheduler. The up votes posted through
    # the API moved the chunks the three answers cited (boosts are read at query time).
    boosted = {r["chunk_id"]: r for r in api("GET", "/ragloop/boosts")["boosted"]}
    for run in (approve, reject, unreviewed):
        chunk = boosted.get(run["sources"][0]["chunk_id"])
        assert chunk is not None and chunk["up"] == 1 and chunk["multiplier"] > 1, (run["sources"][0], boosted)
    # The approved answer's question asked again is answered by it, curated, the hit recorded.
    store_url = f"sqlite:///{runs_db}"
    with RunRecorder(app="support-widget", store_url=store_url):
        hit = ask(approve["question"], config_path=str(config))
    assert hit.mode == "curated" and hit.run_id and hit.text == approve["answer"], (hit.mode, hit.text)
    assert hit.curated is not None and hit.curated["run_id"] == ids["approve"], hit.curated
    curated = {c["run_id"]: c for c in api("GET", "/ragloop/curated")["curated"]}
    assert curated[ids["approve"]]["hits"] == 1, curated
    # An operator hides the rejected answer's passage: retrieval leaves it out, though it matches best.
    hidden_chunk = reject["sources"][0]["chunk_id"]
    api("POST", f"/ragloop/chunks/{hidden_chunk}/actions", {"action": "hide", "reason": "outdated page"})
    with RunRecorder(app="support-widget", store_url=store_url):
        answered = ask(reject["question"], config_path=str(config))
    assert answered.mode != "curated" and hidden_chunk not in {s.chunk_id for s in answered.sources}, answered.sources
    # The voter of the approved answer votes its curated hit down: the vote reaches the curated
    # answer, its event starts a feedback run, and that run revokes the answer from the index.
    api("POST", f"/ragloop/runs/{hit.run_id}/feedback", {"vote": "down", "user_id": "u1", "comment": "outdated now"})
    waited(api, "the curated answer to be revoked after a down vote on its hit",
           lambda: writeback("approve").get("state") == "revoked", timeout=600)
    assert "down vote by" in writeback("approve").get("revoke_reason", ""), writeback("approve")
    assert f"qa:{ids['approve']}" not in read_indexed_documents(weaviate_client, COLLECTION, {"qa"})
    curated = {c["run_id"]: c for c in api("GET", "/ragloop/curated")["curated"]}
    assert (curated[ids["approve"]]["state"], curated[ids["approve"]]["hits"]) == ("revoked", 1), curated
    with RunRecorder(app="support-widget", store_url=store_url):
        assert ask(approve["question"], config_path=str(config)).mode != "curated"  # served no more
    for run in waited(api, "the feedback runs to end", all_runs_ended, timeout=600):
        assert run["state"] == "success", f"{run['dag_run_id']}: {task_log_tail(api, GRADE_DAG, run['dag_run_id'])}"
        assert unexplained_retries(api, run["dag_run_id"], runs_db.parent) == []
