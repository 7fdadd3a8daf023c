"""The feedback DAG's grading task bodies: which runs to grade (`select_runs`), what each run
needs (`plan_grading`), and grading a batch with the configured judge (`grade_batch`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, UTC

from ragloop.chat import ChatModel
from ragloop.config import load_config
from ragloop.grading.checks import Veto, run_checks, run_checks_batch
from ragloop.grading.grounding import UnitGrounder, chunk_ids_of, unsupported_units, verify_sources
from ragloop.grading.choice import criterion_versions, make_judge
from ragloop.grading.judge import Judge
from ragloop.grading.types import GradeTally
from ragloop.grading.verdicts import CHECKS, CHECKS_JUDGE, CHECKS_VERSION, CRITERIA, VOTE_CRITERIA, JudgeFailed, Verdict
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import connect, fetch_chunks
from ragloop.progress import progress
from ragloop.runs import RunNotFound, RunStore, RunStoreUnavailable, WritebackState

if TYPE_CHECKING:
    from ragloop.runs.models import QaRun

log = logging.getLogger(__name__)

DEFAULT_BATCH_RUNS = 25  # runs per mapped grade task
MAX_GRADE_BATCHES = 32  # mapped grade tasks per DAG run; beyond this, batches grow instead
DEFAULT_RUN_LIMIT = 1000  # runs graded per DAG run; the rest wait for the next one, oldest first


@dataclass
class RunGrading:
    run_id: str
    verdicts: list[Verdict] = field(default_factory=list)
    vetoes: list[Veto] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)  # criteria the judge grades
    reused: list[str] = field(default_factory=list)  # criteria whose latest grade still holds


def is_current(latest: dict[str, dict], versions: dict[str, str]) -> bool:
    """Whether a run's latest grades are all at the current versions (a vetoed run needs only its
    checks to be)."""
    checks = latest.get(CHECKS)
    if checks and checks["criterion_version"] == versions[CHECKS] and checks["veto"]:
        return True
    return all(c in latest and latest[c]["criterion_version"] == v for c, v in versions.items())


def plan_grading(
    run: QaRun,
    judge: Judge,
    previous: dict[str, dict],
    versions: dict[str, str],
    source_vetoes: list[Veto] | None = None,
    checks: list[Veto] | None = None,
    grounder: UnitGrounder | None = None,
) -> RunGrading:
    """Checks first (with `source_vetoes`, the cited sources the index does not hold as recorded:
    see grading.grounding), then, with a `grounder`, the grounding of every unit of the answer in
    its cited sources (whichever judge grades: an unsupported unit is a veto); a veto ends it
    (nothing for the judge). Otherwise the criteria without a current grade by this judge, and the
    vote criteria again, are left to the judge (`todo`)."""
    grading = RunGrading(run["run_id"])
    grading.vetoes = [*(source_vetoes or []), *(run_checks(run) if checks is None else checks)]
    if grounder is not None and not grading.vetoes:
        _, unsupported = unsupported_units(run, grounder)
        if unsupported is not None:
            grading.vetoes.append(unsupported)
    if grading.vetoes:
        reasons = sorted({v.reason for v in grading.vetoes})
        grading.verdicts.append(
            Verdict(
                CHECKS,
                CHECKS_VERSION,
                CHECKS_JUDGE,
                0.0,
                False,
                "; ".join(v.detail for v in grading.vetoes),
                veto=",".join(reasons),
            )
        )
        return grading
    grading.verdicts.append(Verdict(CHECKS, CHECKS_VERSION, CHECKS_JUDGE, 1.0, True, "no check vetoed the run"))
    grading.todo = criteria_to_grade(judge, previous, versions)
    grading.reused = [c for c in CRITERIA if c not in grading.todo]
    return grading


def criteria_to_grade(judge: Judge, previous: dict[str, dict], versions: dict[str, str]) -> list[str]:
    """The criteria without a grade that still holds: same version, same kind of judge, decided,
    and not read from votes (those are graded again whenever the run is)."""
    kind = judge.name.split(":")[0]
    return [
        criterion
        for criterion in CRITERIA
        if not (
            (prior := previous.get(criterion))
            and prior["criterion_version"] == versions[criterion]
            and prior["judge"].split(":")[0] == kind
            and prior["passed"] is not None
            and criterion not in VOTE_CRITERIA
        )
    ]


def select_runs(
    config_path: str | None = None,
    limit: int = DEFAULT_RUN_LIMIT,
    regrade_outdated: bool = False,
    batch_runs: int = DEFAULT_BATCH_RUNS,
) -> list[list[str]]:
    """The runs this DAG run grades, in batches for the mapped grade task: runs never graded,
    runs with votes recorded since their last grade, written-back runs graded by an older
    criterion version (with `regrade_outdated`: every such run), oldest first, at most `limit`."""
    config = load_config(config_path)
    versions = criterion_versions(config)
    with RunStore.default() as store:
        never = store.ungraded_run_ids(limit)
        voted = store.run_ids_with_new_votes(limit)
        written = [w["run_id"] for w in store.writebacks(WritebackState.WRITTEN)]
        latest = store.latest_grades(None if regrade_outdated else written)
        outdated = sorted(run_id for run_id, grades in latest.items() if not is_current(grades, versions))
    selected = list(dict.fromkeys([*never, *voted, *outdated]))[:limit]
    progress(
        "Runs to grade: %d never graded, %d with new votes, %d graded by an older criterion version%s; %d selected",
        len(never),
        len(voted),
        len(outdated),
        "" if regrade_outdated else " (written back)",
        len(selected),
    )
    if not selected:
        return []
    size = max(batch_runs, math.ceil(len(selected) / MAX_GRADE_BATCHES))
    return [selected[i : i + size] for i in range(0, len(selected), size)]


def empty_tally() -> GradeTally:
    return {
        "runs": 0,
        "graded": 0,
        "ungraded": 0,
        "vetoed": 0,
        "reused": 0,
        "verdicts": {c: {"pass": 0, "fail": 0, "undecided": 0} for c in CRITERIA},
        "vetoes": {},
        "ungraded_runs": [],
        "parked_runs": [],
        "judge": "",
        "judge_calls": 0,
        "malformed_replies": 0,
        "judge_tokens": {"prompt": 0, "completion": 0},
        "seconds": 0.0,
    }


MAX_GRADING_FAILURES = 3  # failed attempts before a run is parked instead of selected again


def _read_runs(store: RunStore, run_ids: list[str], fail) -> list[QaRun]:
    """The runs, read all at once; when that fails (a stored record that does not decode), one
    by one, so the record that breaks fails alone."""
    try:
        return store.get_runs(run_ids)
    except RunStoreUnavailable:
        raise  # the store itself is down: nothing to isolate
    except Exception:
        log.exception("Reading %d runs failed; reading them one by one", len(run_ids))
    runs = []
    for run_id in run_ids:
        try:
            runs.extend(store.get_runs([run_id]))
        except RunStoreUnavailable:
            raise
        except Exception as err:  # noqa: BLE001 - one unreadable run must not stop the batch
            fail(run_id, f"reading the run failed: {type(err).__name__}: {err}")
    return runs


def grade_batch(
    run_ids: list[str],
    config_path: str | None = None,
    chat: ChatModel | None = None,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> GradeTally:
    """Grade these runs and store their grades. Every step that reads one run (reading it,
    checking its sources against the index, the checks, the judge, storing its grades) runs in
    that run's own isolation: a run that fails stores no grade, is counted as ungraded with its
    reason, and after MAX_GRADING_FAILURES failures is parked, so one crafted record never stops
    the batch nor, night after night, the queue."""
    started = time.monotonic()
    config = load_config(config_path)
    versions = criterion_versions(config)
    judge = make_judge(config, chat)
    grounder = UnitGrounder(getattr(judge, "embedder", None))  # the offline judge's model, when it has one loaded
    tally = empty_tally()
    tally["judge"] = judge.name
    tally["parked_runs"] = []
    try:
        with RunStore.default() as store:

            def fail(run_id: str, reason: str) -> None:
                tally["ungraded"] += 1
                tally["ungraded_runs"].append({"qa_run_id": run_id, "reason": reason})
                log.error("Run %s stays ungraded: %s", run_id, reason)
                try:
                    failure = store.record_grading_failure(run_id, reason, MAX_GRADING_FAILURES)
                except RunNotFound:
                    return
                if failure["parked"]:
                    tally["parked_runs"].append({"qa_run_id": run_id, "failures": failure["failures"], "reason": reason})

            read_at = datetime.now(UTC)
            runs = _read_runs(store, run_ids, fail)
            tally["runs"] = len(runs) + tally["ungraded"]
            previous = store.latest_grades([r["run_id"] for r in runs])
            with connect(weaviate_conn_id) as client:
                indexed = fetch_chunks(client, config.collection, chunk_ids_of(runs))
            plans = []
            verified_runs = []
            for run in runs:
                try:
                    verified_runs.append((run, *verify_sources(run, indexed)))
                except Exception as err:  # noqa: BLE001 - one odd run must not stop the batch
                    fail(run["run_id"], f"planning its grading failed: {type(err).__name__}: {err}")
            # One secret-scanner call for the whole batch; a missing scanner fails the task, naming it.
            checked = run_checks_batch([verified for _, verified, _ in verified_runs])
            for (run, verified, source_vetoes), checks in zip(verified_runs, checked, strict=False):
                try:
                    plans.append(
                        (
                            verified,
                            plan_grading(
                                verified,
                                judge,
                                previous.get(run["run_id"], {}),
                                versions,
                                source_vetoes,
                                checks=checks,
                                grounder=grounder,
                            ),
                        )
                    )
                except Exception as err:  # noqa: BLE001 - one odd run must not stop the batch
                    fail(run["run_id"], f"planning its grading failed: {type(err).__name__}: {err}")
            try:
                judge.prepare([(run, grading.todo) for run, grading in plans])
            except Exception:
                log.exception("Preparing the judge for %d runs failed; grading them one by one", len(plans))
            for number, (run, grading) in enumerate(plans, 1):
                try:
                    grading.verdicts += judge.grade(run, grading.todo)
                    store.record_grades(run["run_id"], [v.row() for v in grading.verdicts], read_at)
                except RunStoreUnavailable:
                    raise
                except JudgeFailed as err:
                    fail(run["run_id"], str(err))
                    continue
                except Exception as err:
                    log.exception("Grading run %s failed", run["run_id"])
                    fail(run["run_id"], f"{type(err).__name__}: {err}")
                    continue
                store.clear_grading_failures(run["run_id"])
                tally["graded"] += 1
                tally["reused"] += len(grading.reused)
                if grading.vetoes:
                    tally["vetoed"] += 1
                    for reason in sorted({v.reason for v in grading.vetoes}):
                        tally["vetoes"][reason] = tally["vetoes"].get(reason, 0) + 1
                for verdict in grading.verdicts:
                    counts = tally["verdicts"].get(verdict.criterion)
                    if counts is None:
                        continue
                    if verdict.passed is None:
                        counts["undecided"] += 1
                    elif verdict.passed:
                        counts["pass"] += 1
                    else:
                        counts["fail"] += 1
                if number % 10 == 0 or number == len(plans):
                    progress("Graded %d/%d runs (%d vetoed, %d ungraded)", number, len(plans), tally["vetoed"], tally["ungraded"])
            missing = set(run_ids) - {r["run_id"] for r in runs} - {u["qa_run_id"] for u in tally["ungraded_runs"]}
            if missing:
                log.warning("Runs no longer in the store (deleted since they were selected): %s", sorted(missing))
    finally:
        judge.close()
    tally["judge_calls"] = judge.usage.calls
    tally["malformed_replies"] = judge.usage.malformed
    tally["judge_problems"] = dict(sorted(judge.usage.problems.items()))
    tally["judge_tokens"] = {"prompt": judge.usage.prompt_tokens, "completion": judge.usage.completion_tokens}
    tally["seconds"] = round(time.monotonic() - started, 2)
    return tally
