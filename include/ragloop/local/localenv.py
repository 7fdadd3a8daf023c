"""The Airflow environment of the no-Docker mode (the project and state folders are ragloop.paths).

In Docker (Astro) and on a distributed Airflow, `AIRFLOW_HOME` is already set and nothing here
overrides it. Locally, `ragloop` and the Makefile point Airflow at a SQLite metadata DB under the
project's ignored `.ragloop/` folder, so `dag.test()` and `airflow standalone` share one database,
one set of connections and the project's own `dags/` and `plugins/`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from ragloop.errors import RagloopError
from ragloop.paths import project_root, state_dir

log = logging.getLogger(__name__)

DEFAULT_API_PORT = "8080"


class LocalAirflowError(RagloopError):
    """The local Airflow could not be prepared or started; the message says why."""


def airflow_env_defaults() -> dict[str, str]:
    """The Airflow settings of the local mode. Only used when `AIRFLOW_HOME` is not set."""
    root = project_root()
    home = state_dir() / "airflow"
    api_port = os.environ.get("AIRFLOW__API__PORT", DEFAULT_API_PORT)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # dag.test() and the CLI need an absolute SQLite path: a relative one resolves per process.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # Airflow's API server listens on all interfaces by default; the local mode stays on loopback.
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": api_port,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "8793",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "PYTHONPATH": os.pathsep.join(p for p in (str(root / "include"), os.environ.get("PYTHONPATH", "")) if p),
    }


def configure_airflow_env() -> dict[str, str]:
    """Set the local-mode Airflow environment in this process unless Airflow is configured already.

    Must run before `airflow` is imported: Airflow reads its configuration at import time.
    """
    if os.environ.get("AIRFLOW_HOME"):
        return {}
    applied = {}
    for key, value in airflow_env_defaults().items():
        if key not in os.environ:
            os.environ[key] = value
            applied[key] = value
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return applied


def airflow_home() -> str:
    return os.environ.get("AIRFLOW_HOME", "")


def is_local_mode() -> bool:
    """True when Airflow runs from this project's `.ragloop/` (not Docker, not a shared Airflow)."""
    return airflow_home() == str(state_dir() / "airflow")


def airflow_db_path() -> Path | None:
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def migrate_airflow_db() -> None:
    """`airflow db migrate` (about 7 s on a new database, under a second when already current)."""
    airflow_bin = Path(sys.executable).with_name("airflow")
    command = [str(airflow_bin) if airflow_bin.exists() else "airflow", "db", "migrate"]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if result.returncode != 0:
        raise LocalAirflowError(
            f"`airflow db migrate` failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def settings_file() -> Path:
    return project_root() / "airflow_settings.yaml"


def load_airflow_settings(path: Path | None = None) -> dict[str, int]:
    """Load connections and variables from an Astro CLI `airflow_settings.yaml` into the metadata DB.

    Existing entries with the same id are replaced, so the file stays the source of truth for the
    local mode (the Astro CLI does the same for `astro dev start`).
    """
    import yaml

    path = path or settings_file()
    data = yaml.safe_load(path.read_text()) or {}
    section = data.get("airflow") or {}
    connections = section.get("connections") or []
    variables = section.get("variables") or []

    from airflow.models import Connection, Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        for entry in connections:
            conn_id = entry.get("conn_id")
            if not conn_id or not entry.get("conn_type"):
                raise ValueError(f"{path}: every connection needs conn_id and conn_type (got {sorted(entry)})")
            extra = entry.get("conn_extra")
            conn = Connection(
                conn_id=conn_id,
                conn_type=entry["conn_type"],
                host=entry.get("conn_host"),
                login=entry.get("conn_login"),
                password=entry.get("conn_password"),
                schema=entry.get("conn_schema"),
                port=entry.get("conn_port"),
                extra=extra if extra is None or isinstance(extra, str) else json.dumps(extra),
            )
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
            session.add(conn)
        for entry in variables:
            key = entry.get("variable_name")
            if not key:
                raise ValueError(f"{path}: every variable needs variable_name")
            session.query(Variable).filter(Variable.key == key).delete()
            session.add(Variable(key=key, val=str(entry.get("variable_value", ""))))
    return {"connections": len(connections), "variables": len(variables)}


def ensure_local_airflow(force: bool = False) -> bool:
    """Migrate the local metadata DB and load `airflow_settings.yaml` when either is new.

    Returns True when it did work. A stamp file records the settings file's mtime so repeated CLI
    calls cost nothing.
    """
    configure_airflow_env()
    db = airflow_db_path()
    settings = settings_file()
    stamp = Path(os.environ["AIRFLOW_HOME"]) / ".ragloop-settings-loaded"
    settings_mtime = str(settings.stat().st_mtime_ns) if settings.exists() else "none"
    fresh = db is not None and db.exists() and stamp.exists() and stamp.read_text() == settings_mtime
    if fresh and not force:
        return False
    log.info("Preparing the local Airflow metadata DB at %s", db)
    migrate_airflow_db()
    if settings.exists():
        counts = load_airflow_settings(settings)
        log.info("Loaded %(connections)d connections and %(variables)d variables from airflow_settings.yaml", counts)
    stamp.write_text(settings_mtime)
    return True


def standalone_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('AIRFLOW__API__PORT', DEFAULT_API_PORT)}"


def _standalone_process():
    from ragloop.local.processes import ManagedProcess

    home = Path(airflow_home())
    return ManagedProcess(home / "standalone.pid", home / "standalone.log", markers=("airflow", "standalone"))


def _airflow_executable() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def start_standalone(timeout: float = 240.0, progress=log.info) -> dict:
    """`airflow standalone` on 127.0.0.1 (port 8080 unless AIRFLOW__API__PORT says otherwise) in the background, with this project's DAGs,
    plugins and connections; returns once the API server answers its health check."""
    import urllib.error
    import urllib.request

    process = _standalone_process()
    url = standalone_url()
    if process.pid():
        return {"message": f"Airflow standalone is already running (pid {process.pid()}) at {url}", "url": url}
    env = os.environ.copy()
    # standalone spawns `airflow` subcommands from PATH: they must be this environment's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    pid = process.start([_airflow_executable(), "standalone"], env=env, cwd=project_root())
    progress(f"Started Airflow standalone (pid {pid}); waiting for {url} (log: {process.log_file})")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.exit_code()
        if code is not None:
            process.pid_file.unlink(missing_ok=True)
            raise LocalAirflowError(f"airflow standalone exited with {code}:\n{process.log_tail()}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    else:
        process.stop()
        raise LocalAirflowError(f"Airflow did not answer at {url} within {timeout:.0f} s; stopped it.\n{process.log_tail()}")
    passwords = Path(airflow_home()) / "simple_auth_manager_passwords.json.generated"
    login = ""
    if passwords.exists():
        users = json.loads(passwords.read_text())
        login = ", ".join(f"user {user} / password {password}" for user, password in users.items())
    return {
        "message": f"Airflow standalone is running (pid {pid}) at {url}" + (f"; log in as {login}" if login else ""),
        "url": url,
        "pid": pid,
    }


def stop_standalone() -> str:
    pid = _standalone_process().stop(timeout=60)
    return f"Airflow standalone stopped (pid {pid})" if pid else "Airflow standalone is not running (none started by ragloop)"
