"""What the tests that drive a real Airflow share: waiting with a deadline, Airflow standalone
started on free ports with an admin token, a REST client that hides no fault, and the reads of a
DAG run's task instances and XComs. One copy here, so a fix to a wait or a retry rule is made once.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from conftest import run_cli
from ragloop.local.weaviate_local import free_port

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout: float, interval: float = 2.0,
             slow: tuple[type[Exception], ...] = ()) -> T:
    """Call `check` until it returns something true, and return that; fail after `timeout`
    seconds naming `what` and the last value seen. Never a fixed sleep: a wait ends as soon as
    what it waits for is there. An exception in `slow` (a read-only poll timing out on a loaded
    machine) counts as "not yet", within the same deadline, and is named in the failure."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except slow as err:
            last = f"{type(err).__name__}: {err}"
        else:
            if value:
                return value
            last = value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r:.2000}")


class NotYet:
    """A check's "not yet" that says what it saw: false, and shown in wait_for's failure."""

    def __init__(self, seen: object):
        self.seen = seen

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"not yet: {self.seen!r}"


def not_yet(seen: object) -> NotYet:
    return NotYet(seen)


class Api:
    """An Airflow REST API with a token. Nothing is asked twice except one fault named below: a
    hidden retry of any 5xx would pass a test whose server is failing."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.lock_retries: list[str] = []  # every repeated request, for the failure messages

    def __call__(self, method: str, path: str, body: dict | None = None) -> dict:
        # On SQLite metadata, a write of the API server (its audit log) can lose the file lock to
        # the scheduler under load and answer 500 "database is locked" (the standalone fixtures
        # expose the driver's error to tell it apart). Only that 500, and only on an idempotent
        # GET or PATCH, is asked again; any other 5xx fails the test at once.
        attempts = 5 if method in ("GET", "PATCH") else 1
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(
                f"{self.url}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
                headers={"content-type": "application/json", "authorization": f"Bearer {self.token}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as err:
                text = err.read()[:4000]
                if err.code == 500 and b"database is locked" in text and attempt < attempts:
                    self.lock_retries.append(f"{method} {path}")
                    time.sleep(2 * attempt)
                    continue
                raise AssertionError(f"{method} {path}: {err.code} {text[:2000]!r} (retried on a lock before: "
                                     f"{self.lock_retries})") from None
        raise AssertionError("unreachable")


def admin_token(url: str, state_dir: Path) -> str:
    """A token for standalone's `admin`, whose password the simple auth manager generated into
    the standalone's state folder."""
    passwords = json.loads((state_dir / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
    request = urllib.request.Request(
        f"{url}/auth/token", data=json.dumps({"username": "admin", "password": passwords["admin"]}).encode(),
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["access_token"]


def standalone_ports() -> dict[str, str]:
    """Free loopback ports for everything standalone listens on, as its environment sets them:
    two standalones (or a developer's `make airflow`) can run at once."""
    return {
        "AIRFLOW__API__PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }


@contextmanager
def standalone_airflow(env: dict[str, str], state_dir: Path, timeout: float = 600) -> Iterator[Api]:
    """`ragloop airflow start` with `env` as the whole environment (its RAGLOOP_STATE_DIR is
    `state_dir`), an admin's Api while it runs, and `ragloop airflow stop` afterwards, also when
    the start failed half-way."""
    started = run_cli("airflow", "start", "--json", "--timeout", str(int(timeout)), env=env, inherit_env=False,
                      timeout=timeout + 100)
    try:
        assert started.returncode == 0, started.stderr[-4000:]
        url = json.loads(started.stdout)["url"]
        yield Api(url, admin_token(url, state_dir))
    finally:
        stopped = run_cli("airflow", "stop", env=env, inherit_env=False, timeout=400)
        assert stopped.returncode == 0, stopped.stderr


def _run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def task_instances(api: Callable[..., Any], dag_id: str, run_id: str) -> list[dict]:
    """Every task instance of a DAG run (mapped ones one by one)."""
    return api("GET", f"{_run_path(dag_id, run_id)}/taskInstances?limit=1000")["task_instances"]


def task_log_tail(api: Callable[..., Any], dag_id: str, run_id: str) -> str:
    """The task instances of a run that did not succeed, for an assertion message."""
    return "; ".join(f"{ti['task_id']}[{ti['map_index']}]: {ti['state']}"
                     for ti in task_instances(api, dag_id, run_id) if ti["state"] not in ("success", "skipped"))


def retried_tasks(api: Callable[..., Any], dag_id: str, run_id: str) -> list[str]:
    """The task instances of a run that needed more than one try: a task passing on its retry
    hides a fault (the DAGs retry; a test must not let that pass unseen)."""
    instances = task_instances(api, dag_id, run_id)
    assert instances, f"{dag_id} {run_id}: no task instances"
    return [f"{dag_id} {run_id} {ti['task_id']}[{ti['map_index']}]: try {ti['try_number']}; "
            f"try 1 ended with: {first_try_log_tail(api, dag_id, run_id, ti)}"
            for ti in instances if ti["try_number"] > 1]


def first_try_log_tail(api: Callable[..., Any], dag_id: str, run_id: str, instance: dict, characters: int = 1500) -> str:
    """The end of a retried task's first log, so that a failed assertion says why it was retried
    (the deployment's files are gone once the test ends)."""
    query = f"?map_index={instance['map_index']}&full_content=true" if instance["map_index"] >= 0 else "?full_content=true"
    try:
        found = api("GET", f"{_run_path(dag_id, run_id)}/taskInstances/{instance['task_id']}/logs/1{query}")
    except Exception as err:  # noqa: BLE001 - a diagnosis must not hide the assertion it explains
        return f"(its log could not be read: {err})"
    content = found.get("content") if isinstance(found, dict) else found
    if isinstance(content, list):  # structured log lines
        content = "\n".join(str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in content)
    return str(content)[-characters:]


def xcom(api: Callable[..., Any], dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value, deserialized."""
    value = api("GET", f"{_run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
                       "?deserialize=true")["value"]
    return json.loads(value) if isinstance(value, str) else value


def wait_for_run_end(api: Callable[..., Any], dag_id: str, run_id: str, timeout: float) -> dict:
    """A DAG run, once it has ended (success or failed)."""
    def ended():
        run = api("GET", _run_path(dag_id, run_id))
        return run if run["state"] in ("success", "failed") else None

    return wait_for(f"{dag_id} run {run_id} to end", ended, timeout)


def token_for(auth_manager: Any, role: str | None) -> str:
    """A token the simple auth manager signed for a user of `role` (None: no role), for the tests
    that call the API in process."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username=f"{role}-user", role=role))
