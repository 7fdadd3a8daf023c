"""Which database the runs live in: the Airflow connection `ragloop_runs_default` when it exists,
else a SQLite file under `.ragloop/`; and the run store's errors."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from ragloop.errors import ConnectionNotFound, ConnectionUnreadable, RagloopError
from ragloop.paths import state_dir

RUNS_CONN_ID = "ragloop_runs_default"


class RunStoreError(RagloopError):
    pass


class RunStoreUnavailable(RunStoreError):
    """The database cannot be reached or is locked, or the connection naming it cannot be read;
    nothing of the request was written. `conn_id` names that connection when it is the cause."""

    def __init__(self, message: str, conn_id: str | None = None):
        super().__init__(message)
        self.conn_id = conn_id


class RunNotFound(RunStoreError, LookupError):
    pass


def runs_database_url(conn_id: str = RUNS_CONN_ID) -> str:
    """The SQLAlchemy URL of the run store (see `runs_database`)."""
    return runs_database(conn_id)[0]


def runs_database(conn_id: str = RUNS_CONN_ID) -> tuple[str, bool]:
    """The SQLAlchemy URL of the run store, and whether the connection chose it: the Airflow
    connection when it is defined, else a SQLite file under the project's `.ragloop/`.

    Only a connection that is truly absent selects the SQLite file. One that exists but cannot
    be read (a secrets backend or the metadata DB failing) is an error naming it: on a worker, a
    fall-back to an empty local file would show the feedback DAG no good runs, and its write-back
    would then revoke every answer written back before.

    Connection types: `sqlite` (host = the file path), `postgres`, `mysql`; or any database by
    putting a full SQLAlchemy URL in the connection's extra as `sqlalchemy_url`.
    """
    from ragloop.airflow.connections import get_connection  # through Airflow's secrets backends

    try:
        conn = get_connection(conn_id)
    except ConnectionNotFound:
        return f"sqlite:///{state_dir() / 'runs.db'}", False
    except ConnectionUnreadable as err:
        raise RunStoreUnavailable(f"run store connection {conn_id!r} cannot be read: {err}", conn_id=conn_id) from None
    extra = conn.extra_dejson
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"]), True
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise RunStoreError(f"connection {conn_id!r} (sqlite) has no file path in its host")
        return f"sqlite:///{Path(path).expanduser()}", True
    drivers = {
        "postgres": "postgresql+psycopg2",
        "postgresql": "postgresql+psycopg2",
        "mysql": "mysql+mysqldb",
    }  # the drivers Airflow images ship
    if conn_type not in drivers:
        raise RunStoreError(
            f"connection {conn_id!r} has type {conn.conn_type!r}: use sqlite, postgres or mysql, or put a "
            "SQLAlchemy URL in its extra as sqlalchemy_url"
        )
    url = sa.URL.create(
        drivers[conn_type],
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False), True


def describe_runs_store(conn_id: str = RUNS_CONN_ID) -> str:
    """Which store the runs live in, password hidden, and whether the connection chose it (for
    reports: never raises, an unreadable connection is described as such)."""
    try:
        url, from_connection = runs_database(conn_id)
    except Exception as err:  # noqa: BLE001 - a description for doctor: any failure is the answer
        return f"unusable: {err}"
    return describe_database(url, from_connection, conn_id)


def describe_database(url: str, from_connection: bool, conn_id: str = RUNS_CONN_ID) -> str:
    """A run store's URL with its password hidden, and what chose it."""
    shown = sa.make_url(url).render_as_string(hide_password=True)
    return f"{shown} (connection {conn_id})" if from_connection else f"{shown} (default: no {conn_id} connection)"


def unavailable(err: Exception, url: sa.URL) -> RunStoreUnavailable:
    first_line = str(getattr(err, "orig", None) or err).splitlines()[0]
    return RunStoreUnavailable(f"run store {url.render_as_string(hide_password=True)} is unavailable: {first_line}")
