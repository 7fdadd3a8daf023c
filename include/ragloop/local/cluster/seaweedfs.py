"""The SeaweedFS binary (`weed`): the S3-compatible object store `make cluster` stages on.

Built once from the Go module cache into a per-user cache keyed by version (ragloop.local.cluster.gobuild), like the Weaviate
binary (`ragloop.local.weaviate_local`): `go mod download` fetches the pinned module, the module folder
is copied somewhere writable and `CGO_ENABLED=0 go build ./weed` runs inside it (`go install
module@version` refuses it: its go.mod has a replace directive). About 5 minutes on 2 cores, a
~230 MB binary. `RAGLOOP_SEAWEEDFS_BIN` names an existing binary instead.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable

from ragloop.local.cluster.gobuild import GoProgram, log
from ragloop.local.cluster.errors import ClusterError

SEAWEEDFS_MODULE = "github.com/seaweedfs/seaweedfs"
SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
BINARY_ENV = "RAGLOOP_SEAWEEDFS_BIN"


class SeaweedFSBinaryMissing(ClusterError):
    pass


SEAWEEDFS = GoProgram(
    name="SeaweedFS",
    module=SEAWEEDFS_MODULE,
    version=SEAWEEDFS_VERSION,
    package="./weed",
    binary="weed",
    cache_folder="seaweedfs",
    binary_env=BINARY_ENV,
    error=SeaweedFSBinaryMissing,
    build_time="5 minutes",
)


def ensure_binary(progress: Callable[[str], None] = log.info) -> Path:
    """A runnable `weed`, built from the Go module proxy when it is not cached yet."""
    return SEAWEEDFS.ensure_binary(progress)


if __name__ == "__main__":  # `python -m ragloop.local.cluster.seaweedfs`: build once (make seaweedfs)
    print(ensure_binary(progress=print))
