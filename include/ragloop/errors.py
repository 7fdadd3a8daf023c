"""`RagloopError`, the one root of the errors ragloop raises on purpose: `ragloop` (cli.main)
catches it and prints its message, which names what failed and what to do; anything else is a
bug and keeps its traceback."""

from __future__ import annotations


class RagloopError(RuntimeError):
    """An expected failure, with a message meant for the person running ragloop. `exit_code` is
    what the CLI exits with."""

    exit_code = 1


class IngestError(RagloopError):
    """An ingest run did not cover everything; the message says which sources and why."""
