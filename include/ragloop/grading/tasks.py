"""The feedback DAG's grading task bodies: which runs to grade (`select_runs`), what each run
needs (`plan_grading`), and grading a batch with the configured judge (`grade_batch`)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ragloop.chat import ChatModel
from ragloop.config import load_config
from ragloop.grading.checks import Veto, run_checks
from ragloop.grading.choice import criterion_versions, make_judge
from ragloop.grading.judge import Judge
from ragloop.grading.verdicts import CHECKS, CHECKS_JUDGE, CHECKS_VERSION, CRITERIA, VOTE_CRITERIA, JudgeFailed, Verdict
from ragloop.progress import progress
from ragloop.runs import RunStore, WritebackState

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


def plan_grading(run: dict, judge: Judge, previous: dict[str, dict], versions: dict[str, str]) -> RunGrading:
    """Checks first; a veto ends it (nothing for the judge). Otherwise the criteria without a
    current grade by this judge, and the vote criteria again, are left to the judge (`todo`)."""
    grading = RunGrading(run["run_id"])
    grading.vetoes = run_checks(run)
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


def empty_tally() -> dict:
    return {
        "runs": 0,
        "graded": 0,
        "ungraded": 0,
        "vetoed": 0,
        "reused": 0,
        "verdicts": {c: {"pass": 0, "fail": 0, "undecided": 0} for c in CRITERIA},
        "vetoes": {},
        "ungraded_runs": [],
        "judge": "",
        "judge_calls": 0,
        "malformed_replies": 0,
        "judge_tokens": {"prompt": 0, "completion": 0},
        "seconds": 0.0,
    }


def grade_batch(run_ids: list[str], config_path: str | None = None, chat: ChatModel | None = None) -> dict:
    """Grade these runs and store their grades; a run the judge could not grade stores nothing
    and is counted as ungraded (the next DAG run tries again)."""
    started = time.monotonic()
    config = load_config(config_path)
    versions = criterion_versions(config)
    judge = make_judge(config, chat)
    tally = empty_tally()
    tally["judge"] = judge.name
    try:
        with RunStore.default() as store:
            read_at = datetime.now(timezone.utc)
            runs = store.get_runs(run_ids)
            previous = store.latest_grades(run_ids)
            plans = [(run, plan_grading(run, judge, previous.get(run["run_id"], {}), versions)) for run in runs]
            judge.prepare([(run, grading.todo) for run, grading in plans])
            for number, (run, grading) in enumerate(plans, 1):
                tally["runs"] += 1
                try:
                    grading.verdicts += judge.grade(run, grading.todo)
                except JudgeFailed as err:
                    tally["ungraded"] += 1
                    tally["ungraded_runs"].append({"run_id": run["run_id"], "reason": str(err)})
                    log.error("Run %s stays ungraded: %s", run["run_id"], err)
                    continue
                except Exception as err:  # noqa: BLE001 - one odd run must not stop the batch
                    tally["ungraded"] += 1
                    tally["ungraded_runs"].append({"run_id": run["run_id"], "reason": f"{type(err).__name__}: {err}"})
                    log.exception("Run %s stays ungraded: grading it failed", run["run_id"])
                    continue
                store.record_grades(run["run_id"], [v.row() for v in grading.verdicts], read_at)
                tally["graded"] += 1
                tally["reused"] += len(grading.reused)
                if grading.vetoes:
                    tally["vetoed"] += 1
                    for reason in sorted({v.reason for v in grading.vetoes}):
                        tally["vetoes"][reason] = tally["vetoes"].get(reason, 0) + 1
                for verdict in grading.verdicts:
                    if verdict.criterion in tally["verdicts"]:
                        key = "undecided" if verdict.passed is None else "pass" if verdict.passed else "fail"
                        tally["verdicts"][verdict.criterion][key] += 1
                if number % 10 == 0 or number == len(runs):
                    progress("Graded %d/%d runs (%d vetoed, %d ungraded)", number, len(runs), tally["vetoed"], tally["ungraded"])
            missing = set(run_ids) - {r["run_id"] for r in runs}
            if missing:
                log.warning("Runs no longer in the store (deleted since they were selected): %s", sorted(missing))
    finally:
        judge.close()
    tally["judge_calls"] = judge.usage.calls
    tally["malformed_replies"] = judge.usage.malformed
    tally["judge_tokens"] = {"prompt": judge.usage.prompt_tokens, "completion": judge.usage.completion_tokens}
    tally["seconds"] = round(time.monotonic() - started, 2)
    return tally
