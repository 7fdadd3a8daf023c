"""The gitleaks binary: the maintained secret rule set the grading checks and ingest scan with.

Built once from the Go module proxy into a per-user cache keyed by version, like the SeaweedFS
binary (`ragloop.cluster.seaweedfs`): `go mod download` fetches the pinned module, the module
folder is copied somewhere writable and `CGO_ENABLED=0 go build .` runs inside it. About a minute
on 2 cores, a ~20 MB static binary. `RAGLOOP_GITLEAKS_BIN` names an existing binary instead.

Local operations only: core code never imports this module; it is handed the binary's path
(`ragloop.grading.secrets.GitleaksScanner`), so the Astro image can ship the binary its build
stage made (see Dockerfile) and set the same variable.
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

from ragloop.errors import RagloopError
from ragloop.grading.secrets import GITLEAKS_BIN_ENV as BINARY_ENV
from ragloop.grading.secrets import GITLEAKS_VERSION
from ragloop.localenv import cache_dir

log = logging.getLogger(__name__)

GITLEAKS_MODULE = "github.com/zricethezav/gitleaks/v8"


class GitleaksBinaryMissing(RagloopError):
    """No runnable gitleaks binary and it could not be built; the message says why."""


def cached_binary_path(version: str = GITLEAKS_VERSION) -> Path:
    return cache_dir() / "gitleaks" / version / "gitleaks"


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise GitleaksBinaryMissing(
            f"No gitleaks binary at {cached_binary_path()} and `go` is not on PATH: install Go (1.24 or newer) "
            f"so ragloop can build it once, or set {BINARY_ENV}=/path/to/gitleaks"
        )
    return go


def module_dir(progress: Callable[[str], None] = log.info) -> Path:
    """The pinned gitleaks module's folder in the Go module cache (downloaded when absent): the
    build reads it, and so does bench/leaks.py (its rules' own true-positive samples)."""
    go = _go()
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{GITLEAKS_MODULE}@{GITLEAKS_VERSION}"],
        env={**os.environ, "PATH": os.pathsep.join([str(Path(go).parent), os.environ.get("PATH", "")])},
        capture_output=True,
        text=True,
    )
    if download.returncode != 0:
        raise GitleaksBinaryMissing(f"`go mod download {GITLEAKS_MODULE}@{GITLEAKS_VERSION}` failed:\n{download.stderr[-3000:]}")
    return Path(json.loads(download.stdout)["Dir"])


def ensure_binary(progress: Callable[[str], None] = log.info) -> Path:
    """A runnable gitleaks, built from the Go module proxy when it is not cached yet."""
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise GitleaksBinaryMissing(f"{BINARY_ENV}={override} is not an executable file")
        return path
    target = cached_binary_path()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = _go()
    source_dir = module_dir(progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"Building gitleaks {GITLEAKS_VERSION} with `go build` (once; about a minute on 2 cores)...")
    started = time.monotonic()
    env = {**os.environ, "CGO_ENABLED": "0", "PATH": os.pathsep.join([str(Path(go).parent), os.environ.get("PATH", "")])}
    # Build in a private copy (the module cache is read-only) and rename the result into place,
    # so an interrupted build never leaves a half binary.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
        source = Path(work) / "src"
        shutil.copytree(source_dir, source)
        for folder, _, files in os.walk(source):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(Path(folder) / name, 0o644)
        built = Path(work) / "gitleaks"
        # The version string the binary reports (`gitleaks version`), as upstream's release build sets it.
        ldflags = f"-X {GITLEAKS_MODULE}/version.Version={GITLEAKS_VERSION}"
        result = subprocess.run(
            ["nice", "-n", "10", go, "build", "-ldflags", ldflags, "-o", str(built), "."],
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not built.exists():
            raise GitleaksBinaryMissing(f"`go build` of gitleaks failed ({result.returncode}):\n{result.stderr[-4000:]}")
        os.replace(built, target)
    progress(f"Built {target} in {time.monotonic() - started:.0f} s")
    return target


if __name__ == "__main__":  # `python -m ragloop.cluster.gitleaks`: build once (make gitleaks)
    print(ensure_binary(progress=print))
