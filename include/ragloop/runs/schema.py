"""The run store's tables and their numbered migrations (recorded in `ragloop_schema`). Later
changes are new migrations, never an edit of what an earlier one does."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import sqlalchemy as sa


class UtcDateTime(sa.types.TypeDecorator):
    """Stored as UTC, read back timezone-aware on every database (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _schema_v1(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The tables as migration 1 creates them. Later changes are new migrations that alter these
    tables (and update the definitions below), never an edit of what migration 1 does."""
    runs = sa.Table(
        "ragloop_runs",
        metadata,
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
        "ragloop_votes",
        metadata,
        sa.Column("vote_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("ragloop_runs.run_id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("vote", sa.String(4), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("vote in ('up', 'down')", name="ragloop_votes_vote"),
    )
    grades = sa.Table(
        "ragloop_grades",
        metadata,
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
        "ragloop_writebacks",
        metadata,
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
VOTE_RECORDED_AT: sa.Column = sa.Column("recorded_at", UtcDateTime(), index=True)
VOTES.append_column(VOTE_RECORDED_AT)
# Migration 3: who recorded a vote on someone's behalf (an app's principal; None when the voter
# recorded it), and the runs grading failed on, parked after a few failures.
VOTE_RECORDED_BY = sa.Column("recorded_by", sa.String(200))
VOTES.append_column(VOTE_RECORDED_BY)
# Oldest first by the time the server recorded the vote, never the client's created_at (an up vote
# dated 2100 must not outlive a later down vote): the last vote of a user counts.
VOTE_ORDER = (sa.func.coalesce(VOTES.c.recorded_at, VOTES.c.created_at), VOTES.c.vote_id)


def _grading_failures_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "ragloop_grading_failures",
        metadata,
        sa.Column("run_id", sa.String(64), sa.ForeignKey("ragloop_runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_failed_at", UtcDateTime(), nullable=False),
        sa.Column("parked_at", UtcDateTime()),  # set after MAX_GRADING_FAILURES: not selected again
    )


GRADING_FAILURES = _grading_failures_table(METADATA)


def _reports_table(metadata: sa.MetaData) -> sa.Table:
    """Migration 4: every ingest and feedback DAG run's report (what the asset event's extra and the
    report task's XCom carry), kept here so the operator's page and `ragloop report` read it after
    XCom clean-up. One row per DAG run: a retried report task replaces its row."""
    return sa.Table(
        "ragloop_reports",
        metadata,
        sa.Column("report_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False, index=True),  # ingest | feedback
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("dag_run_id", sa.String(250), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False, index=True),
        sa.Column("ok", sa.Boolean(), nullable=False),  # the report names no error
        sa.Column("report", sa.JSON(), nullable=False),
        sa.UniqueConstraint("dag_id", "dag_run_id", name="ragloop_reports_dag_run"),
    )


REPORTS = _reports_table(METADATA)


def _feedback_ranking_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """Migration 5: what votes do to retrieval, and what operators did about it.

    - vote credits: each voter's latest vote on a run, split over the chunks the run's answer
      cited (ragloop.feedback.boosts), one row per (run, voter, chunk), replaced when the voter
      votes again; `audience` is the run's (public when every source was public), so a public
      viewer's ranking moves only with votes on runs a public viewer could see.
    - chunk actions: an operator's pin, unpin, reset, hide and unhide of a chunk, who, when, why;
      the latest of each kind decides (nothing is deleted: the history is shown).
    - curated hits: a run answered with a written-back answer (the curated run) instead of a
      generated one; votes on the hit reach the curated run."""
    credits = sa.Table(
        "ragloop_vote_credits",
        metadata,
        sa.Column("credit_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("ragloop_runs.run_id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("voter", sa.String(300), nullable=False),
        sa.Column("chunk_id", sa.String(100), nullable=False, index=True),
        sa.Column("doc_id", sa.String(2000), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("title", sa.String(1000), nullable=False),
        sa.Column("audience", sa.String(20), nullable=False),
        sa.Column("vote", sa.String(4), nullable=False),
        sa.Column("credit", sa.Float(), nullable=False),
        sa.Column("voted_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("run_id", "voter", "chunk_id", name="ragloop_vote_credits_once"),
    )
    actions = sa.Table(
        "ragloop_chunk_actions",
        metadata,
        sa.Column("action_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("chunk_id", sa.String(100), nullable=False, index=True),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("boost", sa.Float()),  # the pinned boost (pin only)
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("acted_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("action in ('pin', 'unpin', 'reset', 'hide', 'unhide')", name="ragloop_chunk_actions_action"),
    )
    hits = sa.Table(
        "ragloop_curated_hits",
        metadata,
        sa.Column("hit_run_id", sa.String(64), sa.ForeignKey("ragloop_runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "curated_run_id", sa.String(64), sa.ForeignKey("ragloop_runs.run_id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    return {"credits": credits, "actions": actions, "hits": hits}


_RANKING = _feedback_ranking_tables(METADATA)
VOTE_CREDITS, CHUNK_ACTIONS, CURATED_HITS = _RANKING["credits"], _RANKING["actions"], _RANKING["hits"]

SCHEMA_TABLE = sa.Table(
    "ragloop_schema",
    sa.MetaData(),
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


def _migration_3(connection: sa.Connection) -> None:
    column_type = VOTE_RECORDED_BY.type.compile(dialect=connection.dialect)
    connection.execute(sa.text(f"ALTER TABLE ragloop_votes ADD COLUMN recorded_by {column_type}"))
    frozen = sa.MetaData()
    sa.Table("ragloop_runs", frozen, sa.Column("run_id", sa.String(64), primary_key=True))
    _grading_failures_table(frozen).create(connection)


def _migration_4(connection: sa.Connection) -> None:
    frozen = sa.MetaData()
    _reports_table(frozen).create(connection)


def _migration_5(connection: sa.Connection) -> None:
    frozen = sa.MetaData()
    sa.Table("ragloop_runs", frozen, sa.Column("run_id", sa.String(64), primary_key=True))
    for table in _feedback_ranking_tables(frozen).values():
        table.create(connection)
    # Votes cast before this migration move the chunks they judged too: the store's own rule
    # fills the credits in the same transaction (store.DATA_MIGRATIONS; the schema stays below
    # the store, which it would not if it called it).


# (version, description, upgrade): applied in order, each in its own transaction, once.
MIGRATIONS: list[tuple[int, str, Any]] = [
    (1, "runs, votes, grades and write-back records", _migration_1),
    (2, "votes: recorded_at, so grading sees votes that arrived since a run's last grade", _migration_2),
    (3, "votes: recorded_by (an app voting for its users); runs grading failed on, parked", _migration_3),
    (4, "reports: every ingest and feedback DAG run's report, for the operator's page and `ragloop report`", _migration_4),
    (5, "vote credits on cited chunks, operators' chunk actions (pin, reset, hide), curated-answer hits", _migration_5),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
