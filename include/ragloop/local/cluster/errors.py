"""The cluster's one error type, below every cluster module (the services and the binaries they
build both raise it)."""

from __future__ import annotations

from ragloop.errors import RagloopError


class ClusterError(RagloopError):
    """A cluster component could not be started, reached or stopped; the message names it."""
