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
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

log = logging.getLogger(__name__)

RUNS_CONN_ID = "ragloop_runs_default"
RUNS_ASSET_NAME = "ragloop_runs"
RUNS_ASSET_URI = "ragloop://runs"
# written: in the index; revoked: removed by the feedback DAG (down vote, or no longer passes);
# revoked_by_hand: removed with `ragloop qa revoke`, and never written back again on its own.
WRITEBACK_STATES = ("written", "revoked", "revoked_by_hand")

# --- the shape of a run, shared by the recorder, the HTTP API and `runs import` -----------------

# Tab, newline and carriage return are text; every other control character is refused: they hide
# content from people reading runs and break terminals and CSV exports.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    match = CONTROL_CHARACTERS.search(value)
    if match:
        raise ValueError(f"contains the control character {match.group()!r} at position {match.start()}")
    return value


def Text(max_length: int, min_length: int = 0):  # noqa: N802 - reads as a type in the models below
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(_no_control_characters)]


RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


class RetrievedSource(BaseModel):
    """One retrieved passage as the answer saw it."""

    model_config = ConfigDict(extra="forbid")
    doc_id: Text(2000, 1)
    chunk_id: Text(100) = ""
    url: Text(2000) = ""
    title: Text(1000) = ""
    kind: Text(20) = ""
    score: float | None = None
    text: Text(50_000) = ""


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vote: Literal["up", "down"]
    user_id: Text(200) = ""
    comment: Text(4000) | None = None
    created_at: datetime | None = None


class RunIn(BaseModel):
    """A run as recorded by `ask`, posted to the API, or read from an import file."""

    model_config = ConfigDict(extra="forbid")
    run_id: RunId | None = None
    question: Text(20_000, 1)
    rewrites: list[Text(2000)] = Field(default_factory=list, max_length=20)
    sources: list[RetrievedSource] = Field(default_factory=list, max_length=100)
    answer: Text(100_000) = ""
    model: Text(200) = ""
    prompt_name: Text(100) = ""
    prompt_version: Text(50) = ""
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    # "api": the model's own usage figures; "tiktoken": counted here; "none": no model was called.
    token_source: Literal["api", "tiktoken", "none", ""] = ""
    latency_ms: float | None = Field(default=None, ge=0)
    app: Text(100, 1) | None = None  # None: the recorder's app, or "api" when posted to the API
    user_id: Text(200) | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    votes: list[VoteIn] = Field(default_factory=list, max_length=1000)


def field_errors(err: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as [{field, message}], the field as a dotted path ("sources.2.doc_id")."""
    return [
        {"field": ".".join(str(part) for part in e["loc"]) or "(body)", "message": e["msg"]}
        for e in err.errors(include_url=False)
    ]


# --- schema and migrations ----------------------------------------------------------------------

class UtcDateTime(sa.types.TypeDecorator):
    """Stored as UTC, read back timezone-aware on every database (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _schema_v1(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The tables as migration 1 creates them. Later changes are new migrations that alter these
    tables (and update the definitions below), never an edit of what migration 1 does."""
    runs = sa.Table(
        "ragloop_runs", metadata,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("created_at", UtcDateTime(), nullable=False, index=True),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("app", sa.String(100), nullable=False, index=True),
        sa.Column("user_id", sa.String(200)),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("rewrites", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt_name", sa.String(100), nullable=False),
        sa.Column("prompt_version", sa.String(50), nullable=False),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("completion_tokens", sa.Integer()),
        sa.Column("token_source", sa.String(20), nullable=False),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("metadata", sa.JSON(), nullable=False),
    )
    votes = sa.Table(
        "ragloop_votes", metadata,
        sa.Column("vote_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("ragloop_runs.run_id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("vote", sa.String(4), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("vote in ('up', 'down')", name="ragloop_votes_vote"),
    )
    grades = sa.Table(
        "ragloop_grades", metadata,
        sa.Column("grade_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("ragloop_runs.run_id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("criterion", sa.String(100), nullable=False),
        sa.Column("criterion_version", sa.String(50), nullable=False),
        sa.Column("judge", sa.String(200), nullable=False),
        sa.Column("score", sa.Float()),
        sa.Column("passed", sa.Boolean()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("veto", sa.String(100)),
        sa.Column("tokens", sa.Integer()),
        sa.Column("graded_at", UtcDateTime(), nullable=False),
    )
    writebacks = sa.Table(
        "ragloop_writebacks", metadata,
        sa.Column("run_id", sa.String(64), sa.ForeignKey("ragloop_runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("doc_id", sa.String(2000), nullable=False),
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),  # written | revoked
        sa.Column("grader_versions", sa.JSON(), nullable=False),
        sa.Column("written_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime()),
        sa.Column("revoke_reason", sa.Text()),
    )
    return {"runs": runs, "votes": votes, "grades": grades, "writebacks": writebacks}


METADATA = sa.MetaData()
TABLES = _schema_v1(METADATA)
RUNS, VOTES, GRADES, WRITEBACKS = TABLES["runs"], TABLES["votes"], TABLES["grades"], TABLES["writebacks"]
# Migration 2: when a vote reached the store. A vote's created_at is the voter's time and can be
# older than the last grade (imports, clients with their own clocks); grading picks up votes
# recorded since a run's last grade.
VOTE_RECORDED_AT = sa.Column("recorded_at", UtcDateTime(), index=True)
VOTES.append_column(VOTE_RECORDED_AT)
VOTE_ORDER = (VOTES.c.created_at, VOTES.c.vote_id)  # oldest first: the last vote of a user counts
SCHEMA_TABLE = sa.Table(
    "ragloop_schema", sa.MetaData(),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", UtcDateTime(), nullable=False),
)


def _migration_1(connection: sa.Connection) -> None:
    frozen = sa.MetaData()
    _schema_v1(frozen)
    frozen.create_all(connection)


def _migration_2(connection: sa.Connection) -> None:
    column_type = VOTE_RECORDED_AT.type.compile(dialect=connection.dialect)
    connection.execute(sa.text(f"ALTER TABLE ragloop_votes ADD COLUMN recorded_at {column_type}"))
    connection.execute(sa.text("CREATE INDEX ix_ragloop_votes_recorded_at ON ragloop_votes (recorded_at)"))
    # Votes stored before this migration count as recorded when they were cast.
    connection.execute(sa.text("UPDATE ragloop_votes SET recorded_at = created_at"))


# (version, description, upgrade): applied in order, each in its own transaction, once.
MIGRATIONS: list[tuple[int, str, Any]] = [
    (1, "runs, votes, grades and write-back records", _migration_1),
    (2, "votes: recorded_at, so grading sees votes that arrived since a run's last grade", _migration_2),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


class RunStoreError(RuntimeError):
    pass


class RunStoreUnavailable(RunStoreError):
    """The database cannot be reached or is locked, or the connection naming it cannot be read;
    nothing of the request was written. `conn_id` names that connection when it is the cause."""

    def __init__(self, message: str, conn_id: str | None = None):
        super().__init__(message)
        self.conn_id = conn_id


class RunNotFound(RunStoreError, LookupError):
    pass


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id() -> str:
    return uuid.uuid4().hex


def runs_database_url(conn_id: str = RUNS_CONN_ID) -> str:
    """The SQLAlchemy URL of the run store: the Airflow connection when it is defined, else a
    SQLite file under the project's `.ragloop/`.

    Only a connection that is truly absent selects the SQLite file. One that exists but cannot
    be read (a secrets backend or the metadata DB failing) is an error naming it: on a worker, a
    fall-back to an empty local file would show the feedback DAG no good runs, and its write-back
    would then revoke every answer written back before.

    Connection types: `sqlite` (host = the file path), `postgres`, `mysql`; or any database by
    putting a full SQLAlchemy URL in the connection's extra as `sqlalchemy_url`.
    """
    from ragloop.connections import ConnectionNotFound, ConnectionUnreadable, get_connection
    from ragloop.localenv import state_dir

    try:
        conn = get_connection(conn_id)
    except ConnectionNotFound:
        return f"sqlite:///{state_dir() / 'runs.db'}"
    except ConnectionUnreadable as err:
        raise RunStoreUnavailable(f"run store connection {conn_id!r} cannot be read: {err}", conn_id=conn_id) from None
    extra = conn.extra_dejson
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise RunStoreError(f"connection {conn_id!r} (sqlite) has no file path in its host")
        return f"sqlite:///{Path(path).expanduser()}"
    drivers = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2", "mysql": "mysql+mysqldb"}  # the drivers Airflow images ship
    if conn_type not in drivers:
        raise RunStoreError(
            f"connection {conn_id!r} has type {conn.conn_type!r}: use sqlite, postgres or mysql, or put a "
            "SQLAlchemy URL in its extra as sqlalchemy_url"
        )
    return sa.URL.create(
        drivers[conn_type], username=conn.login or None, password=conn.password or None, host=conn.host or None,
        port=conn.port or None, database=conn.schema or None,
    ).render_as_string(hide_password=False)


def describe_runs_store(conn_id: str = RUNS_CONN_ID) -> str:
    """Which store the runs live in, password hidden, and whether the connection chose it (for
    reports: never raises, an unreadable connection is described as such)."""
    from ragloop.connections import ConnectionNotFound, get_connection

    try:
        url = sa.make_url(runs_database_url(conn_id)).render_as_string(hide_password=True)
        get_connection(conn_id)
    except ConnectionNotFound:
        return f"{url} (default: no {conn_id} connection)"
    except Exception as err:
        return f"unusable: {err}"
    return f"{url} (connection {conn_id})"


def _unavailable(err: Exception, url: sa.URL) -> RunStoreUnavailable:
    first_line = str(getattr(err, "orig", None) or err).splitlines()[0]
    return RunStoreUnavailable(f"run store {url.render_as_string(hide_password=True)} is unavailable: {first_line}")


@dataclass
class ImportReport:
    path: str
    lines: int = 0
    imported: int = 0
    already_present: int = 0
    votes_added: int = 0
    errors: list[dict] = field(default_factory=list)  # {line, field, message}

    def to_json(self) -> dict:
        return dict(self.__dict__)


class RunStore:
    """Runs, votes, grades and write-back records in one SQL database."""

    def __init__(self, url: str | None = None, *, connect_timeout: float = 10.0):
        self.url = sa.make_url(url or runs_database_url())
        kwargs: dict[str, Any] = {"future": True, "pool_pre_ping": True}
        if self.url.get_backend_name() == "sqlite":
            database = self.url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # `timeout`: how long a writer waits for another process's lock before the store
            # reports itself unavailable (the API answers 503 instead of hanging).
            kwargs["connect_args"] = {"timeout": connect_timeout, "check_same_thread": False}
        try:
            self.engine = sa.create_engine(self.url, **kwargs)
        except ModuleNotFoundError as err:
            raise RunStoreError(
                f"the database driver for {self.url.drivername} is not installed (module {err.name}); for Postgres install "
                "psycopg2-binary (the Astro Runtime image has it)"
            ) from None
        if self.url.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._migrated = False
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> "RunStore":
        return cls(runs_database_url())

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({self.url.render_as_string(hide_password=True)})"

    # --- migrations ---

    def migrate(self) -> int:
        """Apply the migrations this database lacks; returns its schema version."""
        with self._lock:
            if self._migrated:
                return SCHEMA_VERSION
            try:
                SCHEMA_TABLE.create(self.engine, checkfirst=True)
                with self.engine.connect() as connection:
                    applied = set(connection.scalars(sa.select(SCHEMA_TABLE.c.version)))
                newer = {v for v in applied if v > SCHEMA_VERSION}
                if newer:
                    raise RunStoreError(
                        f"{self!r} has schema version {max(newer)}, newer than this ragloop ({SCHEMA_VERSION}): upgrade ragloop"
                    )
                for version, description, upgrade in MIGRATIONS:
                    if version in applied:
                        continue
                    try:
                        with self.engine.begin() as connection:
                            upgrade(connection)
                            connection.execute(sa.insert(SCHEMA_TABLE).values(
                                version=version, description=description, applied_at=_now()))
                        log.info("Run store %r migrated to version %d: %s", self, version, description)
                    except sa.exc.IntegrityError:
                        # Another process applied the same migration first.
                        log.info("Run store migration %d was applied by another process", version)
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as err:
                raise _unavailable(err, self.url) from err
            self._migrated = True
            return SCHEMA_VERSION

    def current_schema_version(self) -> int:
        """The schema version the database holds now, without migrating it (0: none yet)."""
        with self._connect() as connection:
            if not sa.inspect(connection).has_table(SCHEMA_TABLE.name):
                return 0
            return connection.scalar(sa.select(sa.func.max(SCHEMA_TABLE.c.version))) or 0

    def schema_version(self) -> int:
        self.migrate()
        with self._connect() as connection:
            return connection.scalar(sa.select(sa.func.max(SCHEMA_TABLE.c.version))) or 0

    def _connect(self):
        return _Guarded(self.engine.connect, self.url)

    def _begin(self):
        return _Guarded(self.engine.begin, self.url)

    # --- runs ---

    def record_run(self, run: RunIn) -> tuple[str, bool]:
        """Insert a run and its votes in one transaction. Returns (run_id, created); a run whose id
        exists already is left as it is (created = False), so recording is idempotent."""
        self.migrate()
        run_id = run.run_id or new_run_id()
        with self._begin() as connection:
            if connection.scalar(sa.select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)) is not None:
                return run_id, False
            connection.execute(sa.insert(RUNS).values(**_run_row(run, run_id)))
            for vote in run.votes:
                connection.execute(sa.insert(VOTES).values(**_vote_row(run_id, vote)))
        return run_id, True

    def add_vote(self, run_id: str, vote: VoteIn) -> tuple[int, dict]:
        """Add a vote; several per run and per user are kept, the latest of each user counts.
        Returns the vote's id and the run's vote summary with it."""
        self.migrate()
        with self._begin() as connection:
            if connection.scalar(sa.select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)) is None:
                raise RunNotFound(f"no run {run_id!r}")
            result = connection.execute(sa.insert(VOTES).values(**_vote_row(run_id, vote)))
            votes = connection.execute(
                sa.select(VOTES.c.user_id, VOTES.c.vote).where(VOTES.c.run_id == run_id).order_by(*VOTE_ORDER)
            ).mappings().all()
            return int(result.inserted_primary_key[0]), summarize_votes(votes)

    def get_run(self, run_id: str) -> dict:
        self.migrate()
        with self._connect() as connection:
            row = connection.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).mappings().first()
            if row is None:
                raise RunNotFound(f"no run {run_id!r}")
            return self._with_details(connection, [dict(row)])[0]

    def list_runs(self, since: datetime | None = None, limit: int = 50, app: str | None = None) -> list[dict]:
        """Newest first; `since` keeps runs created at or after it (a time without a zone is UTC,
        as every stored time is: see UtcDateTime)."""
        self.migrate()
        query = sa.select(RUNS).order_by(RUNS.c.created_at.desc(), RUNS.c.run_id).limit(limit)
        if since is not None:
            query = query.where(RUNS.c.created_at >= since)
        if app:
            query = query.where(RUNS.c.app == app)
        with self._connect() as connection:
            rows = [dict(r) for r in connection.execute(query).mappings()]
            return self._with_details(connection, rows)

    def count_runs(self) -> int:
        self.migrate()
        with self._connect() as connection:
            return connection.scalar(sa.select(sa.func.count()).select_from(RUNS)) or 0

    def _with_details(self, connection, runs: list[dict]) -> list[dict]:
        ids = [r["run_id"] for r in runs]
        if not ids:
            return []
        votes: dict[str, list[dict]] = {}
        for row in connection.execute(
            sa.select(VOTES).where(VOTES.c.run_id.in_(ids)).order_by(*VOTE_ORDER)
        ).mappings():
            votes.setdefault(row["run_id"], []).append(
                {"vote_id": row["vote_id"], "vote": row["vote"], "user_id": row["user_id"],
                 "comment": row["comment"], "created_at": row["created_at"].isoformat()})
        grades: dict[str, list[dict]] = {}
        for row in connection.execute(
            sa.select(GRADES).where(GRADES.c.run_id.in_(ids)).order_by(GRADES.c.graded_at, GRADES.c.grade_id)
        ).mappings():
            grade = {k: row[k] for k in ("criterion", "criterion_version", "judge", "score", "passed", "reason", "veto", "tokens")}
            grades.setdefault(row["run_id"], []).append({**grade, "graded_at": row["graded_at"].isoformat()})
        writebacks = {
            row["run_id"]: {"doc_id": row["doc_id"], "collection": row["collection"], "state": row["state"],
                            "written_at": row["written_at"].isoformat(),
                            "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
                            "revoke_reason": row["revoke_reason"], "grader_versions": row["grader_versions"]}
            for row in connection.execute(sa.select(WRITEBACKS).where(WRITEBACKS.c.run_id.in_(ids))).mappings()
        }
        out = []
        for run in runs:
            run_votes = votes.get(run["run_id"], [])
            out.append({
                **{k: v for k, v in run.items() if k not in ("created_at", "recorded_at")},
                "created_at": run["created_at"].isoformat(),
                "recorded_at": run["recorded_at"].isoformat(),
                "votes": run_votes,
                "vote_summary": summarize_votes(run_votes),
                "grades": grades.get(run["run_id"], []),
                "writeback": writebacks.get(run["run_id"]),
            })
        return out

    def get_runs(self, run_ids: Iterable[str]) -> list[dict]:
        """The runs with these ids (with votes, grades and write-back), in the order given;
        ids not stored are left out."""
        self.migrate()
        ids = list(dict.fromkeys(run_ids))
        found: dict[str, dict] = {}
        with self._connect() as connection:
            for group in _id_groups(ids):
                rows = [dict(r) for r in connection.execute(sa.select(RUNS).where(RUNS.c.run_id.in_(group))).mappings()]
                found.update((run["run_id"], run) for run in self._with_details(connection, rows))
        return [found[run_id] for run_id in ids if run_id in found]

    # --- grading ---

    def ungraded_run_ids(self, limit: int) -> list[str]:
        """Runs that have no grade at all, oldest first."""
        self.migrate()
        graded = sa.select(GRADES.c.run_id).where(GRADES.c.run_id == RUNS.c.run_id).exists()
        query = sa.select(RUNS.c.run_id).where(~graded).order_by(RUNS.c.created_at, RUNS.c.run_id).limit(limit)
        with self._connect() as connection:
            return list(connection.scalars(query))

    def run_ids_with_new_votes(self, limit: int) -> list[str]:
        """Graded runs with a vote recorded after their last grade, oldest run first."""
        self.migrate()
        last = sa.select(GRADES.c.run_id, sa.func.max(GRADES.c.graded_at).label("graded_at")) \
            .group_by(GRADES.c.run_id).subquery()
        recorded = sa.func.coalesce(VOTES.c.recorded_at, VOTES.c.created_at)
        query = (
            sa.select(RUNS.c.run_id)
            .join(last, last.c.run_id == RUNS.c.run_id)
            .where(sa.select(VOTES.c.vote_id).where(VOTES.c.run_id == RUNS.c.run_id, recorded > last.c.graded_at).exists())
            .order_by(RUNS.c.created_at, RUNS.c.run_id).limit(limit)
        )
        with self._connect() as connection:
            return list(connection.scalars(query))

    def latest_grades(self, run_ids: Iterable[str] | None = None) -> dict[str, dict[str, dict]]:
        """run_id -> criterion -> its latest grade row (the highest grade_id); None: every graded run."""
        self.migrate()
        latest: dict[str, dict[str, dict]] = {}
        with self._connect() as connection:
            if run_ids is None:
                batches = [None]
            else:
                batches = _id_groups(list(dict.fromkeys(run_ids)))
            for batch in batches:
                query = sa.select(GRADES).order_by(GRADES.c.grade_id)
                if batch is not None:
                    query = query.where(GRADES.c.run_id.in_(batch))
                for row in connection.execute(query).mappings():
                    latest.setdefault(row["run_id"], {})[row["criterion"]] = dict(row)
        return latest

    def record_grades(self, run_id: str, grades: list[dict], graded_at: datetime) -> int:
        """Store one grading of a run (rows with criterion, criterion_version, judge, score, passed,
        reason, veto, tokens) in one transaction. `graded_at` is when the run was read: a vote
        recorded while it was being graded is newer, and brings the run back next time."""
        self.migrate()
        with self._begin() as connection:
            if connection.scalar(sa.select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)) is None:
                raise RunNotFound(f"no run {run_id!r}")
            for grade in grades:
                connection.execute(sa.insert(GRADES).values(run_id=run_id, graded_at=graded_at, **grade))
        return len(grades)

    def passing_run_ids(self, versions: dict[str, str]) -> list[str]:
        """Runs whose latest grade of every criterion in `versions` passed at that version."""
        self.migrate()
        if not versions:
            return []
        latest = sa.select(sa.func.max(GRADES.c.grade_id).label("grade_id")) \
            .group_by(GRADES.c.run_id, GRADES.c.criterion).subquery()
        current = sa.or_(*[sa.and_(GRADES.c.criterion == c, GRADES.c.criterion_version == v) for c, v in versions.items()])
        query = (
            sa.select(GRADES.c.run_id)
            .join(latest, latest.c.grade_id == GRADES.c.grade_id)
            .where(GRADES.c.passed.is_(True), current)
            .group_by(GRADES.c.run_id)
            .having(sa.func.count() == len(versions))
            .order_by(GRADES.c.run_id)
        )
        with self._connect() as connection:
            return list(connection.scalars(query))

    # --- write-back records ---

    def writebacks(self, state: str | None = None) -> list[dict]:
        """Write-back records, oldest first; `state` keeps one state (see WRITEBACK_STATES)."""
        self.migrate()
        query = sa.select(WRITEBACKS).order_by(WRITEBACKS.c.written_at, WRITEBACKS.c.run_id)
        if state:
            query = query.where(WRITEBACKS.c.state == state)
        with self._connect() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    def set_writeback(self, run_id: str, *, doc_id: str, collection: str, state: str,
                      grader_versions: dict | None = None, reason: str | None = None) -> None:
        """Record that a run's answer was written back (state "written"), revoked by the feedback
        DAG ("revoked") or by hand ("revoked_by_hand")."""
        if state not in WRITEBACK_STATES:
            raise ValueError(f"write-back state must be one of {WRITEBACK_STATES}, not {state!r}")
        self.migrate()
        now = _now()
        with self._begin() as connection:
            existing = connection.execute(sa.select(WRITEBACKS).where(WRITEBACKS.c.run_id == run_id)).mappings().first()
            if state == "written":
                values = {"doc_id": doc_id, "collection": collection, "state": state,
                          "grader_versions": grader_versions or {}, "revoked_at": None, "revoke_reason": None}
                if existing is None or existing["state"] != "written":
                    values["written_at"] = now
            else:
                values = {"doc_id": doc_id, "collection": collection, "state": state, "revoked_at": now, "revoke_reason": reason}
                if existing is None:
                    values.update(written_at=now, grader_versions=grader_versions or {})
            if existing is None:
                connection.execute(sa.insert(WRITEBACKS).values(run_id=run_id, **values))
            else:
                connection.execute(sa.update(WRITEBACKS).where(WRITEBACKS.c.run_id == run_id).values(**values))

    # --- import ---

    def import_jsonl(self, path: str | Path, progress=None) -> ImportReport:
        """Load runs (and their votes) from a JSON-lines file in the API's shape.

        A bad line is reported by number and field and the rest imported; a run whose id is
        already stored is not imported again, and its votes are added only if not stored yet.
        """
        path = Path(path)
        report = ImportReport(path=str(path))
        self.migrate()
        try:
            handle = path.open(encoding="utf-8")
        except OSError as err:
            raise RunStoreError(f"cannot read {path}: {err.strerror or err}") from None
        with handle:
            for number, line in enumerate(handle, 1):
                report.lines = number
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as err:
                    report.errors.append({"line": number, "field": "(line)", "message": f"not valid JSON: {err.msg} at column {err.colno}"})
                    continue
                except UnicodeDecodeError as err:  # pragma: no cover - depends on the file
                    report.errors.append({"line": number, "field": "(line)", "message": f"not UTF-8: {err}"})
                    continue
                if not isinstance(data, dict):
                    report.errors.append({"line": number, "field": "(line)", "message": "each line must be one JSON object"})
                    continue
                if not data.get("run_id"):
                    # An id from the line's content: importing the same file twice adds nothing.
                    data = {**data, "run_id": uuid.uuid5(uuid.NAMESPACE_URL, line.strip()).hex}
                try:
                    run = RunIn.model_validate(data)
                except ValidationError as err:
                    for problem in field_errors(err):
                        report.errors.append({"line": number, **problem})
                    continue
                if run.created_at is None:
                    report.errors.append({"line": number, "field": "created_at", "message": "imported runs need their time"})
                    continue
                # A vote without a time takes its run's, so importing the file again matches it
                # with the stored vote instead of adding it a second time.
                run = run.model_copy(update={"votes": [
                    v if v.created_at else v.model_copy(update={"created_at": run.created_at}) for v in run.votes]})
                run_id, created = self.record_run(run)
                if created:
                    report.imported += 1
                    report.votes_added += len(run.votes)
                else:
                    report.already_present += 1
                    report.votes_added += self._add_missing_votes(run_id, run.votes)
                if progress and number % 1000 == 0:
                    progress(f"{path.name}: {number} lines read, {report.imported} runs imported")
        return report

    def _add_missing_votes(self, run_id: str, votes: Iterable[VoteIn]) -> int:
        added = 0
        with self._begin() as connection:
            stored = {
                (r.user_id, r.vote, r.created_at, r.comment)
                for r in connection.execute(sa.select(VOTES).where(VOTES.c.run_id == run_id))
            }
            for vote in votes:
                row = _vote_row(run_id, vote)
                if (row["user_id"], row["vote"], row["created_at"], row["comment"]) in stored:
                    continue
                connection.execute(sa.insert(VOTES).values(**row))
                added += 1
        return added


ID_GROUP = 500  # ids per IN list: bounded statements on every database


def _id_groups(ids: list[str]) -> list[list[str]]:
    return [ids[i:i + ID_GROUP] for i in range(0, len(ids), ID_GROUP)]


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class _Guarded:
    """A connection context that turns "cannot reach / locked" errors into RunStoreUnavailable;
    a failed transaction is rolled back, so a request never leaves half a run behind."""

    def __init__(self, opener, url):
        self._opener, self._url, self._context = opener, url, None

    def __enter__(self):
        try:
            self._context = self._opener()
            return self._context.__enter__()
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as err:
            raise _unavailable(err, self._url) from err

    def __exit__(self, exc_type, exc, tb):
        try:
            result = self._context.__exit__(exc_type, exc, tb)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as err:
            raise _unavailable(err, self._url) from err
        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            raise _unavailable(exc, self._url) from exc
        return result


def _run_row(run: RunIn, run_id: str) -> dict:
    now = _now()
    return {
        "run_id": run_id, "created_at": run.created_at or now, "recorded_at": now, "app": run.app or "api",
        "user_id": run.user_id, "question": run.question, "rewrites": list(run.rewrites),
        "sources": [s.model_dump() for s in run.sources], "answer": run.answer, "model": run.model,
        "prompt_name": run.prompt_name, "prompt_version": run.prompt_version,
        "prompt_tokens": run.prompt_tokens, "completion_tokens": run.completion_tokens,
        "token_source": run.token_source or ("none" if run.prompt_tokens is None else "api"),
        "latency_ms": run.latency_ms, "metadata": run.metadata,
    }


def _vote_row(run_id: str, vote: VoteIn) -> dict:
    now = _now()
    created = vote.created_at or now
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return {"run_id": run_id, "user_id": vote.user_id, "vote": vote.vote, "comment": vote.comment,
            "created_at": created.astimezone(timezone.utc), "recorded_at": now}


def latest_votes(votes: list[dict]) -> dict[str, dict]:
    """user_id -> that user's latest vote: the one that counts. Votes come oldest first."""
    return {vote["user_id"]: vote for vote in votes}


def summarize_votes(votes: list[dict]) -> dict:
    """The latest vote of each user counts: {up, down, votes}. Votes come oldest first."""
    counted = [vote["vote"] for vote in latest_votes(votes).values()]
    return {"up": counted.count("up"), "down": counted.count("down"), "votes": len(votes)}


# --- asset events -------------------------------------------------------------------------------

def runs_asset():
    """The asset a recorded run or vote updates; the grading DAG is scheduled on it."""
    from airflow.sdk import Asset

    return Asset(name=RUNS_ASSET_NAME, uri=RUNS_ASSET_URI, group="ragloop")


def emit_runs_event(extra: dict) -> bool:
    """Record an asset event for `ragloop://runs` in Airflow's metadata DB, so DAGs scheduled on
    it start. Registers the asset first if no DAG has declared it yet. Never raises: the run or
    vote is already stored, and the nightly schedule grades it anyway."""
    try:
        from airflow.assets.manager import asset_manager
        from airflow.models.asset import AssetActive, AssetModel
        from airflow.utils.session import create_session

        asset = runs_asset()  # its URI as Airflow normalizes it, so it is the asset the DAG consumes
        with create_session() as session:
            model = session.scalar(sa.select(AssetModel).where(AssetModel.name == asset.name, AssetModel.uri == asset.uri))
            if model is None:
                model = AssetModel(name=asset.name, uri=asset.uri, group=asset.group)
                session.add(model)
                session.flush()
            # Mark it active: in local mode (dag.test(), no DAG processor) it would otherwise stay
            # inactive and every event warn. Names are unique among active assets, so an active
            # row with our name and another URI (the un-normalized "ragloop://runs" that earlier
            # ragloop builds registered) gives way.
            active = session.scalars(sa.select(AssetActive).where(
                sa.or_(AssetActive.name == asset.name, AssetActive.uri == asset.uri))).all()
            if not any(row.name == asset.name and row.uri == asset.uri for row in active):
                for stale in active:
                    session.delete(stale)
                session.flush()
                session.add(AssetActive.for_asset(model))
                session.flush()
            event = asset_manager.register_asset_change(asset=model, extra=extra, session=session, source_is_api=True)
        return event is not None
    except Exception as err:  # noqa: BLE001 - an event is a nudge; the schedule is the backstop
        log.warning("Could not emit the %s asset event (%s); the nightly grading run will pick this up", RUNS_ASSET_URI, err)
        return False


# --- the recorder -------------------------------------------------------------------------------

_active_recorder: contextvars.ContextVar["RunRecorder | None"] = contextvars.ContextVar("ragloop_run_recorder", default=None)


class RunRecorder:
    """Records every answer given inside `with RunRecorder(app=...)`.

    Nested recorders stack (the innermost records); threads started with a copy of the context
    (`contextvars.copy_context().run`, or asyncio tasks, which copy it themselves) record into the
    recorder that was active where they were started. A recorder can be entered again after it
    exits, but not twice at once.
    """

    def __init__(self, app: str = "ragloop", *, store: RunStore | None = None, store_url: str | None = None,
                 user_id: str | None = None, emit_events: bool = False):
        self.app = app
        self.user_id = user_id
        self.emit_events = emit_events
        self._store = store
        self._store_url = store_url
        self._owns_store = store is None
        self._token: contextvars.Token | None = None
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

    def __enter__(self) -> "RunRecorder":
        if self._token is not None:
            raise RuntimeError("this RunRecorder is already active; create another one to nest")
        self._token = _active_recorder.set(self)
        return self

    def __exit__(self, *exc) -> None:
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
        if self.emit_events:
            emit_runs_event({"run_id": run_id, "app": self.app, "event": "run"})
        return run_id


def active_recorder() -> RunRecorder | None:
    return _active_recorder.get()


def record_run(run: RunIn | dict) -> str | None:
    """Record into the active recorder; outside any recorder, nothing is recorded and None returned."""
    recorder = _active_recorder.get()
    return recorder.record(run) if recorder is not None else None
