"""The Q&A run store, the recorder, and user feedback.

A run is one answer the assistant gave: the question, the rewritten queries, what retrieval
returned (with the text the answer saw), the answer, the model and prompt, token counts, latency.
Votes (up/down with a comment) and, later, grades and write-back records hang off a run.

The store is a real SQL database through SQLAlchemy: a SQLite file under `.ragloop/` by default,
or whatever the Airflow connection `ragloop_runs_default` points at (Postgres in production). The
schema is created and upgraded by numbered migrations recorded in `ragloop_schema`, on first use.

`RunRecorder` is a context manager over a `contextvars.ContextVar`: answering code records into
whichever recorder is active in its context, without being handed one. Recording never breaks
answering: a database error is logged and counted on the recorder.

Modules: `models` (what a run and a vote are, as accepted), `schema` (tables and migrations),
`connection` (which database, the store's errors), `store` (`RunStore`), `recorder` (`RunRecorder`).
The `ragloop://runs` asset event a recorded run or vote may emit is Airflow's side
(ragloop.airflow.events.emit_runs_event, handed to the recorder as `on_recorded`). This module re-exports what callers use.
"""

from ragloop.catalog import RUNS_ASSET_NAME, RUNS_ASSET_URI
from ragloop.runs.connection import (
    RUNS_CONN_ID,
    RunNotFound,
    RunStoreError,
    RunStoreUnavailable,
    describe_database,
    describe_runs_store,
    runs_database,
    runs_database_url,
)
from ragloop.runs.models import (
    WRITEBACK_STATES,
    RetrievedSource,
    RunId,
    RunIn,
    VoteIn,
    WritebackState,
    field_errors,
    latest_votes,
    summarize_votes,
    writeback_state,
)
from ragloop.runs.recorder import RunRecorder, active_recorder, record_run
from ragloop.runs.schema import SCHEMA_VERSION
from ragloop.runs.store import ImportReport, RunStore, new_run_id

__all__ = [
    "RUNS_ASSET_NAME",
    "RUNS_ASSET_URI",
    "RUNS_CONN_ID",
    "SCHEMA_VERSION",
    "WRITEBACK_STATES",
    "ImportReport",
    "RetrievedSource",
    "RunId",
    "RunIn",
    "RunNotFound",
    "RunRecorder",
    "RunStore",
    "RunStoreError",
    "RunStoreUnavailable",
    "VoteIn",
    "WritebackState",
    "active_recorder",
    "describe_database",
    "describe_runs_store",
    "field_errors",
    "latest_votes",
    "new_run_id",
    "record_run",
    "runs_database",
    "runs_database_url",
    "summarize_votes",
    "writeback_state",
]
