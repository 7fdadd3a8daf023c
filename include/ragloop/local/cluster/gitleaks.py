"""The gitleaks binary: the maintained secret rule set the grading checks and ingest scan with.

Built once from the Go module proxy into a per-user cache keyed by version, like the SeaweedFS
binary (`ragloop.local.cluster.seaweedfs`): `go mod download` fetches the pinned module, the module
folder is copied somewhere writable and `CGO_ENABLED=0 go build .` runs inside it. About a minute
on 2 cores, a ~20 MB static binary. `RAGLOOP_GITLEAKS_BIN` names an existing binary instead.

Local operations only: core code never imports this module; it is handed the binary's path
(`ragloop.grading.secrets.GitleaksScanner`), so the Astro image can ship the binary its build
stage made (see Dockerfile) and set the same variable.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable

from ragloop.local.cluster.gobuild import GoProgram, log
from ragloop.errors import RagloopError
from ragloop.grading.secrets import GITLEAKS_BIN_ENV as BINARY_ENV
from ragloop.grading.secrets import GITLEAKS_VERSION

GITLEAKS_MODULE = "github.com/zricethezav/gitleaks/v8"


class GitleaksBinaryMissing(RagloopError):
    """No runnable gitleaks binary and it could not be built; the message says why."""


GITLEAKS = GoProgram(
    name="gitleaks",
    module=GITLEAKS_MODULE,
    version=GITLEAKS_VERSION,
    package=".",
    binary="gitleaks",
    cache_folder="gitleaks",
    binary_env=BINARY_ENV,
    error=GitleaksBinaryMissing,
    # The version string the binary reports (`gitleaks version`), as upstream's release build sets it.
    ldflags=f"-X {GITLEAKS_MODULE}/version.Version={GITLEAKS_VERSION}",
    build_time="a minute",
)


def module_dir() -> Path:
    """The pinned gitleaks module's folder in the Go module cache (downloaded when absent): the
    build reads it, and so does bench/leaks.py (its rules' own true-positive samples)."""
    return GITLEAKS.module_dir()


def ensure_binary(progress: Callable[[str], None] = log.info) -> Path:
    """A runnable gitleaks, built from the Go module proxy when it is not cached yet."""
    return GITLEAKS.ensure_binary(progress)


if __name__ == "__main__":  # `python -m ragloop.local.cluster.gitleaks`: build once (make gitleaks)
    print(ensure_binary(progress=print))
