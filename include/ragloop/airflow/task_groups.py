"""ragloop's public Airflow surface: task groups to put into your own DAGs.

- :func:`ingest_sources` ingests the sources of one type from a ``sources.yaml`` into its
  collection: select → extract (mapped per source) → plan → index (mapped per batch) → prune →
  report → check_complete. It is the flow every ragloop ingest DAG runs.
- :func:`grade_runs` grades the recorded Q&A runs: select_runs → grade (mapped per batch).
- :func:`review_answers` holds the answers that need a person's approval (the config's
  ``review:``, per app or per source) in Airflow's Required Actions: propose_reviews →
  review_answer (a HITL task per answer). Off in the config: it proposes nothing.
- :func:`write_back_answers` writes the good answers back into the collection and revokes the
  ones that stopped being good: write_back → report → check_complete. Between the two groups is
  the place for an approval step of your own (``after=``).
- :func:`feedback_loop` chains the three, as the ``ragloop_grade_feedback`` DAG does.

Every task of a group reads its settings from one :class:`IngestSettings` / :class:`FeedbackSettings`
value, resolved once by the group's first task: an argument given to the factory wins, then the
DAG's ``Param`` of the same name (so a DAG can let people trigger with other values), then the
documented default. No task can drop a setting (issue 23: the grade task once lost its
``weaviate_conn_id``).

The Weaviate connection is read as the official Weaviate provider reads the ``weaviate``
connection type; see the connections page of the docs (``docs/connections.md``).

Only ``airflow.sdk`` is imported at module level: DAG files that use these groups parse fast.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from airflow.sdk import TaskGroup, task

from ragloop.airflow.assets import ingest_asset
from ragloop.index.endpoint import WEAVIATE_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Asset, BaseOperator, XComArg

    from ragloop.grading.types import GradeReport, GradeTally, ReviewRequest, WritebackResult
    from ragloop.ingest.types import BatchResult, ExtractResult, IngestReport, PruneResult
    from ragloop.staging import DagRunRef

__all__ = [
    "FeedbackSettings",
    "IngestSettings",
    "feedback_loop",
    "grade_runs",
    "ingest_sources",
    "review_answers",
    "write_back_answers",
]

_UNSET: Any = None  # an argument not given: the DAG's Param of that name, else the default


class IngestSettings(TypedDict):
    """What every task of an ingest group reads; resolved once, passed whole."""

    config_path: str | None  # sources.yaml path (the `config` Param); None: include/sources.yaml (or RAGLOOP_CONFIG)
    weaviate_conn_id: str  # the Airflow connection of the Weaviate written to
    source_type: str  # the `type` of the sources ingested (docs, slack, github_issues, or a custom one)
    sources: list[str]  # source ids; empty: every source of `source_type`
    full_refresh: bool  # rewrite every document, changed or not
    full_listing: bool  # API sources: read everything, not the window since the watermarks
    staging_key: str  # the run's staging folder is (dag_id + this key, run_id)


class FeedbackSettings(TypedDict):
    """What every task of the grading and write-back groups reads; resolved once, passed whole."""

    config_path: str | None  # sources.yaml path (the `config` Param); None: the default
    weaviate_conn_id: str  # the Weaviate grounding reads and write-back writes
    limit: int  # runs graded per DAG run, oldest first
    regrade_outdated: bool  # also grade again every run graded by an older criterion version
    staging_key: NotRequired[str]


def _resolved(given: dict[str, Any], params: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """Each setting: the factory's argument, else the DAG's Param of that name, else the default."""
    params = params or {}
    return {
        name: given[name] if given.get(name) is not None else (params.get(name) if params.get(name) is not None else default)
        for name, default in defaults.items()
    }


def _staging_ref(dag_run: Any, staging_key: str) -> DagRunRef:
    """The DAG run's staging, one folder per group: two groups of one DAG run never share a plan."""
    from ragloop.staging import DagRunRef

    return DagRunRef(f"{dag_run.dag_id}{staging_key}", dag_run.run_id)


def _staging_key(group_id: str, prefix_group_id: bool) -> str:
    # A group whose ids are not prefixed is the DAG's only one (ragloop's own DAGs): its staging
    # stays where it always was, under the DAG id.
    return f".{group_id}" if prefix_group_id else ""


def ingest_sources(
    *,
    group_id: str = "ingest",
    source_type: str = "docs",
    sources: list[str] | None = _UNSET,
    config: str | None = _UNSET,
    weaviate_conn_id: str | None = _UNSET,
    full_refresh: bool | None = _UNSET,
    full_listing: bool | None = _UNSET,
    outlets: list[Asset] | None = None,
    max_active_index_tasks: int = 4,
    prefix_group_id: bool = True,
) -> TaskGroup:
    """Ingest sources of one type into the collection of a ``sources.yaml``, incrementally.

    Unchanged documents are skipped, unchanged chunk text reuses its vector, new chunks are
    written before stale ones are deleted, documents gone from a complete listing are pruned, and
    API sources' watermarks advance only after their documents are indexed. Any task can be
    retried, and the group re-run, converging to the same index.

    :param group_id: the task group's id (tasks are ``<group_id>.extract`` and so on).
    :param source_type: the ``type`` of the sources to ingest: ``docs``, ``slack``,
        ``github_issues``, or a custom source (``my_package.module:MySource``, or a name registered
        in the ``ragloop.sources`` entry-point group).
    :param sources: ids of the sources to ingest; default: every source of ``source_type``.
    :param config: path of the ``sources.yaml``; default: ``include/sources.yaml`` (or ``RAGLOOP_CONFIG``).
    :param weaviate_conn_id: the Airflow connection of the Weaviate to fill (type ``weaviate``,
        see the connections page); default ``weaviate_default``.
    :param full_refresh: rewrite every document, changed or not (vectors of unchanged text are reused).
    :param full_listing: API sources read everything instead of the window since their
        watermarks, and prune documents gone from the source.
    :param outlets: the assets the report task updates; default: the collection's asset
        (``ragloop://weaviate/<collection>``), with the report as the event's extra.
    :param max_active_index_tasks: index tasks running at once per DAG run.
    :param prefix_group_id: prefix task ids with ``group_id`` (Airflow's TaskGroup option).

    Each of ``sources``, ``config``, ``weaviate_conn_id``, ``full_refresh`` and ``full_listing``
    left unset is read from the DAG's ``Param`` of the same name when the DAG has one.

    The report task returns an :class:`ragloop.ingest.types.IngestReport`; ``check_complete``
    fails the run when any source was not ingested, after the others were.
    """
    staging_key = _staging_key(group_id, prefix_group_id)
    given = {
        "config": config,
        "weaviate_conn_id": weaviate_conn_id,
        "sources": sources,
        "full_refresh": full_refresh,
        "full_listing": full_listing,
    }
    assets = outlets if outlets is not None else [ingest_asset(config)]

    with TaskGroup(group_id, prefix_group_id=prefix_group_id, tooltip=f"ingest {source_type} sources") as group:

        @task(multiple_outputs=False)
        def settings(params: Any = None) -> IngestSettings:
            values = _resolved(
                given,
                params,
                {
                    "config": None,
                    "weaviate_conn_id": WEAVIATE_CONN_ID,
                    "sources": [],
                    "full_refresh": False,
                    "full_listing": False,
                },
            )
            return IngestSettings(
                config_path=values["config"],
                weaviate_conn_id=values["weaviate_conn_id"],
                source_type=source_type,
                sources=list(values["sources"]),
                full_refresh=bool(values["full_refresh"]),
                full_listing=bool(values["full_listing"]),
                staging_key=staging_key,
            )

        @task
        def select_sources(settings: IngestSettings) -> list[str]:
            from ragloop.ingest import select_sources

            return select_sources(settings["config_path"], settings["sources"], settings["source_type"])

        @task(map_index_template="{{ task.op_kwargs['source_id'] }}", multiple_outputs=False)
        def extract(source_id: str, settings: IngestSettings, dag_run: Any = None) -> ExtractResult:
            from ragloop.ingest import extract_source
            from ragloop.airflow.lineage import report_extract

            result = extract_source(
                source_id,
                _staging_ref(dag_run, settings["staging_key"]),
                settings["config_path"],
                settings["full_listing"],
                settings["weaviate_conn_id"],
            )
            report_extract(settings["config_path"], source_id, settings["weaviate_conn_id"])
            return result

        # Runs when some extracts failed: the others are still indexed, and the failed ones are
        # neither changed nor pruned, nor do their watermarks move (the report says so and the
        # run ends failed).
        @task(trigger_rule="all_done")
        def plan(source_ids: list[str], settings: IngestSettings, dag_run: Any = None) -> list[str]:
            from ragloop.ingest import plan_ingest

            # The batches to map over; prune and report read the rest of the plan from staging.
            return plan_ingest(
                _staging_ref(dag_run, settings["staging_key"]),
                source_ids,
                settings["config_path"],
                settings["full_refresh"],
                settings["weaviate_conn_id"],
            )["batches"]

        @task(max_active_tis_per_dagrun=max_active_index_tasks, multiple_outputs=False)
        def index(batch: str, settings: IngestSettings) -> BatchResult:
            from ragloop.ingest import index_batch

            return index_batch(batch, settings["config_path"], weaviate_conn_id=settings["weaviate_conn_id"])

        # none_failed: with any index batch failed, nothing is pruned and no watermark advances.
        @task(trigger_rule="none_failed", multiple_outputs=False)
        def prune(settings: IngestSettings, dag_run: Any = None) -> PruneResult:
            from ragloop.ingest import prune_sources

            return prune_sources(
                _staging_ref(dag_run, settings["staging_key"]), settings["config_path"], settings["weaviate_conn_id"]
            )

        @task(trigger_rule="none_failed", outlets=assets, multiple_outputs=False)
        def report(
            source_ids: list[str],
            indexed: Sequence[BatchResult] | None,  # the mapped index tasks' results (a lazy sequence)
            pruned: PruneResult,
            settings: IngestSettings,
            dag_run: Any = None,
            outlet_events: Any = None,
        ) -> IngestReport:
            from ragloop.ingest import build_report
            from ragloop.runs.reports import keep_report

            # One slice request: iterating the lazy sequence probes past its end, which Airflow
            # logs as an error ("XCom not found") on every run.
            results: list[BatchResult] = list(indexed[:]) if indexed else []
            result = build_report(
                _staging_ref(dag_run, settings["staging_key"]),
                source_ids,
                results,
                pruned,
                settings["config_path"],
                settings["weaviate_conn_id"],
            )
            for asset in assets:
                outlet_events[asset].extra = dict(result)
            # For the operator's page and `ragloop report`, past XCom clean-up.
            result["report_stored"] = keep_report("ingest", dict(result))  # type: ignore[typeddict-unknown-key]
            return result

        @task(trigger_rule="none_failed")
        def check_complete(result: IngestReport) -> None:
            from ragloop.errors import IngestError

            if result["errors"]:
                raise IngestError("Sources not ingested: " + "; ".join(result["errors"]))

        # XComArgs, typed Any: each stands for the value its task returns.
        resolved: Any = settings()
        source_ids: Any = select_sources(resolved)
        extracted = extract.partial(settings=resolved).expand(source_id=source_ids)
        planned: Any = plan(source_ids, resolved)
        extracted >> planned
        indexed: Any = index.partial(settings=resolved).expand(batch=planned)
        pruned: Any = prune(resolved)
        indexed >> pruned
        ingest_report: Any = report(source_ids, indexed, pruned, resolved)
        check_complete(ingest_report)
    return group


def grade_runs(
    *,
    group_id: str = "grade_runs",
    config: str | None = _UNSET,
    weaviate_conn_id: str | None = _UNSET,
    limit: int | None = _UNSET,
    regrade_outdated: bool | None = _UNSET,
    max_active_grade_tasks: int = 4,
    prefix_group_id: bool = True,
) -> TaskGroup:
    """Grade recorded Q&A runs: deterministic checks first (secrets, personal data, refusals,
    prompt injection, cited sources the index does not hold), then the configured judge for each
    criterion. Grades go to the run store (connection ``ragloop_runs_default``).

    :param group_id: the task group's id.
    :param config: path of the ``sources.yaml`` (its ``llm:`` selects the judge); default
        ``include/sources.yaml``.
    :param weaviate_conn_id: the Weaviate whose chunks ground the answers' citations (type
        ``weaviate``, see the connections page); default ``weaviate_default``.
    :param limit: runs graded per DAG run, oldest first; default 1000.
    :param regrade_outdated: also grade again every run graded by an older criterion version.
    :param max_active_grade_tasks: grade tasks running at once per DAG run.
    :param prefix_group_id: prefix task ids with ``group_id``.

    Unset arguments are read from the DAG's Params of the same name, when it has them. Each grade
    task returns a :class:`ragloop.grading.types.GradeTally`. Pass the group to
    :func:`write_back_answers`.
    """
    given = {"config": config, "weaviate_conn_id": weaviate_conn_id, "limit": limit, "regrade_outdated": regrade_outdated}
    staging_key = _staging_key(group_id, prefix_group_id)

    with TaskGroup(group_id, prefix_group_id=prefix_group_id, tooltip="grade recorded Q&A runs") as group:

        @task(multiple_outputs=False)
        def feedback_settings(params: Any = None) -> FeedbackSettings:
            from ragloop.grading import DEFAULT_RUN_LIMIT

            values = _resolved(
                given,
                params,
                {"config": None, "weaviate_conn_id": WEAVIATE_CONN_ID, "limit": DEFAULT_RUN_LIMIT, "regrade_outdated": False},
            )
            return FeedbackSettings(
                config_path=values["config"],
                weaviate_conn_id=values["weaviate_conn_id"],
                limit=int(values["limit"]),
                regrade_outdated=bool(values["regrade_outdated"]),
                staging_key=staging_key,
            )

        @task
        def select_runs(settings: FeedbackSettings) -> list[list[str]]:
            from ragloop.grading import select_runs

            return select_runs(settings["config_path"], settings["limit"], settings["regrade_outdated"])

        @task(max_active_tis_per_dagrun=max_active_grade_tasks, multiple_outputs=False)
        def grade(run_ids: list[str], settings: FeedbackSettings) -> GradeTally:
            from ragloop.grading import grade_batch

            return grade_batch(run_ids, settings["config_path"], weaviate_conn_id=settings["weaviate_conn_id"])

        resolved: Any = feedback_settings()
        grade.partial(settings=resolved).expand(run_ids=select_runs(resolved))
    return group


DEFAULT_REVIEW_TIMEOUT = timedelta(hours=12)  # then the answer is held for the next run, unanswered


def review_answers(
    graded: TaskGroup,
    *,
    group_id: str = "review_answers",
    response_timeout: timedelta | None = DEFAULT_REVIEW_TIMEOUT,
    prefix_group_id: bool = True,
) -> TaskGroup:
    """Hold the answers that need a person's approval before write-back: ``propose_reviews``
    lists the good answers the config's ``review:`` names (recorded by one of its ``apps``, or
    citing a chunk of one of its ``sources``, or ``review: all``) that nobody decided on yet, and
    ``review_answer``, a standard-provider HITL task per answer, shows each in Airflow's Required
    Actions with its question, answer, cited passages, grades and votes. Approve records the
    approval; Reject records the reason and revokes the answer as ``ragloop qa revoke`` does.

    Write-back does not wait for reviews (answers that need none, and revocations, are never held
    up by a person): it leaves the answers waiting for review out. Each decision updates the runs
    asset, so the next feedback run starts when this one ends, and its write-back publishes what
    was approved. Without ``review:`` in the config nothing is proposed and the review tasks are
    skipped: the DAG behaves as without this group.

    :param graded: the group :func:`grade_runs` returned; its settings are used.
    :param group_id: the task group's id.
    :param response_timeout: how long a review waits for a person; then the answer is held (not
        written, nothing recorded) and proposed again by the next run. None: wait for ever. While
        a review waits, its DAG run is running: with ``max_active_runs=1`` later feedback runs
        wait for it.
    :param prefix_group_id: prefix task ids with ``group_id``.
    """
    from ragloop.airflow.assets import runs_asset
    from ragloop.airflow.review_operator import ReviewAnswerOperator, reason_form

    settings_task: Any = graded.get_child_by_label("feedback_settings")
    grade_task: Any = graded.get_child_by_label("grade")

    with TaskGroup(group_id, prefix_group_id=prefix_group_id, tooltip="hold answers for a person's approval") as group:
        # all_done: a failed grade batch holds back only its own runs' reviews.
        @task(trigger_rule="all_done")
        def propose_reviews(settings: FeedbackSettings) -> list[ReviewRequest]:
            from ragloop.grading.review import review_requests

            return review_requests(settings["config_path"], settings["weaviate_conn_id"])

        proposals: Any = propose_reviews(settings_task.output)
        grade_task >> proposals
        # A decision is a change to the runs: the runs asset's event starts the next feedback run.
        ReviewAnswerOperator.partial(
            task_id="review_answer", params=reason_form(), response_timeout=response_timeout, outlets=[runs_asset()]
        ).expand_kwargs(proposals)
    return group


def write_back_answers(
    graded: TaskGroup,
    *,
    group_id: str = "write_back_answers",
    after: BaseOperator | XComArg | None = None,
    outlets: list[Asset] | None = None,
    prefix_group_id: bool = True,
) -> TaskGroup:
    """Write the good answers graded by ``graded`` back into the collection, as documents of kind
    ``qa`` through the same plan → index → prune path as every source, and revoke the answers that
    stopped being good (a later down vote, a failed regrade). Then report and check.

    :param graded: the group :func:`grade_runs` returned; its settings (config, connection) are used.
    :param group_id: the task group's id.
    :param after: a task between grading and write-back, such as a human approval: write-back runs
        only when it succeeds. Without it, write-back runs even when a grade batch failed, so
        revocations are never held up.
    :param outlets: assets the report task updates; default: the asset of the collection of the
        default ``sources.yaml`` (:func:`feedback_loop` passes the one of its ``config``).
    :param prefix_group_id: prefix task ids with ``group_id``.

    The write_back task returns a :class:`ragloop.grading.types.WritebackResult`, the report a
    :class:`ragloop.grading.types.GradeReport`; ``check_complete`` fails the run when a batch or
    the write-back did not finish.
    """
    settings_task: Any = graded.get_child_by_label("feedback_settings")
    select_task: Any = graded.get_child_by_label("select_runs")
    grade_task: Any = graded.get_child_by_label("grade")
    grade_task_id, write_back_task_id = grade_task.task_id, f"{group_id}.write_back" if prefix_group_id else "write_back"
    assets = outlets if outlets is not None else [ingest_asset()]

    with TaskGroup(group_id, prefix_group_id=prefix_group_id, tooltip="write good answers back, revoke bad ones") as group:
        # all_done (without an approval step): revocations happen even when a grade batch failed.
        @task(trigger_rule="all_success" if after is not None else "all_done", multiple_outputs=False)
        def write_back(settings: FeedbackSettings, dag_run: Any = None) -> WritebackResult:
            from ragloop.grading import write_back
            from ragloop.airflow.lineage import report_write_back

            result = write_back(
                _staging_ref(dag_run, settings.get("staging_key", "")), settings["config_path"], settings["weaviate_conn_id"]
            )
            report_write_back(settings["config_path"], settings["weaviate_conn_id"])
            return result

        # all_done, pulling results itself: a failed batch or write-back has no result, and the
        # report still goes out, naming what did not finish.
        @task(trigger_rule="all_done", outlets=assets, multiple_outputs=False)
        def report(
            batches: list[list[str]] | None,
            settings: FeedbackSettings,
            dag_run: Any = None,
            outlet_events: Any = None,
            ti: Any = None,
        ) -> GradeReport:
            from ragloop.grading import grade_report

            batches = batches or []
            tallies = ti.xcom_pull(task_ids=grade_task_id, map_indexes=list(range(len(batches)))) if batches else []
            result = grade_report(
                _staging_ref(dag_run, settings.get("staging_key", "")),
                batches,
                tallies,
                ti.xcom_pull(task_ids=write_back_task_id),
                settings["config_path"],
                settings["weaviate_conn_id"],
            )
            for asset in assets:
                outlet_events[asset].extra = dict(result)
            return result

        @task(trigger_rule="all_done")
        def check_complete(result: GradeReport) -> None:
            from ragloop.grading import check_complete

            check_complete(dict(result))

        resolved = settings_task.output
        written = write_back(resolved)
        result: Any = report(select_task.output, resolved)
        (after if after is not None else grade_task) >> written >> result
        check_complete(result)
    return group


def feedback_loop(
    *,
    config: str | None = _UNSET,
    weaviate_conn_id: str | None = _UNSET,
    limit: int | None = _UNSET,
    regrade_outdated: bool | None = _UNSET,
    approval: BaseOperator | XComArg | None = None,
    review: bool = True,
    review_timeout: timedelta | None = DEFAULT_REVIEW_TIMEOUT,
    outlets: list[Asset] | None = None,
    prefix_group_id: bool = True,
) -> tuple[TaskGroup, TaskGroup]:
    """:func:`grade_runs`, :func:`review_answers` (unless ``review=False``; it proposes only what
    the config's ``review:`` names) then :func:`write_back_answers`, with an optional ``approval``
    task between grading and write-back (see ``after`` there). The other parameters are those of
    the groups. Returns the grading and write-back groups, in order."""
    graded = grade_runs(
        config=config,
        weaviate_conn_id=weaviate_conn_id,
        limit=limit,
        regrade_outdated=regrade_outdated,
        prefix_group_id=prefix_group_id,
    )
    if approval is not None:
        graded >> approval
    if outlets is None:
        outlets = [ingest_asset(config)]
    if review:
        review_answers(graded, response_timeout=review_timeout, prefix_group_id=prefix_group_id)
    written = write_back_answers(graded, after=approval, outlets=outlets, prefix_group_id=prefix_group_id)
    return graded, written
