"""The SeaweedFS binary (`weed`): the S3-compatible object store `make cluster` stages on.

Built once from the Go module cache into a per-user cache keyed by version, like the Weaviate
binary (`ragloop.weaviate_local`): `go mod download` fetches the pinned module, the module folder
is copied somewhere writable and `CGO_ENABLED=0 go build ./weed` runs inside it (`go install
module@version` refuses it: its go.mod has a replace directive). About 5 minutes on 2 cores, a
~230 MB binary. `RAGLOOP_SEAWEEDFS_BIN` names an existing binary instead.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from ragloop.cluster.services import ClusterError
from ragloop.localenv import cache_dir

log = logging.getLogger(__name__)

SEAWEEDFS_MODULE = "github.com/seaweedfs/seaweedfs"
SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
BINARY_ENV = "RAGLOOP_SEAWEEDFS_BIN"


class SeaweedFSBinaryMissing(ClusterError):
    pass


def cached_binary_path(version: str = SEAWEEDFS_VERSION) -> Path:
    return cache_dir() / "seaweedfs" / version / "weed"


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise SeaweedFSBinaryMissing(
            f"No SeaweedFS binary at {cached_binary_path()} and `go` is not on PATH: install Go (1.24 or newer) "
            f"so ragloop can build it once, or set {BINARY_ENV}=/path/to/weed"
        )
    return go


def ensure_binary(progress: Callable[[str], None] = log.info) -> Path:
    """A runnable `weed`, built from the Go module proxy when it is not cached yet."""
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise SeaweedFSBinaryMissing(f"{BINARY_ENV}={override} is not an executable file")
        return path
    target = cached_binary_path()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = _go()
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"Building SeaweedFS {SEAWEEDFS_VERSION} with `go build` (once; about 5 minutes on 2 cores)...")
    started = time.monotonic()
    env = {**os.environ, "CGO_ENABLED": "0", "PATH": os.pathsep.join([str(Path(go).parent), os.environ.get("PATH", "")])}
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{SEAWEEDFS_MODULE}@{SEAWEEDFS_VERSION}"], env=env, capture_output=True, text=True
    )
    if download.returncode != 0:
        raise SeaweedFSBinaryMissing(
            f"`go mod download {SEAWEEDFS_MODULE}@{SEAWEEDFS_VERSION}` failed:\n{download.stderr[-3000:]}"
        )
    module_dir = Path(json.loads(download.stdout)["Dir"])
    # Build in a private copy (the module cache is read-only) and rename the result into place,
    # so an interrupted build never leaves a half binary.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
        source = Path(work) / "src"
        shutil.copytree(module_dir, source)
        for folder, _, files in os.walk(source):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(Path(folder) / name, 0o644)
        built = Path(work) / "weed"
        result = subprocess.run(
            ["nice", "-n", "10", go, "build", "-o", str(built), "./weed"], cwd=source, env=env, capture_output=True, text=True
        )
        if result.returncode != 0 or not built.exists():
            raise SeaweedFSBinaryMissing(f"`go build ./weed` failed ({result.returncode}):\n{result.stderr[-4000:]}")
        os.replace(built, target)
    progress(f"Built {target} in {time.monotonic() - started:.0f} s")
    return target


if __name__ == "__main__":  # `python -m ragloop.cluster.seaweedfs`: build once (make seaweedfs)
    print(ensure_binary(progress=print))
