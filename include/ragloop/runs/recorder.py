"""`RunRecorder`, a context manager over a `contextvars.ContextVar`: answering code records into
whichever recorder is active in its context, without being handed one. Recording never breaks
answering: a database error is logged and counted on the recorder."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable

from ragloop.runs.models import RunIn
from ragloop.runs.store import RunStore

log = logging.getLogger(__name__)

_active_recorder: contextvars.ContextVar[RunRecorder | None] = contextvars.ContextVar("ragloop_run_recorder", default=None)


class RunRecorder:
    """Records every answer given inside `with RunRecorder(app=...)`.

    Nested recorders stack (the innermost records); threads started with a copy of the context
    (`contextvars.copy_context().run`, or asyncio tasks, which copy it themselves) record into the
    recorder that was active where they were started. A recorder can be entered again after it
    exits, but not twice at once.
    """

    def __init__(
        self,
        app: str = "ragloop",
        *,
        store: RunStore | None = None,
        store_url: str | None = None,
        user_id: str | None = None,
        on_recorded: Callable[[dict], object] | None = None,
    ):
        self.app = app
        self.user_id = user_id
        self.on_recorded = on_recorded  # told of each recorded run, e.g. Airflow's asset event (the CLI's)
        self._store = store
        self._store_url = store_url
        self._owns_store = store is None
        self._token: contextvars.Token[RunRecorder | None] | None = None
        self._lock = threading.Lock()
        self.run_ids: list[str] = []
        self.errors = 0  # recordings that failed (logged); answers were still returned
        self.last_error: str | None = None

    @property
    def store(self) -> RunStore:
        with self._lock:
            if self._store is None:
                self._store = RunStore(self._store_url) if self._store_url else RunStore.default()
            return self._store

    def __enter__(self) -> RunRecorder:
        if self._token is not None:
            raise RuntimeError("this RunRecorder is already active; create another one to nest")
        self._token = _active_recorder.set(self)
        return self

    def __exit__(self, *exc) -> None:
        if self._token is not None:
            _active_recorder.reset(self._token)
        self._token = None
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None

    def record(self, run: RunIn | dict) -> str | None:
        """Store one run; returns its id, or None when recording failed (logged and counted)."""
        try:
            if isinstance(run, dict):
                run = RunIn.model_validate(run)
            updates = {"app": self.app} if run.app is None else {}
            if self.user_id and not run.user_id:
                updates["user_id"] = self.user_id
            if updates:
                run = run.model_copy(update=updates)
            run_id, _ = self.store.record_run(run)
        except Exception as err:  # noqa: BLE001 - recording must never break answering
            with self._lock:
                self.errors += 1
                self.last_error = str(err)
            log.error("Run not recorded by recorder %r: %s", self.app, err)
            return None
        with self._lock:
            self.run_ids.append(run_id)
        if self.on_recorded is not None:
            self.on_recorded({"run_id": run_id, "app": self.app, "event": "run"})
        return run_id


def active_recorder() -> RunRecorder | None:
    return _active_recorder.get()


def record_run(run: RunIn | dict) -> str | None:
    """Record into the active recorder; outside any recorder, nothing is recorded and None returned."""
    recorder = _active_recorder.get()
    return recorder.record(run) if recorder is not None else None
