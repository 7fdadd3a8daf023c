"""Reading Airflow connections, the only place credentials and endpoints live.

Inside a task, Airflow's Task SDK resolves connections (environment, secrets backends, the API
server). Outside one (the `ragloop` CLI, tests, a notebook) the SDK does not consult the
metadata DB, so we fall back to the core model, which does. Same connection, same fields.
"""

from __future__ import annotations

from typing import Any


def get_connection(conn_id: str) -> Any:
    from airflow.sdk.bases.hook import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        import warnings

        from airflow.models.connection import Connection

        try:
            # Deprecated for task code, which is not where this path runs (or where a connection
            # the SDK could not find is looked up again, such as the optional ragloop_runs_default).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return Connection.get_connection_from_secrets(conn_id)
        except Exception as err:
            raise LookupError(
                f"Airflow connection {conn_id!r} is not defined: add it to airflow_settings.yaml (then run "
                f"`ragloop airflow setup`), set AIRFLOW_CONN_{conn_id.upper()}, or create it in the Airflow UI"
            ) from err


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
        raise LookupError(f"Airflow connection {conn_id!r} has no API key (set its password)")
    return OpenAI(api_key=api_key, base_url=base_url, **{**kwargs, **overrides})
