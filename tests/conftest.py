"""Shared fixtures: a private Airflow (metadata DB under a temp folder) and a real Weaviate server
from the cached binary on free loopback ports. Nothing here touches the developer's `.ragloop/`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Configure before anything imports airflow: Airflow reads its configuration at import time.
TEST_STATE = Path(tempfile.mkdtemp(prefix="ragloop-test-"))
os.environ["RAGLOOP_PROJECT_DIR"] = str(REPO)
os.environ["RAGLOOP_STATE_DIR"] = str(TEST_STATE)
os.environ.pop("AIRFLOW_HOME", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# A JWT secret of the length SHA-512 wants (Airflow's generated default is shorter and warns on
# every token); the runs API tests sign and check tokens with it.
os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = "ragloop-tests-" + "0123456789abcdef" * 4
for name in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
    del os.environ[name]

from ragloop.local import localenv  # noqa: E402
from drill_table import drill  # noqa: E402,F401 - issue 16 drills record rows through this fixture (see drill_table.py)

localenv.configure_airflow_env()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(TEST_STATE, ignore_errors=True)


# --- The parallel layout (pytest-xdist: `make test` runs `-n 2 --dist loadfile`) ---------------
# Every module runs whole on one worker (its module fixtures, servers and files are made once).
# The modules that start a multi-process Airflow deployment (standalone's scheduler, API server,
# DAG processor and task processes, or the Celery cluster's) are one unit: one deployment at a
# time, on one worker, as in a serial run; two at once on 2 cores starve each other's schedulers.
# That unit goes first, as it is the longest; the other worker takes the other modules in turn.
AIRFLOW_DEPLOYMENTS = frozenset({
    "tests/integration/test_airflow_standalone.py",
    "tests/integration/test_celery_run.py",
    "tests/integration/test_operator_page.py",
    "tests/integration/test_review.py",
    "tests/integration/test_scheduled_runs.py",
    "tests/integration/test_showcase.py",
})
AIRFLOW_DEPLOYMENTS_UNIT = "airflow-deployments"


def work_unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to under `--dist loadfile`: its module, or the deployments."""
    module = nodeid.split("::", 1)[0]
    return AIRFLOW_DEPLOYMENTS_UNIT if module in AIRFLOW_DEPLOYMENTS else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's per-file scheduling with the deployments' modules as one unit. (Not `loadgroup`
    marks: xdist 3.8 tags a grouped test by rewriting `item._nodeid`, which pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModulesAndDeployments(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit_of(nodeid)

    return ModulesAndDeployments(config, log)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the order units are handed out
        # A stable sort: the deployments first, every module's tests in their order.
        items.sort(key=lambda item: work_unit_of(item.nodeid) != AIRFLOW_DEPLOYMENTS_UNIT)


# --- PostgreSQL: the production run store, in the suite -------------------------------------------


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL 15 cluster (Debian's binaries) in a temp folder on a free loopback
    port, started once per session by the same code as `make cluster` (ragloop.local.cluster.services
    .Postgres: initdb, run as the `ragloop` user when we are root) and stopped at the end.
    Missing binaries fail the tests that need them, naming the package: never a silent skip."""
    from ragloop.local.cluster.services import POSTGRES_BIN, Postgres, free_ports

    if not (POSTGRES_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed ({POSTGRES_BIN / 'initdb'} missing): `make test` installs "
                    "the Debian package postgresql-15; or set RAGLOOP_POSTGRES_BIN to its bin folder")
    # Outside the 0700 session folder: the postgres processes run as another user when we are root.
    folder = Path(tempfile.mkdtemp(prefix="ragloop-test-postgres-"))
    folder.chmod(0o755)
    server = Postgres(name="postgres", folder=folder, markers=(str(folder / "data"),), port=free_ports(1)[0],
                      databases=())
    try:
        server.start(progress=lambda message: None, timeout=120)
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


_database_numbers = iter(range(1, 100_000))


@pytest.fixture
def postgres_database(postgres_server):
    """A fresh, empty database on the session's Postgres: its SQLAlchemy URL (dropped afterwards)."""
    name = f"runs_{os.getpid()}_{next(_database_numbers)}"
    postgres_server.psql(f'CREATE DATABASE "{name}"')
    yield postgres_server.url(name)
    postgres_server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def runs_db_url(request, tmp_path) -> str:
    """A fresh, empty run-store database: a SQLite file (the local mode) and a real PostgreSQL
    database (production); every test using it runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata DB with airflow_settings.yaml loaded (about 7 s, once per session)."""
    localenv.ensure_local_airflow(force=True)
    path = localenv.airflow_db_path()
    assert path is not None, "the suite's Airflow metadata DB is SQLite (conftest sets its URL)"
    return path


@pytest.fixture(scope="session")
def auth_manager(airflow_db):
    """Airflow's simple auth manager, initialised on the session's metadata DB: it signs the
    tokens of the tests that call the runs API or the operator's page in process
    (airflow_helpers.token_for)."""
    from airflow.api_fastapi.app import create_auth_manager

    manager = create_auth_manager()
    manager.init()
    return manager


def weaviate_conn_json(server) -> str:
    return json.dumps(
        {
            "conn_type": "weaviate",
            "host": "127.0.0.1",
            "port": server.http_port,
            "extra": {
                "grpc_host": "127.0.0.1",
                "grpc_port": server.grpc_port,
                "local_server": {
                    "gossip_port": server.gossip_port,
                    "data_port": server.data_port,
                    "raft_port": server.raft_port,
                    "raft_internal_rpc_port": server.raft_internal_rpc_port,
                },
            },
        }
    )


@pytest.fixture(scope="session")
def weaviate_server():
    """A real Weaviate on free loopback ports with a temp data folder, stopped at the end of the
    session even when tests fail. `weaviate_default` points at it for the whole session."""
    from ragloop.local.weaviate_local import LocalWeaviate

    server = LocalWeaviate.with_free_ports(TEST_STATE / "weaviate-session")
    server.state_dir.mkdir(parents=True, exist_ok=True)
    server.start(timeout=120)
    previous = os.environ.get("AIRFLOW_CONN_WEAVIATE_DEFAULT")
    os.environ["AIRFLOW_CONN_WEAVIATE_DEFAULT"] = weaviate_conn_json(server)
    try:
        yield server
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("AIRFLOW_CONN_WEAVIATE_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_WEAVIATE_DEFAULT"] = previous


@pytest.fixture
def weaviate_client(weaviate_server):
    from ragloop.index import connect

    with connect() as client:
        yield client


def run_cli(*args: str, env: dict | None = None, inherit_env: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed `ragloop` console script in a child process, as a user would.
    `env` is added to this process's environment, or is the whole environment without `inherit_env`."""
    ragloop = Path(sys.executable).with_name("ragloop")
    child_env = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
    return subprocess.run([str(ragloop), *args], capture_output=True, text=True, timeout=timeout, env=child_env, cwd=REPO)


# Blocks every connection that does not go to this machine, in a child interpreter; used to
# prove that a code path needs no network.
NO_NETWORK_PRELUDE = """
import socket
_real_connect = socket.socket.connect
def _guarded(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
        return _real_connect(self, address)
    raise OSError(f"network blocked by the test: {address!r}")
socket.socket.connect = _guarded
_real_getaddrinfo = socket.getaddrinfo
def _loopback_dns_only(host, *args, **kwargs):
    if host is None or str(host).startswith("127.") or host in ("localhost", "::1", b"localhost"):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise OSError(f"DNS blocked by the test: {host!r}")
socket.getaddrinfo = _loopback_dns_only
"""


def run_offline(code: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_NETWORK_PRELUDE + code],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO,
    )


# --- ingestion helpers --------------------------------------------------------------------------

SAMPLES = REPO / "include" / "samples" / "docs"
sys.path.insert(0, str(REPO / "bench"))  # the generated corpus of the benchmark


def write_config(folder: Path, collection: str, docs: Path, embedder: str = "local", **extra) -> Path:
    """A sources.yaml with one docs source over `docs`, writing to `collection`."""
    import yaml

    source = {"id": extra.pop("source_id", "docs"), "type": "docs", "path": str(docs),
              "url_template": "https://docs.example/{path}", **extra.pop("source", {})}
    config = {"collection": collection, "embedder": embedder, "chunking": {"max_tokens": 256, "overlap_tokens": 32},
              "staging": f"file://{folder / 'staging'}", "sources": [source], **extra}
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def copy_samples(folder: Path) -> Path:
    target = folder / "docs"
    shutil.copytree(SAMPLES, target)
    return target


def indexed_chunks(client, collection: str) -> dict[str, list[dict]]:
    """doc_id -> its chunks' properties, sorted by chunk_index (read with the cursor iterator)."""
    documents: dict[str, list[dict]] = {}
    for obj in client.collections.use(collection).iterator(
        return_properties=["doc_id", "chunk_index", "chunk_count", "chunk_hash", "doc_hash", "text"]
    ):
        documents.setdefault(obj.properties["doc_id"], []).append(obj.properties)
    for chunks in documents.values():
        chunks.sort(key=lambda p: p["chunk_index"])
    return documents


_collection_numbers = iter(range(1, 10_000))


@pytest.fixture
def collection_name(request) -> str:
    """A fresh collection name per test (Weaviate is shared by the session)."""
    return f"T{next(_collection_numbers)}_{''.join(c for c in request.node.name.title() if c.isalnum())[:40]}"
