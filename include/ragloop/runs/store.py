"""`RunStore`: runs, votes, grades and write-back records in one SQL database (SQLAlchemy);
migrated on first use. Over 450 lines for a reason: it is one class, the only code that reads or
writes these tables, and its queries read best next to each other."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, TypedDict, cast
from collections.abc import Callable, Iterable, Iterator

import sqlalchemy as sa
from pydantic import ValidationError

from ragloop.documents import Visibility, visible_to
from ragloop.feedback.boosts import (
    CHUNK_ACTIONS,
    PINNED_BOOST_LIMIT,
    BoostPolicy,
    ChunkAction,
    ChunkAdjustment,
    ChunkControl,
    CitedChunk,
    StoredCredit,
    add_up,
    adjustment,
    boost_multiplier,
    fold_actions,
    vote_credits,
)
from ragloop.feedback.curated import CuratedAnswer

from ragloop.runs.connection import RunNotFound, RunStoreError, runs_database_url, unavailable
from ragloop.runs.models import (
    WRITEBACK_STATES,
    QaRun,
    WritebackState,
    RunIn,
    VoteIn,
    field_errors,
    latest_votes,
    summarize_votes,
)
from ragloop.runs.schema import (
    CHUNK_ACTIONS as CHUNK_ACTIONS_TABLE,
    CURATED_HITS,
    VOTE_CREDITS,
    GRADES,
    GRADING_FAILURES,
    MIGRATIONS,
    REPORTS,
    RUNS,
    SCHEMA_TABLE,
    SCHEMA_VERSION,
    VOTE_ORDER,
    VOTES,
    WRITEBACKS,
)

log = logging.getLogger(__name__)


# pg_advisory_lock key serialising run-store migrations across processes ("ragloop" in ASCII).
MIGRATION_LOCK_KEY = 0x7261676C6F6F70


def _now() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    return uuid.uuid4().hex


# The audience every trusted caller of the store reads with (the grading pipeline, the CLI's
# default): it sees every run. Surfaces that serve a viewer pass the viewer's audience instead.
EVERYTHING = Visibility.INTERNAL.value


def run_visible_to(sources: Any, audience: str) -> bool:
    """Whether a viewer of `audience` may see a run (its question, answer, sources, votes and
    grades) that retrieved `sources`: the one rule every surface applies through the store's
    queries. A run is as visible as its least visible passage; a source without a recorded
    visibility counts as internal, and so does a run whose sources are not a list."""
    allowed = visible_to(audience)  # raises on an unknown audience
    if audience == EVERYTHING:
        return True
    return isinstance(sources, list) and all(
        isinstance(source, dict) and source.get("visibility") in allowed for source in sources
    )


class Activity(TypedDict):
    """The rows the operator's statistics are counted from, of the runs a viewer may see."""

    run_times: list[datetime]  # created_at of each run (since the time asked)
    votes: list[tuple[str, datetime]]  # (up/down, created_at) of each vote (since the time asked)
    latest_grades: list[tuple[str, str, bool | None, str | None]]  # (criterion, version, passed, veto)
    writebacks: list[tuple[str, datetime, datetime | None]]  # (state, written_at, revoked_at), every one


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
                try:
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise RunStoreError(f"cannot create the folder of the run database {database}: {err}") from None
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
    def default(cls) -> RunStore:
        return cls(runs_database_url())

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> RunStore:
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
                with self._migration_lock():
                    self._apply_migrations()
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as err:
                raise unavailable(err, self.url) from err
            self._migrated = True
            return SCHEMA_VERSION

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """One migrating process at a time. On Postgres, workers opening a new store at once
        otherwise both see a migration missing and the second fails half-way (its ALTER TABLE
        meets the column the first just added); a session advisory lock makes the later ones wait
        and then find the migrations applied. SQLite serialises its writers by itself."""
        if self.url.get_backend_name() != "postgresql":
            yield
            return
        with self.engine.connect() as holder:
            holder.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                holder.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                holder.commit()

    def _apply_migrations(self) -> None:
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
                    if version in DATA_MIGRATIONS:
                        DATA_MIGRATIONS[version](connection)
                    connection.execute(
                        sa.insert(SCHEMA_TABLE).values(version=version, description=description, applied_at=_now())
                    )
                log.info("Run store %r migrated to version %d: %s", self, version, description)
            except sa.exc.IntegrityError:
                # Another process applied the same migration first.
                log.info("Run store migration %d was applied by another process", version)

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

    def record_run(self, run: RunIn, recorded_by: str | None = None) -> tuple[str, bool]:
        """Insert a run and its votes in one transaction. Returns (run_id, created); a run whose id
        exists already is left as it is (created = False), so recording is idempotent, also when
        two requests with one id arrive at once: the insert comes first, and the one that loses
        the race finds the run stored. `recorded_by`: the app principal recording for its users."""
        self.migrate()
        run_id = run.run_id or new_run_id()
        try:
            with self._begin() as connection:
                connection.execute(sa.insert(RUNS).values(**_run_row(run, run_id)))
                curated = run.metadata.get("curated")
                if isinstance(curated, dict) and curated.get("run_id"):
                    _record_curated_hit(connection, run_id, curated)
                for vote in run.votes:
                    connection.execute(sa.insert(VOTES).values(**_vote_row(run_id, vote), recorded_by=recorded_by))
                if run.votes:
                    _refresh_vote_credits(connection, run_id)
        except sa.exc.IntegrityError:
            with self._connect() as connection:
                if connection.scalar(sa.select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)) is not None:
                    return run_id, False
            raise
        return run_id, True

    def add_vote(
        self, run_id: str, vote: VoteIn, recorded_by: str | None = None, *, audience: str = EVERYTHING
    ) -> tuple[int, dict]:
        """Add a vote; several per run and per user are kept, the latest of each user (by the
        time the store recorded it) counts. `recorded_by`: the principal of an app that records
        the vote on behalf of `vote.user_id`. Returns the vote's id and the run's vote summary.
        A run the voter's `audience` may not see raises RunNotFound, as a missing one does."""
        self.migrate()
        with self._begin() as connection:
            found = connection.execute(sa.select(RUNS.c.run_id, RUNS.c.sources).where(RUNS.c.run_id == run_id)).first()
            # A run the voter may not see is not there for them: no vote (a down vote would revoke it).
            if found is None or not run_visible_to(found.sources, audience):
                raise RunNotFound(f"no run {run_id!r}")
            result = connection.execute(sa.insert(VOTES).values(**_vote_row(run_id, vote), recorded_by=recorded_by))
            _refresh_vote_credits(connection, run_id)
            _pass_vote_to_curated_answer(connection, run_id, vote)
            votes = (
                connection.execute(
                    sa.select(VOTES.c.vote_id, VOTES.c.user_id, VOTES.c.vote)
                    .where(VOTES.c.run_id == run_id)
                    .order_by(*VOTE_ORDER)
                )
                .mappings()
                .all()
            )
            return int(result.inserted_primary_key[0]), summarize_votes(votes)

    def get_run(self, run_id: str, *, audience: str = EVERYTHING) -> QaRun:
        """The run, with its votes, grades and write-back; RunNotFound when there is none, or
        when `audience` may not see it (a run above the viewer's audience is not there for them)."""
        self.migrate()
        with self._connect() as connection:
            row = connection.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).mappings().first()
            if row is None or not run_visible_to(row["sources"], audience):
                raise RunNotFound(f"no run {run_id!r}")
            return self._with_details(connection, [dict(row)])[0]

    def list_runs(
        self, since: datetime | None = None, limit: int = 50, app: str | None = None, *, audience: str = EVERYTHING
    ) -> list[QaRun]:
        """The newest `limit` runs `audience` may see, newest first; `since` keeps runs created at
        or after it (a time without a zone is UTC, as every stored time is: see UtcDateTime)."""
        self.migrate()
        visible_to(audience)  # an unknown audience is refused before anything is read
        conditions = []
        if since is not None:
            conditions.append(RUNS.c.created_at >= since)
        if app:
            conditions.append(RUNS.c.app == app)
        order = (RUNS.c.created_at.desc(), RUNS.c.run_id)
        with self._connect() as connection:
            if audience == EVERYTHING:
                query = sa.select(RUNS).where(*conditions).order_by(*order).limit(limit)
                rows = [dict(r) for r in connection.execute(query).mappings()]
                return self._with_details(connection, rows)
            # Visibility is a property of the run's sources (a JSON list): decided here, in Python,
            # alike on every database, reading ids and sources newest first until `limit` are seen.
            ids: list[str] = []
            for run_id, sources in connection.execute(
                sa.select(RUNS.c.run_id, RUNS.c.sources).where(*conditions).order_by(*order)
            ):
                if run_visible_to(sources, audience):
                    ids.append(run_id)
                    if len(ids) >= limit:
                        break
            found: dict[str, dict] = {}
            for group in _id_groups(ids):
                rows = [dict(r) for r in connection.execute(sa.select(RUNS).where(RUNS.c.run_id.in_(group))).mappings()]
                found.update((run["run_id"], run) for run in rows)
            return self._with_details(connection, [found[run_id] for run_id in ids if run_id in found])

    def visible_run_ids(self, audience: str) -> set[str] | None:
        """The ids of every run `audience` may see; None when it may see them all."""
        self.migrate()
        visible_to(audience)
        if audience == EVERYTHING:
            return None
        with self._connect() as connection:
            return {
                run_id
                for run_id, sources in connection.execute(sa.select(RUNS.c.run_id, RUNS.c.sources))
                if run_visible_to(sources, audience)
            }

    def activity(self, since: datetime | None = None, *, audience: str = EVERYTHING) -> Activity:
        """What the operator's statistics count (runs and votes per day, the latest grade of each
        run and criterion, write-back states and times), of the runs `audience` may see: a
        public viewer's counts say nothing about internal runs."""
        self.migrate()
        visible = self.visible_run_ids(audience)

        def shown(run_id: str) -> bool:
            return visible is None or run_id in visible

        run_query = sa.select(RUNS.c.run_id, RUNS.c.created_at)
        vote_query = sa.select(VOTES.c.run_id, VOTES.c.vote, VOTES.c.created_at)
        latest = sa.select(sa.func.max(GRADES.c.grade_id).label("grade_id")).group_by(GRADES.c.run_id, GRADES.c.criterion)
        grade_query = (
            sa.select(GRADES.c.run_id, GRADES.c.criterion, GRADES.c.criterion_version, GRADES.c.passed, GRADES.c.veto)
            .join(RUNS, RUNS.c.run_id == GRADES.c.run_id)
            .where(GRADES.c.grade_id.in_(latest.scalar_subquery()))
        )
        if since is not None:
            run_query = run_query.where(RUNS.c.created_at >= since)
            vote_query = vote_query.where(VOTES.c.created_at >= since)
            grade_query = grade_query.where(RUNS.c.created_at >= since)
        writeback_query = sa.select(WRITEBACKS.c.run_id, WRITEBACKS.c.state, WRITEBACKS.c.written_at, WRITEBACKS.c.revoked_at)
        with self._connect() as connection:
            return {
                "run_times": [r.created_at for r in connection.execute(run_query) if shown(r.run_id)],
                "votes": [(r.vote, r.created_at) for r in connection.execute(vote_query) if shown(r.run_id)],
                "latest_grades": [
                    (r.criterion, r.criterion_version, r.passed, r.veto)
                    for r in connection.execute(grade_query)
                    if shown(r.run_id)
                ],
                "writebacks": [
                    (r.state, r.written_at, r.revoked_at) for r in connection.execute(writeback_query) if shown(r.run_id)
                ],
            }

    def change_marker(self) -> tuple:
        """Changes whenever a run, vote or grade is added: what a cache of anything computed
        from runs (the docs gaps) is keyed on. Cheap: counts and a max."""
        self.migrate()
        with self._connect() as connection:
            return (
                connection.scalar(sa.select(sa.func.count()).select_from(RUNS)),
                connection.scalar(sa.select(sa.func.max(RUNS.c.recorded_at))),
                connection.scalar(sa.select(sa.func.count()).select_from(VOTES)),
                connection.scalar(sa.select(sa.func.count()).select_from(GRADES)),
            )

    def count_runs(self) -> int:
        self.migrate()
        with self._connect() as connection:
            return connection.scalar(sa.select(sa.func.count()).select_from(RUNS)) or 0

    def _with_details(self, connection, runs: list[dict]) -> list[QaRun]:
        ids = [r["run_id"] for r in runs]
        if not ids:
            return []
        votes: dict[str, list[dict]] = {}
        for row in connection.execute(sa.select(VOTES).where(VOTES.c.run_id.in_(ids)).order_by(*VOTE_ORDER)).mappings():
            votes.setdefault(row["run_id"], []).append(
                {
                    "vote_id": row["vote_id"],
                    "vote": row["vote"],
                    "user_id": row["user_id"],
                    "comment": row["comment"],
                    "created_at": row["created_at"].isoformat(),
                    "recorded_at": (row["recorded_at"] or row["created_at"]).isoformat(),
                    "recorded_by": row["recorded_by"],
                }
            )
        grades: dict[str, list[dict]] = {}
        for row in connection.execute(
            sa.select(GRADES).where(GRADES.c.run_id.in_(ids)).order_by(GRADES.c.graded_at, GRADES.c.grade_id)
        ).mappings():
            grade = {
                k: row[k] for k in ("criterion", "criterion_version", "judge", "score", "passed", "reason", "veto", "tokens")
            }
            grades.setdefault(row["run_id"], []).append({**grade, "graded_at": row["graded_at"].isoformat()})
        writebacks = {
            row["run_id"]: {
                "doc_id": row["doc_id"],
                "collection": row["collection"],
                "state": row["state"],
                "written_at": row["written_at"].isoformat(),
                "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
                "revoke_reason": row["revoke_reason"],
                "grader_versions": row["grader_versions"],
            }
            for row in connection.execute(sa.select(WRITEBACKS).where(WRITEBACKS.c.run_id.in_(ids))).mappings()
        }
        failures = {
            row["run_id"]: {
                "failures": row["failures"],
                "last_error": row["last_error"],
                "last_failed_at": row["last_failed_at"].isoformat(),
                "parked_at": row["parked_at"].isoformat() if row["parked_at"] else None,
            }
            for row in connection.execute(sa.select(GRADING_FAILURES).where(GRADING_FAILURES.c.run_id.in_(ids))).mappings()
        }
        out: list[QaRun] = []
        for run in runs:
            run_votes = votes.get(run["run_id"], [])
            # The one place a stored row becomes the read model.
            out.append(
                cast(
                    QaRun,
                    {
                        **{k: v for k, v in run.items() if k not in ("created_at", "recorded_at")},
                        "created_at": run["created_at"].isoformat(),
                        "recorded_at": run["recorded_at"].isoformat(),
                        "votes": run_votes,
                        "vote_summary": summarize_votes(run_votes),
                        "grades": grades.get(run["run_id"], []),
                        "writeback": writebacks.get(run["run_id"]),
                        "grading_failure": failures.get(run["run_id"]),
                    },
                )
            )
        return out

    def get_runs(self, run_ids: Iterable[str], *, audience: str = EVERYTHING) -> list[QaRun]:
        """The runs with these ids (with votes, grades and write-back), in the order given;
        ids not stored, and runs `audience` may not see, are left out."""
        self.migrate()
        visible_to(audience)
        ids = list(dict.fromkeys(run_ids))
        found: dict[str, QaRun] = {}
        with self._connect() as connection:
            for group in _id_groups(ids):
                rows = [
                    dict(r)
                    for r in connection.execute(sa.select(RUNS).where(RUNS.c.run_id.in_(group))).mappings()
                    if run_visible_to(r["sources"], audience)
                ]
                found.update((run["run_id"], run) for run in self._with_details(connection, rows))
        return [found[run_id] for run_id in ids if run_id in found]

    # --- grading ---

    def ungraded_run_ids(self, limit: int) -> list[str]:
        """Runs that have no grade at all, oldest first."""
        self.migrate()
        graded = sa.select(GRADES.c.run_id).where(GRADES.c.run_id == RUNS.c.run_id).exists()
        query = sa.select(RUNS.c.run_id).where(~graded, ~_parked()).order_by(RUNS.c.created_at, RUNS.c.run_id).limit(limit)
        with self._connect() as connection:
            return list(connection.scalars(query))

    def run_ids_with_new_votes(self, limit: int) -> list[str]:
        """Graded runs with a vote recorded after their last grade, oldest run first."""
        self.migrate()
        last = sa.select(GRADES.c.run_id, sa.func.max(GRADES.c.graded_at).label("graded_at")).group_by(GRADES.c.run_id).subquery()
        recorded = sa.func.coalesce(VOTES.c.recorded_at, VOTES.c.created_at)
        query = (
            sa.select(RUNS.c.run_id)
            .join(last, last.c.run_id == RUNS.c.run_id)
            .where(
                sa.select(VOTES.c.vote_id).where(VOTES.c.run_id == RUNS.c.run_id, recorded > last.c.graded_at).exists(),
                ~_parked(),
            )
            .order_by(RUNS.c.created_at, RUNS.c.run_id)
            .limit(limit)
        )
        with self._connect() as connection:
            return list(connection.scalars(query))

    def latest_grades(self, run_ids: Iterable[str] | None = None) -> dict[str, dict[str, dict]]:
        """run_id -> criterion -> its latest grade row (the highest grade_id); None: every graded run."""
        self.migrate()
        latest: dict[str, dict[str, dict]] = {}
        with self._connect() as connection:
            batches: list[list[str] | None]
            batches = [None] if run_ids is None else list(_id_groups(list(dict.fromkeys(run_ids))))
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

    def record_grading_failure(self, run_id: str, error: str, park_after: int) -> dict:
        """Count a failed attempt to grade a run; after `park_after` failures it is parked (not
        selected again, shown with its reason in `ragloop runs`) so it cannot block the queue."""
        self.migrate()
        now = _now()
        with self._begin() as connection:
            row = connection.execute(sa.select(GRADING_FAILURES).where(GRADING_FAILURES.c.run_id == run_id)).mappings().first()
            failures = (row["failures"] if row else 0) + 1
            values = {"failures": failures, "last_error": error[:2000], "last_failed_at": now}
            values["parked_at"] = (row and row["parked_at"]) or (now if failures >= park_after else None)
            if row is None:
                if connection.scalar(sa.select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)) is None:
                    raise RunNotFound(f"no run {run_id!r}")
                connection.execute(sa.insert(GRADING_FAILURES).values(run_id=run_id, **values))
            else:
                connection.execute(sa.update(GRADING_FAILURES).where(GRADING_FAILURES.c.run_id == run_id).values(**values))
        return {"run_id": run_id, "failures": failures, "parked": values["parked_at"] is not None}

    def clear_grading_failures(self, run_id: str) -> None:
        """A run graded at last starts counting failures afresh."""
        self.migrate()
        with self._begin() as connection:
            connection.execute(sa.delete(GRADING_FAILURES).where(GRADING_FAILURES.c.run_id == run_id))

    def parked_runs(self) -> list[dict]:
        """Runs parked after failing to grade, oldest parking first: {run_id, failures, last_error, parked_at}."""
        self.migrate()
        query = (
            sa.select(GRADING_FAILURES).where(GRADING_FAILURES.c.parked_at.is_not(None)).order_by(GRADING_FAILURES.c.parked_at)
        )
        with self._connect() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    def passing_run_ids(self, versions: dict[str, str]) -> list[str]:
        """Runs whose latest grade of every criterion in `versions` passed at that version."""
        self.migrate()
        if not versions:
            return []
        latest = (
            sa.select(sa.func.max(GRADES.c.grade_id).label("grade_id")).group_by(GRADES.c.run_id, GRADES.c.criterion).subquery()
        )
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

    def set_writeback(
        self,
        run_id: str,
        *,
        doc_id: str,
        collection: str,
        state: str,
        grader_versions: dict | None = None,
        reason: str | None = None,
    ) -> bool:
        """Record that a run's answer was written back (state "written"), revoked by the feedback
        DAG ("revoked") or by hand ("revoked_by_hand"). A revocation by hand is final: nothing but
        another one changes it, decided inside the transaction, so a write-back that read the run
        before the revocation landed cannot overwrite it. Returns whether the record changed."""
        if state not in WRITEBACK_STATES:
            raise ValueError(f"write-back state must be one of {WRITEBACK_STATES}, not {state!r}")
        state = WritebackState(state).value  # the plain string: every database driver binds it
        self.migrate()
        now = _now()
        with self._begin() as connection:
            existing = (
                connection.execute(sa.select(WRITEBACKS).where(WRITEBACKS.c.run_id == run_id).with_for_update())
                .mappings()
                .first()
            )
            if (
                existing is not None
                and existing["state"] == WritebackState.REVOKED_BY_HAND
                and state != WritebackState.REVOKED_BY_HAND
            ):
                return False
            values: dict[str, Any]
            if state == WritebackState.WRITTEN:
                values = {
                    "doc_id": doc_id,
                    "collection": collection,
                    "state": state,
                    "grader_versions": grader_versions or {},
                    "revoked_at": None,
                    "revoke_reason": None,
                }
                if existing is None or existing["state"] != WritebackState.WRITTEN:
                    values["written_at"] = now
            else:
                values = {"doc_id": doc_id, "collection": collection, "state": state, "revoked_at": now, "revoke_reason": reason}
                if existing is None:
                    values.update(written_at=now, grader_versions=grader_versions or {})
            if existing is None:
                connection.execute(sa.insert(WRITEBACKS).values(run_id=run_id, **values))
            else:
                connection.execute(sa.update(WRITEBACKS).where(WRITEBACKS.c.run_id == run_id).values(**values))
        return True

    # --- feedback ranking: vote credits, operators' chunk actions, curated answers ---

    def _controls(self, connection, chunk_ids: list[str] | None) -> dict[str, list[ChunkAction]]:
        query = sa.select(CHUNK_ACTIONS_TABLE).order_by(CHUNK_ACTIONS_TABLE.c.action_id)
        if chunk_ids is not None:
            query = query.where(CHUNK_ACTIONS_TABLE.c.chunk_id.in_(chunk_ids))
        actions: dict[str, list[ChunkAction]] = {}
        for row in connection.execute(query).mappings():
            actions.setdefault(row["chunk_id"], []).append(
                ChunkAction(row["chunk_id"], row["action"], row["actor"], row["reason"], row["acted_at"], row["boost"])
            )
        return actions

    def _credits(self, connection, chunk_ids: list[str] | None, audience: str) -> list[dict]:
        query = sa.select(VOTE_CREDITS).where(VOTE_CREDITS.c.audience.in_(visible_to(audience)))
        if chunk_ids is not None:
            query = query.where(VOTE_CREDITS.c.chunk_id.in_(chunk_ids))
        return [dict(r) for r in connection.execute(query).mappings()]

    def chunk_adjustments(
        self,
        chunk_ids: Iterable[str],
        *,
        audience: str = EVERYTHING,
        policy: BoostPolicy | None = None,
        boosts_on: bool = True,
        now: datetime | None = None,
    ) -> dict[str, ChunkAdjustment]:
        """What search does with these chunks for a viewer of `audience`: hidden ones left out (always),
        the others' scores multiplied by their boost (when `boosts_on`): the votes on runs that
        audience may see, since the chunk's last reset, or the pinned boost. Chunks left as they
        are do not appear in the result."""
        self.migrate()
        visible_to(audience)
        ids = [i for i in dict.fromkeys(chunk_ids) if i]
        now = now or _now()
        out: dict[str, ChunkAdjustment] = {}
        with self._connect() as connection:
            for group in _id_groups(ids):
                controls = {c: fold_actions(a) for c, a in self._controls(connection, group).items()}
                credits = self._credits(connection, group, audience) if boosts_on else []
                counted = [
                    StoredCredit(r["chunk_id"], r["voter"], r["kind"], r["credit"], r["voted_at"])
                    for r in credits
                    if controls.get(r["chunk_id"]) is None
                    or controls[r["chunk_id"]].reset_at is None
                    or r["voted_at"] > controls[r["chunk_id"]].reset_at
                ]
                boosts = add_up(counted, now, policy)
                for chunk_id in group:
                    control = controls.get(chunk_id)
                    if control is None and chunk_id not in boosts:
                        continue
                    found = adjustment(control or ChunkControl(), boosts.get(chunk_id, 0.0), boosts_on=boosts_on)
                    if found.hidden or found.multiplier != 1.0:
                        out[chunk_id] = found
        return out

    def record_chunk_action(self, chunk_id: str, action: str, *, actor: str, reason: str, boost: float | None = None) -> dict:
        """Record an operator's action on a chunk (pin with a boost, unpin, reset, hide, unhide):
        who, when and why, kept as history; returns the row as shown."""
        if action not in CHUNK_ACTIONS:
            raise ChunkActionInvalid(f"action must be one of {', '.join(CHUNK_ACTIONS)}, not {action!r}")
        if not chunk_id.strip() or len(chunk_id) > 100:
            raise ChunkActionInvalid("chunk_id must be a chunk's id (1 to 100 characters)")
        if not actor.strip() or not reason.strip():
            raise ChunkActionInvalid(f"{action} of chunk {chunk_id!r}: who and why are both required")
        if action == "pin":
            if boost is None or not -PINNED_BOOST_LIMIT <= boost <= PINNED_BOOST_LIMIT:
                raise ChunkActionInvalid(
                    f"pin of chunk {chunk_id!r}: boost must be a number from {-PINNED_BOOST_LIMIT:g} to {PINNED_BOOST_LIMIT:g}"
                )
        elif boost is not None:
            raise ChunkActionInvalid(f"{action} of chunk {chunk_id!r} takes no boost (only pin does)")
        self.migrate()
        acted_at = _now()
        row: dict[str, Any] = {
            "chunk_id": chunk_id,
            "action": action,
            "boost": boost,
            "actor": actor[:200],
            "reason": reason[:2000],
        }
        with self._begin() as connection:
            connection.execute(sa.insert(CHUNK_ACTIONS_TABLE).values(**row, acted_at=acted_at))
        return {**row, "acted_at": acted_at.isoformat()}

    def boost_report(
        self,
        *,
        audience: str = EVERYTHING,
        limit: int = 10,
        policy: BoostPolicy | None = None,
        now: datetime | None = None,
    ) -> dict[str, list[dict]]:
        """For the operator's page: the most boosted and most demoted chunks (by the votes on runs
        `audience` may see, since each chunk's last reset; pins count) with their up and down
        votes, and every chunk an operator acted on with its history (who, when, why)."""
        self.migrate()
        visible_to(audience)
        now = now or _now()
        with self._connect() as connection:
            actions = self._controls(connection, None)
            controls = {c: fold_actions(a) for c, a in actions.items()}
            credits = self._credits(connection, None, audience)
        counted = [
            r
            for r in credits
            if controls.get(r["chunk_id"]) is None
            or controls[r["chunk_id"]].reset_at is None
            or r["voted_at"] > controls[r["chunk_id"]].reset_at
        ]
        boosts = add_up(
            [StoredCredit(r["chunk_id"], r["voter"], r["kind"], r["credit"], r["voted_at"]) for r in counted], now, policy
        )
        about: dict[str, dict] = {}
        for r in counted:
            entry = about.setdefault(
                r["chunk_id"],
                {"chunk_id": r["chunk_id"], "doc_id": r["doc_id"], "title": r["title"], "kind": r["kind"], "voters": {}},
            )
            entry["voters"][(r["run_id"], r["voter"])] = r["vote"]
        rows = []
        for chunk_id in set(about) | {c for c, control in controls.items() if control.pinned is not None or control.hidden}:
            control = controls.get(chunk_id)
            entry = about.get(chunk_id, {"chunk_id": chunk_id, "doc_id": "", "title": "", "kind": "", "voters": {}})
            boost = control.pinned if control and control.pinned is not None else boosts.get(chunk_id, 0.0)
            votes = list(entry.pop("voters").values())
            rows.append(
                {
                    **entry,
                    "boost": round(boost, 4),
                    "multiplier": round(boost_multiplier(boost), 4),
                    "up": votes.count("up"),
                    "down": votes.count("down"),
                    "pinned": control.pinned if control else None,
                    "hidden": bool(control and control.hidden),
                }
            )
        controlled = [
            {
                "chunk_id": chunk_id,
                "pinned": controls[chunk_id].pinned,
                "hidden": controls[chunk_id].hidden,
                "reset_at": _iso(controls[chunk_id].reset_at),
                "history": [
                    {
                        "action": a.action,
                        "boost": a.boost,
                        "actor": a.actor,
                        "reason": a.reason,
                        "acted_at": a.acted_at.isoformat(),
                    }
                    for a in history
                ][::-1],
            }
            for chunk_id, history in sorted(actions.items(), key=lambda item: item[1][-1].acted_at, reverse=True)
        ]
        return {
            "boosted": sorted([r for r in rows if r["boost"] > 0], key=lambda r: (-r["boost"], r["chunk_id"]))[:limit],
            "demoted": sorted([r for r in rows if r["boost"] < 0], key=lambda r: (r["boost"], r["chunk_id"]))[:limit],
            "controlled": controlled,
        }

    def curated_candidates(self, *, audience: str = EVERYTHING) -> list[CuratedAnswer]:
        """The written-back answers (state written) whose runs `audience` may see, newest first:
        what a question may be answered with directly."""
        self.migrate()
        visible_to(audience)
        query = (
            sa.select(RUNS.c.run_id, RUNS.c.question, RUNS.c.answer, RUNS.c.sources, WRITEBACKS.c.doc_id)
            .join(WRITEBACKS, WRITEBACKS.c.run_id == RUNS.c.run_id)
            .where(WRITEBACKS.c.state == WritebackState.WRITTEN.value)
            .order_by(WRITEBACKS.c.written_at.desc(), RUNS.c.run_id)
        )
        with self._connect() as connection:
            return [
                CuratedAnswer(run_id=r.run_id, doc_id=r.doc_id, question=r.question, answer=r.answer)
                for r in connection.execute(query)
                if run_visible_to(r.sources, audience)
            ]

    def curated_hits(self, *, audience: str = EVERYTHING) -> list[dict]:
        """Per curated answer that served a question: its run, question, write-back state, how many
        runs it answered and when last (of the runs `audience` may see), most hits first."""
        self.migrate()
        visible = self.visible_run_ids(audience)
        query = (
            sa.select(
                CURATED_HITS.c.curated_run_id,
                CURATED_HITS.c.hit_run_id,
                CURATED_HITS.c.similarity,
                CURATED_HITS.c.created_at,
                RUNS.c.question,
                WRITEBACKS.c.state,
            )
            .join(RUNS, RUNS.c.run_id == CURATED_HITS.c.curated_run_id)
            .join(WRITEBACKS, WRITEBACKS.c.run_id == CURATED_HITS.c.curated_run_id, isouter=True)
            .order_by(CURATED_HITS.c.created_at)
        )
        found: dict[str, dict] = {}
        with self._connect() as connection:
            for r in connection.execute(query):
                if visible is not None and (r.curated_run_id not in visible or r.hit_run_id not in visible):
                    continue
                entry = found.setdefault(
                    r.curated_run_id,
                    {"run_id": r.curated_run_id, "question": r.question, "state": r.state, "hits": 0, "similarities": []},
                )
                entry["hits"] += 1
                entry["last_hit_at"] = r.created_at.isoformat()
                entry["similarities"].append(r.similarity)
        rows = []
        for entry in found.values():
            similarities = entry.pop("similarities")
            rows.append({**entry, "lowest_similarity": round(min(similarities), 4)})
        return sorted(rows, key=lambda e: (-e["hits"], e["run_id"]))

    # --- DAG-run reports ---

    def save_report(self, kind: str, dag_id: str, dag_run_id: str, report: dict) -> int:
        """Store one DAG run's report; a report stored again for the same DAG run (a retried
        report task) replaces the earlier one. Returns the row's id."""
        self.migrate()
        values: dict[str, Any] = {"kind": kind, "created_at": _now(), "ok": not report.get("errors"), "report": report}
        with self._begin() as connection:
            where = sa.and_(REPORTS.c.dag_id == dag_id, REPORTS.c.dag_run_id == dag_run_id)
            existing = connection.scalar(sa.select(REPORTS.c.report_id).where(where))
            if existing is None:
                inserted = connection.execute(sa.insert(REPORTS).values(dag_id=dag_id, dag_run_id=dag_run_id, **values))
                return int(inserted.inserted_primary_key[0])
            connection.execute(sa.update(REPORTS).where(REPORTS.c.report_id == existing).values(**values))
            return int(existing)

    def list_reports(self, kind: str | None = None, *, since: datetime | None = None, limit: int | None = None) -> list[dict]:
        """Stored DAG-run reports, newest first: {report_id, kind, dag_id, dag_run_id, created_at, ok, report}."""
        self.migrate()
        query = sa.select(REPORTS).order_by(REPORTS.c.created_at.desc(), REPORTS.c.report_id.desc())
        if kind:
            query = query.where(REPORTS.c.kind == kind)
        if since is not None:
            query = query.where(REPORTS.c.created_at >= since)
        if limit:
            query = query.limit(limit)
        with self._connect() as connection:
            return [{**dict(row), "created_at": row["created_at"].isoformat()} for row in connection.execute(query).mappings()]

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
                    report.errors.append(
                        {"line": number, "field": "(line)", "message": f"not valid JSON: {err.msg} at column {err.colno}"}
                    )
                    continue
                except UnicodeDecodeError as err:  # pragma: no cover - depends on the file
                    report.errors.append({"line": number, "field": "(line)", "message": f"not UTF-8: {err}"})
                    continue
                except RecursionError:
                    # Nesting deep enough to exhaust the parser fails this line alone, not the import.
                    report.errors.append({"line": number, "field": "(line)", "message": "nested too deeply to read"})
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
                run = run.model_copy(
                    update={
                        "votes": [v if v.created_at else v.model_copy(update={"created_at": run.created_at}) for v in run.votes]
                    }
                )
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
            if added:
                _refresh_vote_credits(connection, run_id)
        return added


CURATED_HIT_VOTER = "curated hit "  # recorded_by of a vote passed on from a curated hit to its curated run


class ChunkActionInvalid(RunStoreError, ValueError):
    """An operator's chunk action the store refuses: what is wrong is named."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _refresh_vote_credits(connection, run_id: str) -> None:
    """Recompute a run's vote credits from its votes: each voter's latest vote (as the store
    recorded them) split over the chunks the answer cited. Votes passed on from a curated hit are
    left out here: the hit run's own credits already move the same chunks."""
    # The run's row locked (FOR NO KEY UPDATE: it does not wait for the key-share locks the vote
    # inserts hold) so two votes on one run refresh its credits one after the other; without it,
    # both deleted nothing the other had written yet and both inserted the same rows.
    run = connection.execute(
        sa.select(RUNS.c.sources, RUNS.c.answer).where(RUNS.c.run_id == run_id).with_for_update(key_share=True)
    ).first()
    connection.execute(sa.delete(VOTE_CREDITS).where(VOTE_CREDITS.c.run_id == run_id))
    if run is None:
        return
    votes = [
        dict(v)
        for v in connection.execute(sa.select(VOTES).where(VOTES.c.run_id == run_id).order_by(*VOTE_ORDER)).mappings()
        if not (v["recorded_by"] or "").startswith(CURATED_HIT_VOTER)
    ]
    sources = run.sources if isinstance(run.sources, list) else []
    chunks = [
        CitedChunk(
            chunk_id=str(s.get("chunk_id") or ""),
            doc_id=str(s.get("doc_id") or ""),
            kind=str(s.get("kind") or ""),
            title=str(s.get("title") or "")[:1000],
            score=s.get("score") if isinstance(s.get("score"), int | float) else None,
        )
        if isinstance(s, dict)
        else CitedChunk("", "", "", "", None)
        for s in sources
    ]
    audience = Visibility.PUBLIC.value if run_visible_to(sources, Visibility.PUBLIC.value) else EVERYTHING
    for voter_key, vote in latest_votes(votes).items():
        for credit in vote_credits(chunks, run.answer or "", vote["vote"]):
            connection.execute(
                sa.insert(VOTE_CREDITS).values(
                    run_id=run_id,
                    voter=voter_key[:300],
                    chunk_id=credit.chunk_id[:100],
                    doc_id=credit.doc_id[:2000],
                    kind=credit.kind[:20],
                    title=credit.title,
                    audience=audience,
                    vote=vote["vote"],
                    credit=credit.credit,
                    voted_at=vote["recorded_at"] or vote["created_at"],
                )
            )


def backfill_vote_credits(connection) -> None:
    """Credits for every run with votes (migration 5: votes cast before boosts existed count too)."""
    for run_id in list(connection.scalars(sa.select(VOTES.c.run_id).distinct())):
        _refresh_vote_credits(connection, run_id)


# Data a schema migration needs filled by the store's own rules, run right after it in its
# transaction: migration 5 gives the votes cast before boosts existed their credits.
DATA_MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {5: backfill_vote_credits}


def _record_curated_hit(connection, run_id: str, curated: dict) -> None:
    """A run answered by a curated answer: which one, and how close the questions were."""
    curated_run_id = str(curated["run_id"])
    if connection.scalar(sa.select(RUNS.c.run_id).where(RUNS.c.run_id == curated_run_id)) is None:
        raise RunStoreError(f"run {run_id}: metadata.curated.run_id {curated_run_id!r} is not a stored run")
    similarity = curated.get("similarity")
    connection.execute(
        sa.insert(CURATED_HITS).values(
            hit_run_id=run_id,
            curated_run_id=curated_run_id,
            similarity=float(similarity) if isinstance(similarity, int | float) else 0.0,
            created_at=_now(),
        )
    )


def _pass_vote_to_curated_answer(connection, run_id: str, vote: VoteIn) -> None:
    """A vote on a run a curated answer served is a vote on that answer too: recorded on the
    curated run as well (same voter, marked as passed on), where the feedback DAG's revocation
    reads it; a down vote there revokes the curated answer as one on its own run would."""
    curated_run_id = connection.scalar(sa.select(CURATED_HITS.c.curated_run_id).where(CURATED_HITS.c.hit_run_id == run_id))
    if curated_run_id is None:
        return
    note = f"on curated hit {run_id}" + (f": {vote.comment}" if vote.comment else "")
    passed_on = vote.model_copy(update={"comment": note[:4000]})
    connection.execute(
        sa.insert(VOTES).values(**_vote_row(curated_run_id, passed_on), recorded_by=f"{CURATED_HIT_VOTER}{run_id}"[:200])
    )


def _parked():
    return (
        sa.select(GRADING_FAILURES.c.run_id)
        .where(GRADING_FAILURES.c.run_id == RUNS.c.run_id, GRADING_FAILURES.c.parked_at.is_not(None))
        .exists()
    )


ID_GROUP = 500  # ids per IN list: bounded statements on every database


def _id_groups(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + ID_GROUP] for i in range(0, len(ids), ID_GROUP)]


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
            raise unavailable(err, self._url) from err

    def __exit__(self, exc_type, exc, tb):
        try:
            result = self._context.__exit__(exc_type, exc, tb)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as err:
            raise unavailable(err, self._url) from err
        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            raise unavailable(exc, self._url) from exc
        return result


def _run_row(run: RunIn, run_id: str) -> dict:
    now = _now()
    return {
        "run_id": run_id,
        "created_at": run.created_at or now,
        "recorded_at": now,
        "app": run.app or "api",
        "user_id": run.user_id,
        "question": run.question,
        "rewrites": list(run.rewrites),
        "sources": [s.model_dump() for s in run.sources],
        "answer": run.answer,
        "model": run.model,
        "prompt_name": run.prompt_name,
        "prompt_version": run.prompt_version,
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "token_source": run.token_source or ("none" if run.prompt_tokens is None else "api"),
        "latency_ms": run.latency_ms,
        "metadata": run.metadata,
    }


def _vote_row(run_id: str, vote: VoteIn) -> dict:
    now = _now()
    created = vote.created_at or now
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return {
        "run_id": run_id,
        "user_id": vote.user_id,
        "vote": vote.vote,
        "comment": vote.comment,
        "created_at": created.astimezone(UTC),
        "recorded_at": now,
    }
