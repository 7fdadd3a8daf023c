"""Starts, stops and inspects a local Weaviate server binary: the no-Docker mode.

The server version is pinned here and nowhere else (the Docker compose file is checked against it
by a test). The binary is built once with `go install` into a per-user cache keyed by version, so
every clone and CI reuse it; `RAGLOOP_WEAVIATE_BIN` names an existing binary instead.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

from ragloop.errors import RagloopError
from ragloop.paths import cache_dir
from ragloop.local.processes import ManagedProcess

log = logging.getLogger(__name__)

WEAVIATE_VERSION = "1.39.0"
WEAVIATE_MODULE = "github.com/weaviate/weaviate/cmd/weaviate-server"
BINARY_ENV = "RAGLOOP_WEAVIATE_BIN"
CLUSTER_HOSTNAME = "ragloop-node"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

# Defaults chosen to stay clear of Airflow's own ports (8080 API server, 8793/8794 log servers).
DEFAULT_HTTP_PORT = 18080
DEFAULT_GRPC_PORT = 50051
DEFAULT_CLUSTER_PORTS = {"gossip_port": 17946, "data_port": 17947, "raft_port": 18300, "raft_internal_rpc_port": 18301}


class LocalWeaviateError(RagloopError):
    """A local Weaviate problem with a message meant for the person at the terminal."""


class WeaviateBinaryMissing(LocalWeaviateError):
    pass


class PortInUse(LocalWeaviateError):
    pass


def cached_binary_path(version: str = WEAVIATE_VERSION) -> Path:
    return cache_dir() / "weaviate" / f"v{version}" / "weaviate-server"


def binary_path() -> Path:
    override = os.environ.get(BINARY_ENV)
    return Path(override) if override else cached_binary_path()


def _missing_binary_message(reason: str) -> str:
    return (
        f"No Weaviate server binary: {reason}.\n"
        "Three ways out:\n"
        f"  1. Install Go (1.24 or newer) and run this again: ragloop builds Weaviate v{WEAVIATE_VERSION} once "
        f"(about 4 minutes on 2 cores) into {cached_binary_path()}.\n"
        f"  2. Set {BINARY_ENV}=/path/to/weaviate-server to use a binary you already have.\n"
        "  3. Point the `weaviate_default` Airflow connection at a running Weaviate (for example the one "
        "`astro dev start` runs from docker-compose.override.yml); ragloop then starts nothing."
    )


def ensure_binary(progress: Callable[[str], None] = log.info) -> Path:
    """Return a runnable server binary, building it with `go install` if it is not cached yet."""
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise WeaviateBinaryMissing(_missing_binary_message(f"{BINARY_ENV}={override} is not an executable file"))
        return path
    target = cached_binary_path()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if not go:
        raise WeaviateBinaryMissing(_missing_binary_message(f"{target} does not exist and `go` is not on PATH"))
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"Building Weaviate v{WEAVIATE_VERSION} with `go install` (once; about 4 minutes on 2 cores)...")
    started = time.monotonic()
    # Build into a private folder and rename, so an interrupted build never leaves a half binary.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as gobin:
        env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0", "GOFLAGS": "-tags=netgo"}
        result = subprocess.run(
            [go, "install", f"{WEAVIATE_MODULE}@v{WEAVIATE_VERSION}"], env=env, capture_output=True, text=True
        )
        built = Path(gobin) / "weaviate-server"
        if result.returncode != 0 or not built.exists():
            raise LocalWeaviateError(
                f"`go install {WEAVIATE_MODULE}@v{WEAVIATE_VERSION}` failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        os.replace(built, target)
    progress(f"Built {target} in {time.monotonic() - started:.0f} s")
    return target


def port_is_free(port: int) -> bool:
    """True when nothing listens on `port`. Checks the wildcard address because Weaviate's gRPC and
    cluster listeners bind all interfaces, so a listener on any address collides."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like the servers themselves (Go sets SO_REUSEADDR): connections in TIME_WAIT from a
        # server that just stopped do not make its port busy for a restart.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http_json(url: str, timeout: float = 2.0) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            return response.status, (json.loads(body) if body else None)
    except urllib.error.HTTPError as err:
        return err.code, None


@dataclass
class LocalWeaviate:
    """One local Weaviate server: its ports, data folder and the pid file of the process we started."""

    state_dir: Path
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    gossip_port: int = DEFAULT_CLUSTER_PORTS["gossip_port"]
    data_port: int = DEFAULT_CLUSTER_PORTS["data_port"]
    raft_port: int = DEFAULT_CLUSTER_PORTS["raft_port"]
    raft_internal_rpc_port: int = DEFAULT_CLUSTER_PORTS["raft_internal_rpc_port"]
    host: str = "127.0.0.1"
    _process: ManagedProcess | None = field(default=None, repr=False, compare=False)

    @classmethod
    def with_free_ports(cls, state_dir: Path) -> LocalWeaviate:
        """A server on fresh loopback ports: for tests and for running beside another instance."""
        ports: set[int] = set()
        while len(ports) < 6:
            ports.add(free_port())
        http, grpc, gossip, data, raft, rpc = sorted(ports)
        return cls(state_dir, http, grpc, gossip, data, raft, rpc)

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "weaviate.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "weaviate.pid"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def ports(self) -> dict[str, int]:
        return {
            "HTTP": self.http_port,
            "gRPC": self.grpc_port,
            "cluster gossip": self.gossip_port,
            "cluster data": self.data_port,
            "Raft": self.raft_port,
            "Raft internal RPC": self.raft_internal_rpc_port,
        }

    def server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLUSTER_", "RAFT_", "PERSISTENCE_"))}
        env.update(
            {
                "DISABLE_TELEMETRY": "true",
                "PERSISTENCE_DATA_PATH": str(self.data_dir),
                "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
                "DEFAULT_VECTORIZER_MODULE": "none",
                "ENABLE_MODULES": "",
                "CLUSTER_HOSTNAME": CLUSTER_HOSTNAME,
                "CLUSTER_BIND_ADDR": "127.0.0.1",
                "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
                "CLUSTER_GOSSIP_BIND_PORT": str(self.gossip_port),
                "CLUSTER_DATA_BIND_PORT": str(self.data_port),
                "RAFT_PORT": str(self.raft_port),
                "RAFT_INTERNAL_RPC_PORT": str(self.raft_internal_rpc_port),
                "RAFT_BOOTSTRAP_EXPECT": "1",
                "RAFT_JOIN": f"{CLUSTER_HOSTNAME}:{self.raft_port}",
                "GRPC_PORT": str(self.grpc_port),
                "LOG_FORMAT": "text",
            }
        )
        return env

    # --- process bookkeeping -------------------------------------------------------------------

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            # Only a weaviate-server serving our port is ours; a recycled pid is someone else's.
            self._process = ManagedProcess(self.pid_file, self.log_file, markers=("weaviate-server", str(self.http_port)))
        return self._process

    def pid(self) -> int | None:
        return self.process.pid()

    def is_ready(self) -> bool:
        try:
            status, _ = _http_json(f"{self.url}/v1/.well-known/ready", timeout=1.0)
        except (urllib.error.URLError, OSError):
            return False
        return status == 200

    def meta(self) -> dict | None:
        try:
            status, body = _http_json(f"{self.url}/v1/meta")
        except (urllib.error.URLError, OSError):
            return None
        return body if status == 200 else None

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    # --- commands -------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0, progress: Callable[[str], None] = log.info) -> str:
        """Start the server and wait until it is ready. Idempotent: a running server is left alone."""
        running = self.pid()
        if running and self.is_ready():
            return f"Weaviate is already running (pid {running}) at {self.url}"
        if running:
            # Ours but not ready yet (a parallel start): wait for it rather than start a second one.
            self._wait_ready(running, timeout)
            return f"Weaviate is already running (pid {running}) at {self.url}"
        meta = self.meta()
        if meta is not None:
            return (
                f"A Weaviate not started by ragloop (version {meta.get('version')}) already answers at {self.url}; "
                "using it, nothing started"
            )
        for role, port in self.ports().items():
            if not port_is_free(port):
                raise PortInUse(
                    f"Port {port} (Weaviate {role}) is already in use by another process. Stop that process, or "
                    "choose other ports: the HTTP and gRPC ports come from the `weaviate_default` connection "
                    "(port, extra.grpc_port), the cluster ports from its extra.local_server."
                )
        binary = ensure_binary(progress)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        progress(f"Starting Weaviate v{WEAVIATE_VERSION} at {self.url} (data: {self.data_dir})")
        pid = self.process.start(
            [str(binary), "--host", self.host, "--port", str(self.http_port), "--scheme", "http"],
            env=self.server_env(),
            cwd=self.state_dir,
        )
        self._wait_ready(pid, timeout)
        return f"Weaviate v{WEAVIATE_VERSION} started (pid {pid}) at {self.url}"

    def _wait_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_ready():
                return
            code = self.process.exit_code()
            if code is not None:
                self.pid_file.unlink(missing_ok=True)
                raise LocalWeaviateError(
                    f"Weaviate exited with code {code} before it was ready. Last lines of {self.log_file}:\n{self.log_tail()}"
                )
            time.sleep(0.25)
        self.stop()
        raise LocalWeaviateError(
            f"Weaviate (pid {pid}) was not ready at {self.url} within {timeout:.0f} s; stopped it. "
            f"Last lines of {self.log_file}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 30.0) -> str:
        """Stop the server this project started (pid file), and wait until it has exited."""
        pid = self.process.stop(timeout)
        return f"Weaviate stopped (pid {pid})" if pid else "Weaviate is not running (no server started by ragloop)"

    def status(self) -> dict:
        """Version, address, data folder, pid and object counts per collection."""
        meta = self.meta()
        info: dict[str, Any] = {
            "running": meta is not None,
            "started_by_ragloop": self.pid() is not None,
            "pid": self.pid(),
            "url": self.url,
            "grpc_port": self.grpc_port,
            "data_dir": str(self.data_dir),
            "log_file": str(self.log_file),
            "version": meta.get("version") if meta else None,
            "pinned_version": WEAVIATE_VERSION,
            "collections": {},
        }
        if meta is not None:
            from ragloop.index import collection_counts, connect_local

            with connect_local(self.host, self.http_port, self.grpc_port) as client:
                info["collections"] = collection_counts(client)
        return info


def local_server_for(endpoint, state_dir: Path) -> LocalWeaviate:
    """The local server that serves `endpoint` (a parsed `weaviate_default` connection).

    Only a loopback endpoint has a local server; a remote one is managed elsewhere.
    """
    if endpoint.host not in LOOPBACK_HOSTS or endpoint.http_secure:
        raise LocalWeaviateError(
            f"The weaviate_default connection points at {endpoint.url}, not at a local server; "
            "ragloop starts and stops only a Weaviate on 127.0.0.1. Manage that one where it runs."
        )
    ports = {**DEFAULT_CLUSTER_PORTS, **dict(endpoint.local_server)}
    unknown = set(ports) - set(DEFAULT_CLUSTER_PORTS)
    if unknown:
        raise LocalWeaviateError(
            f"Unknown keys in weaviate_default extra.local_server: {', '.join(sorted(unknown))} "
            f"(expected {', '.join(DEFAULT_CLUSTER_PORTS)})"
        )
    return LocalWeaviate(state_dir, http_port=endpoint.http_port, grpc_port=endpoint.grpc_port, **ports)
