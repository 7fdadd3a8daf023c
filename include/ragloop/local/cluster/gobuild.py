"""Programs ragloop builds once from the Go module proxy (SeaweedFS, gitleaks), cached per user and
version.

`go mod download -json` fetches the pinned module, its folder (read-only in the module cache) is
copied somewhere writable, and `CGO_ENABLED=0 go build` runs inside it, niced so a build never
starves the tests beside it. The result is renamed into place, so an interrupted build never leaves
a half binary. An environment variable may name an existing binary instead (e.g. one an image's
build stage made); it is then checked, never silently replaced by a build.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

from ragloop.errors import RagloopError
from ragloop.paths import cache_dir

log = logging.getLogger(__name__)

GO_FALLBACK = Path("/usr/local/go/bin/go")  # where Go's release tarball installs it


@dataclass(frozen=True)
class GoProgram:
    name: str  # what messages call it ("SeaweedFS")
    module: str  # the Go module, e.g. github.com/seaweedfs/seaweedfs
    version: str  # the pinned module version
    package: str  # what `go build` builds inside the module folder, e.g. "./weed" or "."
    binary: str  # the built file's name
    cache_folder: str  # its folder in the user cache, one subfolder per version
    binary_env: str  # the variable naming an existing binary instead
    error: type[RagloopError]  # what a failure raises
    ldflags: str = ""
    build_time: str = "a few minutes"  # for the progress line

    def cached_binary_path(self) -> Path:
        return cache_dir() / self.cache_folder / self.version / self.binary

    def _go(self) -> str:
        go = shutil.which("go") or (str(GO_FALLBACK) if GO_FALLBACK.exists() else None)
        if not go:
            raise self.error(
                f"No {self.name} binary at {self.cached_binary_path()} and `go` is not on PATH: install Go (1.24 or newer) "
                f"so ragloop can build it once, or set {self.binary_env}=/path/to/{self.binary}"
            )
        return go

    def _env(self, go: str) -> dict[str, str]:
        return {**os.environ, "CGO_ENABLED": "0", "PATH": os.pathsep.join([str(Path(go).parent), os.environ.get("PATH", "")])}

    def module_dir(self) -> Path:
        """The pinned module's folder in the Go module cache, downloaded when absent."""
        go = self._go()
        download = subprocess.run(
            [go, "mod", "download", "-json", f"{self.module}@{self.version}"], env=self._env(go), capture_output=True, text=True
        )
        if download.returncode != 0:
            raise self.error(f"`go mod download {self.module}@{self.version}` failed:\n{download.stderr[-3000:]}")
        return Path(json.loads(download.stdout)["Dir"])

    def ensure_binary(self, progress: Callable[[str], None] = log.info) -> Path:
        """A runnable binary: the one the variable names, the cached one, or a new build."""
        override = os.environ.get(self.binary_env)
        if override:
            path = Path(override)
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise self.error(f"{self.binary_env}={override} is not an executable file")
            return path
        target = self.cached_binary_path()
        if target.is_file() and os.access(target, os.X_OK):
            return target
        go = self._go()
        source_dir = self.module_dir()
        target.parent.mkdir(parents=True, exist_ok=True)
        progress(f"Building {self.name} {self.version} with `go build` (once; about {self.build_time} on 2 cores)...")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
            source = Path(work) / "src"
            shutil.copytree(source_dir, source)
            for folder, _, files in os.walk(source):
                os.chmod(folder, 0o755)
                for name in files:
                    os.chmod(Path(folder) / name, 0o644)
            built = Path(work) / self.binary
            ldflags = ["-ldflags", self.ldflags] if self.ldflags else []
            result = subprocess.run(
                ["nice", "-n", "10", go, "build", *ldflags, "-o", str(built), self.package],
                cwd=source,
                env=self._env(go),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0 or not built.exists():
                raise self.error(
                    f"`go build {self.package}` of {self.name} failed ({result.returncode}):\n{result.stderr[-4000:]}"
                )
            os.replace(built, target)
        progress(f"Built {target} in {time.monotonic() - started:.0f} s")
        return target
