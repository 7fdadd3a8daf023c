"""The servers of `ragloop cluster`: each one a process in a process group of its own, with a pid
file, a log and a data folder under `.ragloop/cluster/<name>/`, listening on 127.0.0.1 only.

Stopping signals only the process group whose leader's command line carries the markers we
started it with (see `ragloop.local.processes.ManagedProcess`): never a process ragloop did not start.

Over 450 lines on purpose: one small class per server (Postgres, Redis, SeaweedFS, a Weaviate
node, an Airflow process), each its command line, readiness check and stop, which read best side
by side; splitting them would scatter the one lifecycle they share.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

from ragloop.local.cluster.errors import ClusterError
from ragloop.local.processes import ManagedProcess
from ragloop.local.weaviate_local import port_is_free

POSTGRES_BIN = Path(os.environ.get("RAGLOOP_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
SERVICE_USER = "ragloop"  # Postgres refuses to run as root: when we are root, its processes run as this user


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Where the kernel picks the local port of every outgoing connection (Linux's default, when
# /proc does not say). A listening port inside it that a node gives up when it is killed can be
# taken by any client's connection before the node restarts: weaviate-3 once failed to rebind its
# Raft RPC port after a drill's SIGKILL. The cluster's ports are chosen outside it.
LINUX_EPHEMERAL_PORTS = (32768, 60999)
LOWEST_CLUSTER_PORT = 20000  # below: the well-known and registered ports services default to


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (inclusive)."""
    try:
        low, high = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return LINUX_EPHEMERAL_PORTS
    return low, high


def free_ports(count: int, offsets: tuple[int, ...] = (0,), taken: set[int] | None = None) -> list[int]:
    """`count` free loopback ports p such that p + each offset is free too (Weaviate wants its
    data port next to its gossip port, SeaweedFS its gRPC port at +10000), all outside the
    kernel's ephemeral range: a port stays ours while its server is down and restarting."""
    taken = set(taken or ())
    low, high = ephemeral_port_range()
    candidates = [
        p for p in range(LOWEST_CLUSTER_PORT, 65536 - max(offsets)) if all(not low <= p + offset <= high for offset in offsets)
    ]
    if not candidates:
        raise ClusterError(
            f"no port outside the ephemeral range {low}-{high} (net.ipv4.ip_local_port_range) "
            f"from {LOWEST_CLUSTER_PORT} up: narrow that range to run the cluster"
        )
    found: list[int] = []
    for _ in range(2000):
        if len(found) == count:
            return found
        base = random.choice(candidates)
        wanted = [base + offset for offset in offsets]
        if any(p in taken for p in wanted) or not all(port_is_free(p) for p in wanted):
            continue
        taken.update(wanted)
        found.append(base)
    raise ClusterError(f"could not find {count} free ports on 127.0.0.1")


def service_user() -> tuple[int, int] | None:
    """(uid, gid) to run Postgres as when we are root: the `ragloop` system user, created once."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"Postgres cannot run as root and creating the system user {SERVICE_USER!r} failed: {result.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


class ServiceProcess(ManagedProcess):
    """A `ManagedProcess` that can also be signalled directly or killed at once (the drills)."""

    def signal_leader(self, sig: int) -> int | None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, sig)
        return pid

    def kill_now(self) -> int | None:
        """SIGKILL the whole group at once (a drill: a machine that dies), without waiting politely."""
        pid = self.pid()
        if pid is None:
            return None
        os.killpg(pid, signal.SIGKILL)
        self.wait_for_group_exit(pid, 15)
        self.alive(pid)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def stop_with(self, sig: int, timeout: float) -> int | None:
        """Send `sig` to the leader only (Postgres: SIGINT is its fast shutdown, and its children
        must hear it from the postmaster), wait for the group, then the usual group stop."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        os.kill(pid, sig)
        self.wait_for_group_exit(pid, timeout)
        self.stop(timeout=10)  # whatever is left of the group; removes the pid file
        return pid


@dataclass
class Service:
    """One server of the cluster. Subclasses say how to start it and when it is ready."""

    name: str
    folder: Path
    markers: tuple[str, ...]
    stop_timeout: float = 30.0
    _process: ServiceProcess | None = field(default=None, repr=False)

    @property
    def process(self) -> ServiceProcess:
        if self._process is None:
            self._process = ServiceProcess(self.folder / f"{self.name}.pid", self.folder / f"{self.name}.log", self.markers)
        return self._process

    @property
    def log_file(self) -> Path:
        return self.process.log_file

    def pid(self) -> int | None:
        return self.process.pid()

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}

    def prepare(self, progress: Callable[[str], None]) -> None:
        """One-time set-up of the data folder."""

    def ready(self) -> bool:
        return True

    def user(self) -> tuple[int, int] | None:
        return None

    def start(self, progress: Callable[[str], None], timeout: float = 120.0) -> str:
        if self.pid():
            return f"{self.name}: already running (pid {self.pid()})"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prepare(progress)
        pid = self.process.start(self.command(), env=self.env(), cwd=self.folder, user=self.user())
        self.wait_ready(timeout)
        return f"{self.name}: started (pid {pid})"

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            code = self.process.exit_code()
            if code is not None or (self.process._popen is None and not self.pid()):
                self.process.pid_file.unlink(missing_ok=True)
                raise ClusterError(
                    f"{self.name} exited (code {code}) before it was ready. Last lines of {self.log_file}:\n{self.process.log_tail()}"
                )
            time.sleep(0.5)
        raise ClusterError(
            f"{self.name} was not ready within {timeout:.0f} s. Last lines of {self.log_file}:\n{self.process.log_tail()}"
        )

    def stop(self) -> str:
        pid = self.process.stop(timeout=self.stop_timeout)
        return f"{self.name}: stopped (pid {pid})" if pid else f"{self.name}: not running"


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass
class Postgres(Service):
    port: int = 0
    databases: tuple[str, ...] = ("airflow", "ragloop_runs")
    superuser: str = SERVICE_USER

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    def user(self) -> tuple[int, int] | None:
        return service_user()

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def prepare(self, progress: Callable[[str], None]) -> None:
        user = self.user()
        if user:
            # The user must reach its folders: every parent needs search permission for others.
            for parent in [self.folder, *self.folder.parents]:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    raise ClusterError(
                        f"Postgres runs as the user {SERVICE_USER!r}, which cannot enter {parent} (mode {oct(mode & 0o777)}); "
                        f"run `chmod o+x {parent}` or put the project elsewhere"
                    )
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if user:
                for path in (self.folder, self.data_dir, self.socket_dir):
                    os.chown(path, *user)
            progress(f"postgres: initdb {self.data_dir}")
            result = subprocess.run(
                [str(POSTGRES_BIN / "initdb"), "-D", str(self.data_dir), "-U", self.superuser, "--auth=trust", "-E", "UTF8"],
                capture_output=True,
                text=True,
                user=user[0] if user else None,
                group=user[1] if user else None,
                extra_groups=[] if user else None,
                cwd=self.folder,
            )
            if result.returncode != 0:
                raise ClusterError(f"initdb {self.data_dir} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        if user:
            for path in (self.folder, self.socket_dir):
                os.chown(path, *user)
            log = self.log_file
            log.touch()
            os.chown(log, *user)

    def command(self) -> list[str]:
        return [
            str(POSTGRES_BIN / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.socket_dir),
            "-c",
            "max_connections=200",
            "-c",
            "fsync=off",  # a demo cluster on one disk; durability across a machine crash is not what it shows
        ]

    def ready(self) -> bool:
        result = subprocess.run(
            [str(POSTGRES_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True, text=True
        )
        return result.returncode == 0

    def start(self, progress: Callable[[str], None], timeout: float = 120.0) -> str:
        message = super().start(progress, timeout)
        self.create_databases()
        return message

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(POSTGRES_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.superuser,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ClusterError(f"psql on 127.0.0.1:{self.port}/{database} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def create_databases(self) -> None:
        existing = set(self.psql("SELECT datname FROM pg_database").split())
        for name in self.databases:
            if name not in existing:
                self.psql(f'CREATE DATABASE "{name}"')

    def stop(self) -> str:
        pid = self.process.stop_with(signal.SIGINT, timeout=self.stop_timeout)  # fast shutdown
        return f"{self.name}: stopped (pid {pid})" if pid else f"{self.name}: not running"


# --- Redis --------------------------------------------------------------------------------------


@dataclass
class Redis(Service):
    port: int = 0

    def command(self) -> list[str]:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(server).exists():
            raise ClusterError("redis-server is not installed: `apt-get install redis-server` (the Celery broker)")
        return [
            server,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


# --- SeaweedFS (S3) -----------------------------------------------------------------------------


@dataclass
class SeaweedS3(Service):
    master_port: int = 0
    volume_port: int = 0
    filer_port: int = 0
    s3_port: int = 0
    bucket: str = "ragloop-staging"
    stop_timeout: float = 60.0  # it takes more than 10 s to stop after SIGTERM

    def command(self) -> list[str]:
        from ragloop.local.cluster.seaweedfs import ensure_binary

        weed = ensure_binary()
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            str(weed),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            f"-master.port={self.master_port}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={self.volume_port}",
            "-volume.max=50",
            "-filer",
            f"-filer.port={self.filer_port}",
            "-s3",
            f"-s3.port={self.s3_port}",
        ]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/", timeout=2) as response:
                return response.status < 500
        except urllib.error.HTTPError as err:
            return err.code < 500
        except (urllib.error.URLError, OSError):
            return False

    def ensure_bucket(self, timeout: float = 60.0) -> None:
        """Create the staging bucket (a plain PUT; idempotent). The S3 gateway answers before its
        filer and volume servers are up, so this retries until the bucket exists."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"{self.endpoint_url}/{self.bucket}", method="PUT")
            try:
                with urllib.request.urlopen(request, timeout=10):
                    return
            except urllib.error.HTTPError as err:
                body = err.read().decode(errors="replace")
                if "BucketAlreadyExists" in body or "BucketAlreadyOwnedByYou" in body:
                    return
                last = f"{err.code} {body[:300]}"
            except (urllib.error.URLError, OSError) as err:
                last = str(err)
            time.sleep(1)
        raise ClusterError(f"SeaweedFS S3 at {self.endpoint_url}: could not create bucket {self.bucket!r}: {last}")

    def start(self, progress: Callable[[str], None], timeout: float = 120.0) -> str:
        message = super().start(progress, timeout)
        self.ensure_bucket()
        return message


# --- Weaviate nodes -----------------------------------------------------------------------------


@dataclass
class WeaviateNode(Service):
    """One node of a Weaviate cluster on loopback: CLUSTER_IN_LOCALHOST, its own hostname and
    ports; CLUSTER_JOIN lists every node's gossip port and RAFT_JOIN every node's name:raft port."""

    hostname: str = ""
    http_port: int = 0
    grpc_port: int = 0
    gossip_port: int = 0  # data port = gossip + 1
    raft_port: int = 0  # internal RPC port = raft + 1
    peers: tuple[WeaviateNode, ...] = ()
    stop_timeout: float = 60.0

    def command(self) -> list[str]:
        from ragloop.local.weaviate_local import ensure_binary

        return [str(ensure_binary()), "--host", "127.0.0.1", "--port", str(self.http_port), "--scheme", "http"]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLUSTER_", "RAFT_", "PERSISTENCE_", "AIRFLOW"))}
        everyone = self.peers or (self,)
        env.update(
            {
                "DISABLE_TELEMETRY": "true",
                "PERSISTENCE_DATA_PATH": str(self.folder / "data"),
                "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
                "DEFAULT_VECTORIZER_MODULE": "none",
                "ENABLE_MODULES": "",
                "CLUSTER_HOSTNAME": self.hostname,
                "CLUSTER_IN_LOCALHOST": "true",
                "CLUSTER_BIND_ADDR": "127.0.0.1",
                "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
                "CLUSTER_GOSSIP_BIND_PORT": str(self.gossip_port),
                "CLUSTER_DATA_BIND_PORT": str(self.gossip_port + 1),
                "CLUSTER_JOIN": ",".join(f"127.0.0.1:{node.gossip_port}" for node in everyone),
                "RAFT_PORT": str(self.raft_port),
                "RAFT_INTERNAL_RPC_PORT": str(self.raft_port + 1),
                "RAFT_JOIN": ",".join(f"{node.hostname}:{node.raft_port}" for node in everyone),
                "RAFT_BOOTSTRAP_EXPECT": str(len(everyone)),
                "GRPC_PORT": str(self.grpc_port),
                "LOG_FORMAT": "text",
                "QUERY_DEFAULTS_LIMIT": "25",
                "GO_PROFILING_DISABLE": "true",  # its debug listener would take port 6060 on every node
            }
        )
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1/.well-known/ready", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def statistics(self) -> list[dict]:
        """The cluster's Raft view from this node: each node's name, status, state and leader."""
        with urllib.request.urlopen(f"{self.url}/v1/cluster/statistics", timeout=10) as response:
            return json.loads(response.read())["statistics"]

    def node_statuses(self) -> dict[str, str]:
        """Each node's status as this node sees it (HEALTHY, UNAVAILABLE, ...)."""
        with urllib.request.urlopen(f"{self.url}/v1/nodes", timeout=10) as response:
            return {entry["name"]: entry.get("status", "") for entry in json.loads(response.read()).get("nodes", [])}

    def local_count(self, collection: str) -> int:
        """The objects of `collection` this node serves itself: a cursor read through this node at
        consistency ONE, which Weaviate answers from the local replica."""
        from weaviate.classes.config import ConsistencyLevel

        from ragloop.index import connect_local

        with connect_local("127.0.0.1", self.http_port, self.grpc_port) as client:
            handle = client.collections.use(collection).with_consistency_level(ConsistencyLevel.ONE)
            return sum(1 for _ in handle.iterator(return_properties=[]))

    def start_background(self) -> int | None:
        """Start without waiting: the nodes of a new cluster wait for each other's Raft votes."""
        if self.pid():
            return self.pid()
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        return self.process.start(self.command(), env=self.env(), cwd=self.folder)
