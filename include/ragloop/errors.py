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


# The connection errors are core (what a missing or unreadable connection means is known here);
# reading one goes through Airflow's secrets backends in ragloop.airflow.connections.
class ConnectionProblem(RagloopError):
    """A connection ragloop needs could not be had; the message names it and says what to do."""

    def __init__(self, conn_id: str, message: str):
        super().__init__(message)
        self.conn_id = conn_id


class ConnectionNotFound(ConnectionProblem, LookupError):
    """No secrets backend defines the connection: it is truly absent."""


class ConnectionUnreadable(ConnectionProblem):
    """A secrets backend failed while looking the connection up: it may well exist."""
