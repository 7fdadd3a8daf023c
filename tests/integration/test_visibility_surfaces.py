"""Issue 22: every surface shows a viewer only the runs of their audience, and renders only safe
links. The runs API, the operator's page (its HTML, data.json and gaps.csv) under Airflow's real
auth manager, and `ragloop report`, `ragloop gaps` and `ragloop runs` as child processes, over a
real Weaviate (hash embedder), a real SQLite run store and one answer written back by the real
write-back. Two runs retrieved an internal Slack thread (questions and titles marked `zq`): a
public viewer sees neither them, their titles, nor their count.

The recorded sources also carry a `javascript:` URL (a docs source whose url_template is one: the
index holds it) and a retrieved-but-uncited source: the page shows neither as a link, and shows
the URL the answer published, not the uncited one."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, UTC

import pytest
import yaml

from conftest import copy_samples, run_cli
from ragloop.runs import RunIn, RunStore, VoteIn

pytestmark = pytest.mark.integration

MARK = "zq"  # in every internal question, answer and title: found anywhere, an internal run leaked
EVIL_URL = "javascript:alert(document.domain)//"
UNCITED_URL = "https://uncited.example/retrieved-not-cited"
DOC = "api/authentication-tokens.md"


def store_env(path) -> dict:
    return {"AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(path)})}


def chunk_of(client, collection: str, doc_id: str) -> dict:
    from weaviate.classes.query import Filter

    from ragloop.answer import passage_text
    from ragloop.passages import Passage

    found = client.collections.use(collection).query.fetch_objects(filters=Filter.by_property("doc_id").equal(doc_id), limit=1)
    chunk = found.objects[0]
    p = chunk.properties
    hit = Passage(p["doc_id"], p["source_id"], p["kind"], p["title"], p["url"], p["heading_path"], p["text"], 0.9, str(chunk.uuid))
    return {"doc_id": hit.doc_id, "chunk_id": hit.chunk_id, "title": hit.title, "url": hit.url, "kind": hit.kind,
            "text": passage_text(hit), "visibility": "public"}


@pytest.fixture(scope="module")
def world(tmp_path_factory, weaviate_server, airflow_db):
    from ragloop.answer import prose_sentences
    from ragloop.config import load_config
    from ragloop.grading import write_back
    from ragloop.grading.choice import criterion_versions
    from ragloop.index import connect
    from ragloop.ingest import ingest
    from ragloop.staging import DagRunRef

    folder = tmp_path_factory.mktemp("surfaces")
    docs = copy_samples(folder)
    collection = "VisibilitySurfaces"
    config = folder / "sources.yaml"
    config.write_text(yaml.safe_dump({
        "collection": collection, "embedder": "hash", "staging": f"file://{folder / 'staging'}",
        "sources": [
            {"id": "docs", "type": "docs", "path": str(docs), "url_template": "https://docs.example/{path}"},
            {"id": "evil", "type": "docs", "path": str(docs), "url_template": EVIL_URL + "{path}"},
        ]}))
    report = ingest("surfaces-docs", str(config))
    assert all(s["documents"]["failed"] == 0 for s in report["sources"].values()), report
    runs_db = folder / "runs.db"
    previous = os.environ.get("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT")
    os.environ.update(store_env(runs_db))
    store = RunStore(f"sqlite:///{runs_db}")
    try:
        with connect() as client:
            good, evil = chunk_of(client, collection, f"docs:{DOC}"), chunk_of(client, collection, f"evil:{DOC}")
        sentence = next(s for s in prose_sentences(good["text"]) if len(s.split()) >= 6).strip().rstrip(".")
        uncited = {"doc_id": "docs:faq.md", "title": "Retrieved, not cited", "url": UNCITED_URL, "text": "x", "visibility": "public"}
        slack = {"doc_id": "slack:C1/1.0", "chunk_id": "", "kind": "slack", "visibility": "internal",
                 "title": f"{MARK}-title staging thread", "url": f"https://chat.example/{MARK}", "text": f"{MARK} the password rotates"}
        start = datetime.now(UTC) - timedelta(minutes=10)
        ids = {}
        for minute, (name, run) in enumerate([
            ("published", RunIn(question="How long do old SDK keys keep working?", answer=f"{sentence} [1] [2].",
                                sources=[good, evil, uncited], votes=[VoteIn(vote="up", user_id="u1")])),
            ("public", RunIn(question="How do I rotate SDK keys safely?", answer=f"{sentence} [1].", sources=[good])),
            ("internal", RunIn(question=f"{MARK}-question: when does the staging password rotate?",
                               answer=f"{MARK}-answer: on Fridays [1].", sources=[slack])),
            ("internal_newest", RunIn(question=f"{MARK}-question: who holds the staging credentials?",
                                      answer=f"{MARK}-answer: the on-call [1].", sources=[good, slack])),
        ]):
            ids[name] = store.record_run(run.model_copy(update={"created_at": start + timedelta(minutes=minute)}))[0]
        versions = criterion_versions(load_config(str(config)))
        store.record_grades(ids["published"], [
            {"criterion": c, "criterion_version": v, "judge": "test", "score": 1.0, "passed": True, "reason": "test",
             "veto": None, "tokens": None} for c, v in versions.items()], datetime.now(UTC))
        written = write_back(DagRunRef("surfaces", "write-back"), str(config))
        assert written["written"] == 1, written
        yield {"config": str(config), "store": store, "runs_db": runs_db, "ids": ids}
    finally:
        store.close()
        if previous is None:
            os.environ.pop("AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT"] = previous


def bearer(auth_manager, role: str) -> dict:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {"authorization": f"Bearer {auth_manager.generate_jwt(SimpleAuthManagerUser(username=f'{role}-user', role=role))}"}


def test_the_runs_api_lists_a_viewers_runs_and_refuses_votes_on_runs_they_cannot_see(world, auth_manager, monkeypatch, drill):
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from fastapi.testclient import TestClient

    from ragloop.airflow.runs_api import create_app

    store, ids = world["store"], world["ids"]
    viewer = bearer(auth_manager, "viewer")
    with TestClient(create_app(lambda: store), base_url="http://127.0.0.1") as api:
        # The newest run is internal: a viewer's newest run is the newest public one, not none.
        newest = api.get("/runs", params={"limit": 1}, headers=viewer).json()["runs"]
        assert [r["run_id"] for r in newest] == [ids["public"]]
        # A role that may record runs (create asset events) but not read internal content, as FAB or
        # Keycloak may grant: the simple auth manager gives recording only to op and admin, who see
        # everything, so its viewer role is granted recording here.
        real = SimpleAuthManager.is_authorized_asset
        monkeypatch.setattr(SimpleAuthManager, "is_authorized_asset",
                            lambda self, *, method, user, details=None: user.role.upper() == "VIEWER" or real(
                                self, method=method, user=user, details=details))
        vote = api.post(f"/runs/{ids['internal']}/feedback", json={"vote": "down", "comment": "revoke it"}, headers=viewer)
        drill("API: a writer without internal access down-votes an internal run", "404", str(vote.status_code))
        assert vote.status_code == 404, vote.text
        assert store.get_run(ids["internal"])["votes"] == []
        assert api.post(f"/runs/{ids['public']}/feedback", json={"vote": "up"}, headers=viewer).status_code == 201


def test_the_page_data_json_and_gaps_csv_show_a_viewer_only_public_runs_and_safe_links(world, auth_manager, drill):
    from fastapi.testclient import TestClient

    from ragloop.airflow.operator.app import create_ui_app

    store = world["store"]
    with TestClient(create_ui_app(world["config"], lambda: store), base_url="http://127.0.0.1") as page:
        seen = {}
        for role in ("viewer", "op"):
            headers = bearer(auth_manager, role)
            html, data, gaps = (page.get(path, headers=headers) for path in ("/", "/data.json", "/gaps.csv"))
            assert html.status_code == data.status_code == gaps.status_code == 200, (html.text[:500], data.text[:500])
            seen[role] = {"html": html.text, "data": data.json(), "data_text": data.text, "csv": gaps.text}
    viewer, op = seen["viewer"], seen["op"]
    leaks = [name for name in ("html", "data_text", "csv") if MARK in viewer[name]]
    drill("page, data.json, gaps.csv: a public viewer and internal runs' questions/titles", "shown nowhere",
          f"shown in {', '.join(leaks)}" if leaks else "shown nowhere")
    assert not leaks
    assert viewer["data"]["feedback"]["runs"] == 2 and viewer["data"]["gaps"]["runs"] == 2
    assert viewer["data"]["audience"] == "public" and "runs the public audience may see" in viewer["html"]
    # The same page shows an op everything: the marks are there to be found.
    assert MARK in op["data_text"] and MARK in op["csv"] and op["data"]["feedback"]["runs"] == 4

    published = viewer["data"]["feedback"]["written_back"]
    assert [a["run_id"] for a in published] == [world["ids"]["published"]]
    assert [s["url"] for s in published[0]["sources"]] == [f"https://docs.example/{DOC}", EVIL_URL + DOC]
    javascript_links = viewer["html"].count('href="javascript:')
    drill("page: a cited source whose URL is javascript: (shown as text)", "0 links", f"{javascript_links} links")
    assert javascript_links == 0 and EVIL_URL + DOC in viewer["html"]
    assert f'href="https://docs.example/{DOC}"' in viewer["html"]
    drill("page: a retrieved source the answer did not cite", "not shown",
          "shown" if UNCITED_URL in viewer["html"] else "not shown")
    # (The docs-gaps topics may name it: a public run retrieved it. The page lists no URL of theirs.)
    assert UNCITED_URL not in viewer["html"] and UNCITED_URL not in json.dumps(published)


def test_report_gaps_and_runs_in_the_cli_show_the_public_audience_only_public_runs(world, tmp_path, drill):
    env = store_env(world["runs_db"])
    config = world["config"]
    report_html = tmp_path / "report.html"
    outputs = {}
    for name, args in {
        "report --json --html": ("report", "--json", "--html", str(report_html), "--audience", "public", "--config", config),
        "gaps --json": ("gaps", "--json", "--audience", "public", "--config", config),
        "runs --json": ("runs", "--json", "--audience", "public"),
    }.items():
        done = run_cli(*args, env=env)
        assert done.returncode == 0, (name, done.stderr[-3000:])
        outputs[name] = done.stdout
    outputs["report --html"] = report_html.read_text(encoding="utf-8")
    leaks = [name for name, text in outputs.items() if MARK in text]
    drill("CLI report/gaps/runs --audience public and internal runs", "shown nowhere",
          f"shown by {', '.join(leaks)}" if leaks else "shown nowhere")
    assert not leaks
    assert json.loads(outputs["report --json --html"])["feedback"]["runs"] == 2
    assert json.loads(outputs["gaps --json"])["runs"] == 2
    assert json.loads(outputs["runs --json"])["count"] == 2
    assert 'href="javascript:' not in outputs["report --html"]
    # Whoever runs the CLI with the store's credentials sees every run by default.
    internal = run_cli("runs", "--json", env=env)
    assert internal.returncode == 0 and json.loads(internal.stdout)["count"] == 4 and MARK in internal.stdout


def test_the_page_in_a_real_browser_shows_a_viewer_no_internal_run_and_no_unsafe_link(world, auth_manager, drill):
    """The page's app served over HTTP on loopback (as Airflow's API server mounts it), read by
    Debian's headless chromium with the UI's session cookie of a viewer: what the browser renders."""
    import threading
    import time

    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from ragloop.airflow.operator.app import create_ui_app
    from ragloop.local.weaviate_local import free_port

    chromium, chromedriver = "/usr/bin/chromium", "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and os.path.exists(chromedriver)):
        pytest.fail("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_ui_app(world["config"], lambda: world["store"]), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-extensions", "--disable-background-networking", "--disable-sync",
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    driver = None
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.started, "the page's server did not start"
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        driver.set_page_load_timeout(120)
        driver.get(f"http://127.0.0.1:{port}/")  # not logged in yet: the log-in page sets the origin for the cookie
        token = bearer(auth_manager, "viewer")["authorization"].split(" ", 1)[1]
        driver.add_cookie({"name": "_token", "value": token, "path": "/"})
        driver.get(f"http://127.0.0.1:{port}/")
        assert driver.find_element(By.CSS_SELECTOR, "[data-testid=audience]").text == "runs the public audience may see"
        text = driver.find_element(By.TAG_NAME, "body").text
        hrefs = [a.get_attribute("href") or "" for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")]
        unsafe = [h for h in hrefs if not h.startswith(("http://", "https://", "ragloop://"))]
        drill("real page in chromium, viewer: internal runs and unsafe links", "0 internal marks, 0 unsafe links",
              f"{text.count(MARK)} internal marks, {len(unsafe)} unsafe links")
        assert MARK not in text and not unsafe, unsafe
        assert f"https://docs.example/{DOC}" in hrefs and EVIL_URL + DOC in text and UNCITED_URL not in text
    finally:
        if driver is not None:
            driver.quit()
        server.should_exit = True
        thread.join(timeout=30)
