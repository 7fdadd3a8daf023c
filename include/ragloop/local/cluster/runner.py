"""`ragloop cluster start|stop|status`: a distributed deployment of ragloop on one machine.

Everything binds 127.0.0.1, runs in a process group of its own with a pid file, and keeps its data
under `.ragloop/cluster/<component>/`:

- PostgreSQL: Airflow's metadata DB (`airflow`) and the run store (`ragloop_runs`);
- Redis: the Celery broker (no persistence); Postgres holds Celery's results;
- SeaweedFS: an S3 server, the staging store, reached through the `ragloop_s3` connection
  (type aws, `endpoint_url` in its extra): the same code path as AWS S3;
- Weaviate: three nodes, the collection replicated three times;
- Airflow: api-server, scheduler, dag-processor, triggerer and two Celery workers with their own
  hostnames and working folders (nothing a task writes is on a disk another task reads).

Ports, the Fernet key and the JWT secret are chosen once and kept in `cluster.json`; connections
and settings reach every Airflow process as environment variables, as on Astro.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import yaml

from ragloop.local.cluster.services import (
    ClusterError,
    Postgres,
    Redis,
    SeaweedS3,
    Service,
    WeaviateNode,
    free_ports,
)
from ragloop.paths import project_root, state_dir

WORKERS = ("worker-1", "worker-2")
WEAVIATE_NODES = ("weaviate-1", "weaviate-2", "weaviate-3")
S3_CONN_ID = "ragloop_s3"
COLLECTION = "RagloopChunks"
ADMIN = "admin"


def cluster_dir() -> Path:
    return state_dir() / "cluster"


def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


@dataclass
class AirflowProcess(Service):
    """One Airflow component (`airflow <args>`), with the cluster's environment."""

    args: tuple[str, ...] = ()
    environment: dict | None = None
    ready_check: Callable[[], bool] | None = None
    stop_timeout: float = 60.0

    def command(self) -> list[str]:
        return [_airflow_bin(), *self.args]

    def env(self) -> dict[str, str]:
        return dict(self.environment or {})

    def ready(self) -> bool:
        return self.ready_check() if self.ready_check else True


class Cluster:
    def __init__(self, folder: Path | None = None, root: Path | None = None):
        self.folder = folder or cluster_dir()
        self.root = root or project_root()
        self.state_file = self.folder / "cluster.json"

    # --- layout --------------------------------------------------------------------------------

    def settings(self, create: bool = False) -> dict:
        """Ports and secrets, chosen on the first start and kept for the cluster's life."""
        if self.state_file.exists():
            return json.loads(self.state_file.read_text())
        if not create:
            raise ClusterError(f"No cluster under {self.folder}: start one with `ragloop cluster start` (make cluster)")
        from cryptography.fernet import Fernet

        taken: set[int] = set()
        simple = free_ports(8, taken=taken)
        taken.update(simple)
        seaweed = free_ports(4, offsets=(0, 10000), taken=taken)
        taken.update(seaweed + [p + 10000 for p in seaweed])
        weaviate_pairs = free_ports(6, offsets=(0, 1), taken=taken)
        taken.update(weaviate_pairs + [p + 1 for p in weaviate_pairs])
        weaviate_single = free_ports(6, taken=taken)
        nodes = []
        for index, name in enumerate(WEAVIATE_NODES):
            nodes.append(
                {
                    "hostname": name,
                    "http_port": weaviate_single[2 * index],
                    "grpc_port": weaviate_single[2 * index + 1],
                    "gossip_port": weaviate_pairs[2 * index],
                    "raft_port": weaviate_pairs[2 * index + 1],
                }
            )
        data = {
            "postgres_port": simple[0],
            "redis_port": simple[1],
            "api_port": simple[2],
            "trigger_log_port": simple[3],
            "worker_log_ports": {WORKERS[0]: simple[4], WORKERS[1]: simple[5]},
            "seaweed": dict(zip(("master_port", "volume_port", "filer_port", "s3_port"), seaweed, strict=False)),
            "weaviate": nodes,
            "fernet_key": Fernet.generate_key().decode(),
            "jwt_secret": secrets.token_urlsafe(32),
            "api_secret_key": secrets.token_urlsafe(32),
            "s3_access_key": "ragloop",
            "s3_secret_key": secrets.token_urlsafe(16),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(data, indent=2))
        self.state_file.chmod(0o600)
        return data

    def postgres(self) -> Postgres:
        return Postgres("postgres", self.folder / "postgres", ("postgres", "-D"), port=self.settings()["postgres_port"])

    def redis(self) -> Redis:
        port = self.settings()["redis_port"]
        return Redis("redis", self.folder / "redis", ("redis-server", str(port)), port=port)

    def s3(self) -> SeaweedS3:
        ports = self.settings()["seaweed"]
        return SeaweedS3("seaweedfs", self.folder / "seaweedfs", ("weed", f"-s3.port={ports['s3_port']}"), **ports)

    def weaviate_nodes(self) -> list[WeaviateNode]:
        specs = self.settings()["weaviate"]
        nodes = [
            WeaviateNode(spec["hostname"], self.folder / spec["hostname"], ("weaviate-server", str(spec["http_port"])), **spec)
            for spec in specs
        ]
        for node in nodes:
            node.peers = tuple(nodes)
        return nodes

    def weaviate_node(self, hostname: str) -> WeaviateNode:
        return next(node for node in self.weaviate_nodes() if node.hostname == hostname)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings()['api_port']}"

    @property
    def config_path(self) -> Path:
        return self.folder / "sources.yaml"

    @property
    def passwords_file(self) -> Path:
        return self.folder / "airflow" / "simple_auth_manager_passwords.json"

    def connections(self) -> dict[str, str]:
        """The Airflow connections, as `AIRFLOW_CONN_*` environment variables (JSON)."""
        s = self.settings()
        first = s["weaviate"][0]
        pg = s["postgres_port"]
        return {
            "AIRFLOW_CONN_WEAVIATE_DEFAULT": json.dumps(
                {
                    "conn_type": "weaviate",
                    "host": "127.0.0.1",
                    "port": first["http_port"],
                    "extra": {
                        "grpc_host": "127.0.0.1",
                        "grpc_port": first["grpc_port"],
                        "http_secure": False,
                        "grpc_secure": False,
                    },
                }
            ),
            "AIRFLOW_CONN_RAGLOOP_RUNS_DEFAULT": json.dumps(
                {"conn_type": "postgres", "host": "127.0.0.1", "port": pg, "login": "ragloop", "schema": "ragloop_runs"}
            ),
            f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": json.dumps(
                {
                    "conn_type": "aws",
                    "login": s["s3_access_key"],
                    "password": s["s3_secret_key"],
                    "extra": {"endpoint_url": f"http://127.0.0.1:{s['seaweed']['s3_port']}", "region_name": "us-east-1"},
                }
            ),
        }

    def airflow_env(self, home: Path, **extra: str) -> dict[str, str]:
        """The environment of every Airflow process and of `ragloop` commands against the cluster."""
        s = self.settings()
        pg = s["postgres_port"]
        api = self.api_url
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RAGLOOP_"))}
        env.update(self.connections())
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.root / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.root / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__FERNET_KEY": s["fernet_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
                "AIRFLOW__API__SECRET_KEY": s["api_secret_key"],
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(s["api_port"]),
                "AIRFLOW__API__BASE_URL": api,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://ragloop@127.0.0.1:{pg}/airflow",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{s['redis_port']}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://ragloop@127.0.0.1:{pg}/airflow",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(s["trigger_log_port"]),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # A worker that dies (the drills SIGKILL one) stops heartbeating its tasks: after
                # this many seconds the scheduler fails the try and the retry runs elsewhere.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "RAGLOOP_CONFIG": str(self.config_path),
                "RAGLOOP_PROJECT_DIR": str(self.root),
                "RAGLOOP_STATE_DIR": str(home / "state"),
                "PYTHONPATH": os.pathsep.join(p for p in (str(self.root / "include"), os.environ.get("PYTHONPATH", "")) if p),
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            }
        )
        env.update(extra)
        return env

    def control_env(self) -> dict[str, str]:
        return self.airflow_env(self.folder / "airflow")

    def worker_env(self, name: str) -> dict[str, str]:
        return self.airflow_env(
            self.folder / name,
            AIRFLOW__CORE__HOSTNAME_CALLABLE="ragloop.local.cluster.hostname.worker_hostname",
            RAGLOOP_WORKER_HOSTNAME=name,
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(self.settings()["worker_log_ports"][name]),
        )

    def _api_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def airflow_processes(self) -> list[AirflowProcess]:
        home = self.folder / "airflow"
        env = self.control_env()
        processes = [
            AirflowProcess(
                "api-server",
                home,
                ("airflow", "api"),  # it renames itself `airflow api_server -- ...`
                args=("api-server", "--host", "127.0.0.1", "--port", str(self.settings()["api_port"])),
                environment=env,
                ready_check=self._api_healthy,
            ),
            AirflowProcess("scheduler", home, ("airflow", "scheduler"), args=("scheduler",), environment=env),
            AirflowProcess("dag-processor", home, ("airflow", "dag"), args=("dag-processor",), environment=env),
            AirflowProcess("triggerer", home, ("airflow", "triggerer"), args=("triggerer",), environment=env),
        ]
        for name in WORKERS:
            processes.append(self.worker(name))
        return processes

    def worker(self, name: str) -> AirflowProcess:
        return AirflowProcess(
            name,
            self.folder / name,
            ("celery", f"{name}@ragloop"),
            args=("celery", "worker", "--celery-hostname", f"{name}@ragloop", "--concurrency", "2"),
            environment=self.worker_env(name),
        )

    def services(self) -> list[Service]:
        return [self.postgres(), self.redis(), self.s3(), *self.weaviate_nodes(), *self.airflow_processes()]

    # --- configuration -------------------------------------------------------------------------

    def write_config(self) -> Path:
        """The cluster's sources.yaml: the project's, staged on S3, replicated three times."""
        base = yaml.safe_load((self.root / "include" / "sources.yaml").read_text()) or {}
        base.update(
            {
                "collection": COLLECTION,
                "staging": "s3://ragloop-staging/staging",
                "staging_conn_id": S3_CONN_ID,
                "replication": {"factor": len(WEAVIATE_NODES), "consistency": "QUORUM"},
            }
        )
        self.config_path.write_text(
            "# Written by `ragloop cluster start` from include/sources.yaml: staging on the cluster's S3,\n"
            "# the collection replicated on its three Weaviate nodes.\n" + yaml.safe_dump(base, sort_keys=False)
        )
        return self.config_path

    # --- commands ------------------------------------------------------------------------------

    def run_airflow(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [_airflow_bin(), *args], env=self.control_env(), capture_output=True, text=True, timeout=timeout, cwd=self.folder
        )
        if result.returncode != 0:
            raise ClusterError(
                f"`airflow {' '.join(args)}` failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
            )
        return result.stdout

    def start(self, progress: Callable[[str], None] = print) -> dict:
        self.settings(create=True)
        self.write_config()
        started = time.monotonic()
        for service in (self.postgres(), self.redis()):
            progress(service.start(progress))
        s3 = self.s3()
        progress(s3.start(progress, timeout=180))
        self.start_weaviate(progress)
        progress("airflow: db migrate")
        (self.folder / "airflow").mkdir(parents=True, exist_ok=True)
        self.run_airflow("db", "migrate", timeout=600)
        for process in self.airflow_processes():
            progress(process.start(progress, timeout=240))
        self.wait_for_workers(progress)
        return {"seconds": round(time.monotonic() - started, 1), **self.status()}

    def start_weaviate(self, progress: Callable[[str], None], timeout: float = 180.0) -> None:
        nodes = self.weaviate_nodes()
        for node in nodes:
            pid = node.start_background()
            progress(f"{node.name}: starting (pid {pid}) at {node.url}")
        for node in nodes:
            node.wait_ready(timeout)
        self.wait_weaviate_cluster(timeout)
        progress(f"weaviate: {len(nodes)} nodes ready and joined")

    def wait_weaviate_cluster(self, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        seen: Any = None
        while time.monotonic() < deadline:
            seen = self.weaviate_nodes_status()
            if seen and all(entry.get("status") == "HEALTHY" for entry in seen.values()) and len(seen) == len(WEAVIATE_NODES):
                return seen
            time.sleep(1)
        raise ClusterError(f"the Weaviate nodes did not all report HEALTHY within {timeout:.0f} s: {seen}")

    def weaviate_nodes_status(self, via: WeaviateNode | None = None) -> dict[str, dict]:
        """Each node's status and its objects per collection (`/v1/nodes?output=verbose`), asked of
        one live node: the counts each node holds itself, not a quorum answer."""
        for node in [via] if via else self.weaviate_nodes():
            if not node.ready():
                continue
            try:
                with urllib.request.urlopen(f"{node.url}/v1/nodes?output=verbose", timeout=10) as response:
                    body = json.loads(response.read())
            except (urllib.error.URLError, OSError, ValueError):
                continue
            result = {}
            for entry in body.get("nodes", []):
                counts: dict[str, int] = {}
                for shard in entry.get("shards") or []:
                    counts[shard["class"]] = counts.get(shard["class"], 0) + int(shard.get("objectCount", 0))
                result[entry["name"]] = {"status": entry.get("status"), "objects": counts}
            return result
        return {}

    def wait_for_workers(self, progress: Callable[[str], None], timeout: float = 180.0) -> None:
        """Both Celery workers answer a ping through the broker."""
        deadline = time.monotonic() + timeout
        answered: set[str] = set()
        while time.monotonic() < deadline:
            answered = self.ping_workers()
            if answered >= {f"{name}@ragloop" for name in WORKERS}:
                progress(f"celery: workers {', '.join(sorted(answered))} answer")
                return
            time.sleep(2)
        raise ClusterError(f"Celery workers did not answer within {timeout:.0f} s (answered: {sorted(answered) or 'none'})")

    def ping_workers(self) -> set[str]:
        from celery import Celery

        app = Celery(broker=f"redis://127.0.0.1:{self.settings()['redis_port']}/0")
        try:
            replies = app.control.ping(timeout=2) or []
        except Exception:  # noqa: BLE001 - a broker that is not up yet answers nobody
            return set()
        finally:
            app.close()
        return {name for reply in replies for name in reply}

    def stop(self, progress: Callable[[str], None] = print) -> list[str]:
        if not self.state_file.exists():
            return ["no cluster under " + str(self.folder)]
        messages = []
        for service in reversed(self.services()):
            try:
                message = service.stop()
            except Exception as err:  # noqa: BLE001 - stop the others all the same, then say what failed
                message = f"{service.name}: stop failed: {err}"
            progress(message)
            messages.append(message)
        return messages

    def status(self) -> dict:
        if not self.state_file.exists():
            return {"running": False, "folder": str(self.folder), "components": {}}
        components = {}
        for service in self.services():
            pid = service.pid()
            components[service.name] = {"pid": pid, "ready": bool(pid) and service.ready(), "log": str(service.log_file)}
        return {
            "running": any(c["pid"] for c in components.values()),
            "folder": str(self.folder),
            "api_url": self.api_url,
            "config": str(self.config_path),
            "components": components,
            "weaviate_nodes": self.weaviate_nodes_status(),
        }

    # --- the REST API --------------------------------------------------------------------------

    def token(self) -> str:
        passwords = json.loads(self.passwords_file.read_text())
        request = urllib.request.Request(
            f"{self.api_url}/auth/token",
            data=json.dumps({"username": ADMIN, "password": passwords[ADMIN]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.loads(response.read())["access_token"]

    def api(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.api_url}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"content-type": "application/json", "authorization": f"Bearer {token or self.token()}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            raise ClusterError(f"{method} {path}: {err.code} {err.read()[:2000]!r}") from None

    def ragloop(self, *args: str, timeout: float = 600, local_mode: bool = False) -> subprocess.CompletedProcess:
        """A `ragloop` command against the cluster (its connections, config and metadata DB).
        `local_mode`: the plain local mode instead (dag.test() on a SQLite metadata DB of its own
        under `.ragloop/cluster/local-mode/`, staging as its config says) with only the Weaviate
        connection of the cluster: the reference the drills and the bench compare with. Its runs
        are then invisible to the cluster's scheduler."""
        ragloop_bin = Path(sys.executable).with_name("ragloop")
        env = self.airflow_env(self.folder / "cli")
        if local_mode:
            env = {k: v for k, v in env.items() if not k.startswith(("AIRFLOW", "RAGLOOP_"))}
            env["AIRFLOW_CONN_WEAVIATE_DEFAULT"] = self.connections()["AIRFLOW_CONN_WEAVIATE_DEFAULT"]
            env["RAGLOOP_STATE_DIR"] = str(self.folder / "local-mode")
            env["RAGLOOP_PROJECT_DIR"] = str(self.root)
        return subprocess.run(
            [str(ragloop_bin) if ragloop_bin.exists() else "ragloop", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
