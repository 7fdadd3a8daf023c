"""The operator's view end to end: the bundled samples ingested and two answers graded through the
`ragloop` command (dag.test), then Airflow standalone (what `make airflow` starts) on free loopback
ports serving the ragloop page, driven by a real headless browser (Debian's chromium through its
chromedriver and Selenium): log in, open the page from the UI's navigation, compare its numbers with
the stores' own, revoke the written-back answer with the button and see it gone from `ragloop
search`. A request without a token gets no data. `ragloop report` writes the same content as a
self-contained HTML file and as JSON.

Screenshots go to test-artifacts/screenshots/ (ignored by git)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli, weaviate_conn_json
from ragloop.local.weaviate_local import free_port

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
GOOD = "How long does an old SDK key keep working after rotation?"
BAD = "Which signal makes fernd reopen its log files?"
COLLECTION = "OperatorPage"


def samples_config(folder: Path) -> str:
    samples = REPO / "include" / "samples"
    config = {
        "collection": COLLECTION, "embedder": "local", "chunking": {"max_tokens": 256, "overlap_tokens": 32},
        "staging": f"file://{folder / 'staging'}",
        # Votes move retrieval and curated answers are served (off by default; on here to show them).
        "feedback_ranking": {"boosts": True, "curated_answers": True},
        "sources": [
            {"id": "samples-docs", "type": "docs", "path": str(samples / "docs"), "exclude": ["**/changelog*"],
             "url_template": "https://docs.fernwood.example/{path}"},
            {"id": "samples-slack", "type": "slack", "export": str(samples / "slack")},
            {"id": "samples-github", "type": "github_issues", "repo": "fernwood/fernwood",
             "export": str(samples / "github" / "issues.json")},
        ],
    }
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def ok(done) -> str:
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    return done.stdout


@pytest.fixture(scope="module")
def project(weaviate_server, tmp_path_factory):
    """A project state of its own (Airflow metadata DB, run store, config); the session's Weaviate."""
    folder = tmp_path_factory.mktemp("operator")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "RAGLOOP_STATE_DIR": str(folder / "state"),
        "RAGLOOP_CONFIG": samples_config(folder),
        "AIRFLOW_CONN_WEAVIATE_DEFAULT": weaviate_conn_json(weaviate_server),
        "AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(folder / "runs.db")}),
    })

    def cli(*args: str, timeout: float = 600, **extra: str):
        return run_cli(*args, env={**env, **extra}, inherit_env=False, timeout=timeout)

    # Bars as at a terminal (forced: stderr is a pipe here): on stderr, with rate and time left;
    # stdout stays one JSON document.
    ingested = cli("ingest", "--json", RAGLOOP_PROGRESS_BARS="1")
    assert json.loads(ok(ingested))["state"] == "success"
    assert "samples-docs: reading:" in ingested.stderr and "doc/s" in ingested.stderr
    assert "batch 1/1: indexing: 100%" in ingested.stderr and "<00:00" in ingested.stderr
    good = json.loads(ok(cli("ask", GOOD, "--json")))["run_id"]
    ok(cli("feedback", good, "up", "--comment", "clear"))
    bad = json.loads(ok(cli("ask", BAD, "--json")))["run_id"]
    ok(cli("feedback", bad, "down", "--comment", "we reload with SIGHUP"))
    graded = json.loads(ok(cli("grade", "--json")))
    assert graded["write_back"]["written"] == 1, graded
    return {"env": env, "folder": folder, "cli": cli, "good": good, "bad": bad, "runs_db": folder / "runs.db"}


@pytest.fixture(scope="module")
def airflow(project):
    env = dict(project["env"])
    env.update({
        "AIRFLOW__API__PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    })
    started = run_cli("airflow", "start", "--json", env=env, inherit_env=False, timeout=400)
    try:
        assert started.returncode == 0, started.stderr[-4000:]
        info = json.loads(started.stdout)
        passwords = json.loads((project["folder"] / "state" / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        yield {"url": info["url"], "password": passwords["admin"]}
    finally:
        stopped = run_cli("airflow", "stop", env=env, inherit_env=False, timeout=400)
        assert stopped.returncode == 0, stopped.stderr


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("needs Debian's chromium and chromium-driver (.ci/run installs them: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--no-first-run", "--disable-extensions", "--disable-background-networking", "--disable-sync",
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # loopback only
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def store_numbers(project, client) -> dict:
    """What the stores hold, read without the page's code: Weaviate's aggregates, the run store's rows."""
    import sqlalchemy as sa
    from weaviate.classes.aggregate import GroupByAggregate

    collection = client.collections.use(COLLECTION)
    chunks = {
        group.grouped_by.value: group.total_count
        for group in collection.aggregate.over_all(group_by=GroupByAggregate(prop="source_id"), total_count=True).groups
    }
    documents: dict[str, set[str]] = {}
    for obj in collection.iterator(return_properties=["doc_id", "source_id"]):
        documents.setdefault(obj.properties["source_id"], set()).add(obj.properties["doc_id"])
    engine = sa.create_engine(f"sqlite:///{project['runs_db']}")
    with engine.connect() as connection:
        runs = connection.scalar(sa.text("select count(*) from ragloop_runs"))
        up = connection.scalar(sa.text("select count(*) from ragloop_votes where vote = 'up'"))
        down = connection.scalar(sa.text("select count(*) from ragloop_votes where vote = 'down'"))
    engine.dispose()
    return {
        "chunks": sum(chunks.values()), "by_source": chunks,
        "documents": {k: len(v) for k, v in documents.items()}, "runs": runs, "up": up, "down": down,
    }


def wait_for(what: str, check, timeout: float = 60.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - the page is still loading
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def shoot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


# A hang guard, not a timing: this test's module fixtures ingest three sources, grade and start Airflow
# (about 10 min on a 2-core machine shared with other work), more than the suite's 900 s default.
@pytest.mark.timeout(1800)
def test_the_page_in_the_airflow_ui_shows_the_stores_numbers_and_revokes(project, airflow, browser, weaviate_client):
    from selenium.webdriver.common.by import By

    url = airflow["url"]
    # No token, no data: the page, its JSON and its CSV answer 401 and show nothing of the stores.
    for path, accept in (("/ragloop-ui/", "text/html"), ("/ragloop-ui/data.json", "application/json"), ("/ragloop-ui/gaps.csv", "*/*")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url + path, headers={"accept": accept}), timeout=30)
        assert refused.value.code == 401
        body = refused.value.read().decode()
        assert COLLECTION not in body and GOOD not in body
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url + "/ragloop-ui/", headers={"authorization": "Bearer not-a-token"}), timeout=30)
    assert refused.value.code == 401

    # Log in through Airflow's login page, as a person would.
    browser.get(f"{url}/auth/login/")
    user_box = wait_for("the login form", lambda: browser.find_element(By.CSS_SELECTOR, "input:not([type=password])"))
    user_box.send_keys("admin")
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(airflow["password"])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for("the Airflow UI after login", lambda: "/auth/login" not in browser.current_url and browser.get_cookie("_token"))

    # The page is in the UI's navigation and opens in the UI's frame.
    browser.get(f"{url}/")

    def nav_link():
        links = browser.find_elements(By.CSS_SELECTOR, "a[href$='/plugin/ragloop']")
        if not links:  # a plugin view with a category is listed in that menu
            for button in browser.find_elements(By.CSS_SELECTOR, "nav button, button"):
                if button.text.strip() == "Browse":
                    button.click()
                    links = browser.find_elements(By.CSS_SELECTOR, "a[href$='/plugin/ragloop']")
                    break
        return links[0] if links else None

    wait_for("the ragloop item in the navigation", nav_link, timeout=120).click()
    frame = wait_for("the page's frame", lambda: browser.find_element(By.CSS_SELECTOR, "iframe[src*='ragloop-ui']"), timeout=60)
    browser.switch_to.frame(frame)
    try:
        wait_for("the page's numbers", lambda: browser.find_element(By.CSS_SELECTOR, "[data-testid=kb-chunks]").text.strip(), timeout=180)
    finally:
        browser.switch_to.default_content()
        shoot(browser, "airflow-ui-ragloop-page")  # the README's picture
        browser.switch_to.frame(frame)

    def text(selector: str) -> str:
        return browser.find_element(By.CSS_SELECTOR, selector).text.strip()

    stores = store_numbers(project, weaviate_client)
    assert int(text("[data-testid=kb-chunks]")) == stores["chunks"]
    for source_id, count in stores["by_source"].items():
        row = f"[data-testid=kb-by-source] tr[data-source='{source_id}']"
        assert int(text(f"{row} [data-field=chunks]")) == count, source_id
        assert int(text(f"{row} [data-field=documents]")) == stores["documents"][source_id], source_id
    assert int(text("[data-testid=kb-documents]")) == sum(stores["documents"].values())
    assert set(stores["by_source"]) == {"samples-docs", "samples-slack", "samples-github", "qa"}
    for source_id in ("samples-docs", "samples-slack", "samples-github"):
        assert text(f"[data-testid=kb-sources] tr[data-source='{source_id}'] [data-field=freshness]") == "green"
    assert int(text("[data-testid=fb-runs]")) == stores["runs"] == 2
    assert (int(text("[data-testid=fb-votes-up]")), int(text("[data-testid=fb-votes-down]"))) == (stores["up"], stores["down"]) == (1, 1)
    assert int(text("[data-testid=fb-written-back]")) == stores["by_source"]["qa"] and stores["by_source"]["qa"] >= 1
    # Every ingest DAG run's report is stored: the three sample DAG runs, each with its documents.
    ingest_rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid=ingest-runs] tr[data-dag-run]")
    assert len(ingest_rows) == 3
    assert sum(int(r.find_element(By.CSS_SELECTOR, "[data-field=new]").text) for r in ingest_rows) == sum(
        stores["documents"][s] for s in ("samples-docs", "samples-slack", "samples-github"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#ingest-history svg")) == 4
    assert len(browser.find_elements(By.CSS_SELECTOR, "#feedback-loop svg")) == 5
    shoot(browser, "ragloop-page")

    # Feedback in retrieval: an operator hides a chunk the down-voted answer cited, a paraphrase of
    # the good question is answered by its written-back (curated) answer; the page shows both, and
    # the chunks the two votes moved, with their votes.
    runs = {r["run_id"]: r for r in json.loads(ok(project["cli"]("runs", "--json")))["runs"]}
    hidden = runs[project["bad"]]["sources"][0]["chunk_id"]
    ok(project["cli"]("chunk", "hide", hidden, "--reason", "says SIGUSR1; we reload with SIGHUP", "--user", "ops"))
    paraphrase = json.loads(ok(project["cli"]("ask", "After rotation, how long does an old SDK key keep working?", "--json")))
    assert paraphrase["mode"] == "curated" and paraphrase["curated"]["run_id"] == project["good"]
    browser.switch_to.default_content()
    browser.get(f"{url}/ragloop-ui/")
    wait_for("the page again", lambda: browser.find_element(By.CSS_SELECTOR, "[data-testid=kb-chunks]").text.strip(), timeout=180)
    curated_row = f"[data-testid=ranking-curated] tr[data-run-id='{project['good']}']"
    assert text(f"{curated_row} td.num").startswith("1")
    assert "hide by ops" in text(f"[data-testid=ranking-controlled] tr[data-chunk-id='{hidden}']")
    assert "says SIGUSR1" in text(f"[data-testid=ranking-controlled] tr[data-chunk-id='{hidden}']")
    demoted = text(f"[data-testid=ranking-demoted] tr[data-chunk-id='{hidden}']")
    assert "+0 / −1" in demoted and "hidden" in demoted
    assert "+1 / −0" in text("[data-testid=ranking-boosted] tr[data-chunk-id]")
    shoot(browser, "ragloop-page-feedback-ranking")

    # Revoke the written-back answer with the button: a reason is asked for, the page reloads without it.
    row = f"[data-testid=fb-written-list] tr[data-run-id='{project['good']}']"
    browser.find_element(By.CSS_SELECTOR, f"{row} button[data-revoke]").click()
    reason = wait_for("the revoke dialog", lambda: browser.find_element(By.ID, "revoke-reason") if browser.find_element(
        By.ID, "revoke-dialog").get_attribute("open") is not None else None)
    reason.send_keys("outdated: the grace period changed")
    shoot(browser, "ragloop-revoke-dialog")
    browser.find_element(By.ID, "revoke-confirm").click()
    wait_for("the page to reload without the answer",
             lambda: not browser.find_elements(By.CSS_SELECTOR, row) and browser.find_element(By.CSS_SELECTOR, "[data-testid=fb-written-back]").text.strip() == "0",
             timeout=120)
    shoot(browser, "ragloop-page-after-revoke")

    hits = [json.loads(line) for line in ok(project["cli"]("search", GOOD, "--kind", "qa", "--json")).splitlines() if line.strip()]
    assert hits == []
    listed = json.loads(ok(project["cli"]("runs", "--json")))["runs"]
    revoked = next(r for r in listed if r["run_id"] == project["good"])["writeback"]
    assert revoked["state"] == "revoked_by_hand" and "outdated: the grace period changed" in revoked["revoke_reason"]


def test_report_html_and_json_hold_the_same_numbers(project, weaviate_client, tmp_path):
    html_path = tmp_path / "report.html"
    report = json.loads(ok(project["cli"]("report", "--json", "--html", str(html_path))))
    stores = store_numbers(project, weaviate_client)
    kb = report["knowledge_base"]
    assert kb["chunks"] == stores["chunks"]
    assert {s: v["chunks"] for s, v in kb["by_source"].items()} == stores["by_source"]
    assert {s: v["documents"] for s, v in kb["by_source"].items()} == stores["documents"]
    assert report["feedback"]["runs"] == stores["runs"]
    assert report["feedback"]["votes"] == {"up": stores["up"], "down": stores["down"]}
    assert [r["dag_id"] for r in report["ingest_history"]["runs"]] == [
        "ragloop_ingest_docs", "ragloop_ingest_slack", "ragloop_ingest_github_issues"]
    assert len(report["feedback"]["reports"]) >= 1 and report["feedback"]["reports"][0]["graded"] >= 2
    assert {r["criterion"] for r in report["feedback"]["pass_rates"]} >= {"checks", "helpfulness"}
    assert report["gaps"]["runs"] == stores["runs"]  # every recorded question is grouped (the page test adds a curated one)

    html = html_path.read_text(encoding="utf-8")
    assert html.count("<svg") == 9 and "<script src" not in html and 'src="http' not in html  # nothing fetched
    assert f'data-testid="kb-chunks">{stores["chunks"]}<' in html
    assert "data-revoke" not in html  # the file is a report: no buttons that would need a server
    if os.environ.get("RAGLOOP_KEEP_REPORT"):
        shutil.copy(html_path, os.environ["RAGLOOP_KEEP_REPORT"])
