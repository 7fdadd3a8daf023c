"""Reading Airflow connections, the only place credentials and endpoints live.

We walk Airflow's secrets backends ourselves, in Airflow's order, instead of calling
`BaseHook.get_connection`: Airflow logs a backend that raises (a secrets manager that is down,
a metadata DB that cannot be reached) at debug level and goes on, so a connection that exists
but cannot be read comes out as "isn't defined". For ragloop that difference matters: an
absent `ragloop_runs_default` selects the documented local SQLite store, while an unreadable
one must stop the run (on a worker, a silent fall-back would show the feedback DAG no good
runs, and it would revoke every written-back answer).

Inside a task the backends are the Task SDK's (environment variables, any configured secrets
backend, then the API server); outside one (the `ragloop` CLI, the runs API in Airflow's API
server, tests) they are Airflow core's, which read the metadata DB directly. Same connection,
same fields.
"""

from __future__ import annotations

from typing import Any

from ragloop.errors import ConnectionNotFound, ConnectionProblem, ConnectionUnreadable

__all__ = [
    "ConnectionNotFound",
    "ConnectionProblem",
    "ConnectionUnreadable",
    "connection_source",
    "get_connection",
    "openai_client",
]


def _in_task() -> bool:
    from airflow.sdk.execution_time import task_runner

    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def _backends() -> list[Any]:
    if _in_task():
        from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

        return list(ensure_secrets_backend_loaded())
    from airflow.configuration import ensure_secrets_loaded

    return list(ensure_secrets_loaded())


def _mask(conn: Any) -> None:
    from airflow.sdk.log import mask_secret

    if conn.password:
        mask_secret(conn.password)
    if conn.extra:
        mask_secret(conn.extra)


def _not_found_error() -> tuple[type[BaseException], ...]:
    from airflow.sdk.exceptions import AirflowNotFoundException

    errors: list[type[BaseException]] = [AirflowNotFoundException]
    try:
        from airflow.exceptions import AirflowNotFoundException as CoreNotFound

        errors.append(CoreNotFound)
    except ImportError:  # a worker with the Task SDK only
        pass
    return tuple(errors)


def get_connection(conn_id: str) -> Any:
    """The connection `conn_id` from the first secrets backend that has it.

    Raises ConnectionNotFound when no backend has it, and ConnectionUnreadable when a backend
    raised before any backend found it (a backend that fails is never skipped in favour of a
    later one: that later one may hold an older value)."""
    not_found = _not_found_error()
    try:
        backends = _backends()
    except Exception as err:
        raise ConnectionUnreadable(
            conn_id,
            f"Airflow connection {conn_id!r} could not be read: the secrets backends failed to load: {type(err).__name__}: {err}",
        ) from err
    for backend in backends:
        try:
            conn = backend.get_connection(conn_id=conn_id)
        except not_found:
            continue
        except Exception as err:
            raise ConnectionUnreadable(
                conn_id,
                f"Airflow connection {conn_id!r} could not be read: {type(backend).__name__} failed: "
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
                + " (fix the secrets backend or the database; ragloop does not fall back to a default)",
            ) from err
        if conn is not None:
            _mask(conn)
            return conn
    raise ConnectionNotFound(
        conn_id,
        f"Airflow connection {conn_id!r} is not defined: add it to airflow_settings.yaml (then run "
        f"`ragloop airflow setup`), set AIRFLOW_CONN_{conn_id.upper()}, or create it in the Airflow UI",
    )


def connection_source() -> str:
    """Where connections were looked up, for reports and `ragloop doctor`."""
    names = [type(b).__name__ for b in _backends()]
    return ("task SDK: " if _in_task() else "") + " → ".join(names)


def openai_client(conn_id: str = "openai_default", **overrides: Any):
    """An `openai.OpenAI` client for an `openai` connection, read the way the official OpenAIHook
    reads it: key in the password (or extra.openai_client_kwargs.api_key), base URL in the host (or
    extra.openai_client_kwargs.base_url), other client options in extra.openai_client_kwargs."""
    from openai import OpenAI

    conn = get_connection(conn_id)
    kwargs = dict(conn.extra_dejson.get("openai_client_kwargs") or {})
    base_url = kwargs.pop("base_url", None) or conn.host or None
    api_key = kwargs.pop("api_key", None) or conn.password
    if not api_key:
        raise ConnectionProblem(conn_id, f"Airflow connection {conn_id!r} has no API key (set its password)")
    return OpenAI(api_key=api_key, base_url=base_url, **{**kwargs, **overrides})
