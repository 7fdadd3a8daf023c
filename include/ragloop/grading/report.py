"""The feedback DAG's report: runs graded, verdicts, vetoes, write-back, judge tokens and their
estimated cost (the price table is here), and its text form."""

from __future__ import annotations

import logging

from ragloop.config import load_config
from ragloop.grading.choice import configured_judge_name
from ragloop.grading.tasks import empty_tally
from ragloop.grading.types import GradeReport, GradeTally, WritebackResult
from ragloop.grading.verdicts import JudgeKind, GradingError
from ragloop.index.endpoint import WEAVIATE_CONN_ID
from ragloop.index import endpoint_from_connection
from ragloop.runs import describe_runs_store
from ragloop.runs.reports import keep_report
from ragloop.staging import DagRunRef

log = logging.getLogger(__name__)

SHOWN = 20  # ungraded runs and revocations listed in a report (all are logged)

# Judge prices, USD per million tokens (input, output): OpenAI's list prices when this table was
# written. Prices change: `llm.prices` in sources.yaml overrides them, and a model not listed
# here needs it, or the report gives no cost.
PRICES_PER_MILLION = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
}


def estimated_cost(model: str, prompt_tokens: int, completion_tokens: int, prices: dict | None = None) -> float | None:
    """USD for these judge tokens: `llm.prices` from sources.yaml, else the table above by model
    name (a dated snapshot such as gpt-4o-mini-2024-07-18 takes its family's price)."""
    if prices:
        per_million = (prices["input"], prices["output"])
    else:
        name = model.split(":", 1)[-1]
        family = max((m for m in PRICES_PER_MILLION if name == m or name.startswith(m + "-")), key=len, default=None)
        if family is None:
            return None
        per_million = PRICES_PER_MILLION[family]
    return round((prompt_tokens * per_million[0] + completion_tokens * per_million[1]) / 1_000_000, 6)


def grade_report(
    dag_run: DagRunRef,
    batches: list[list[str]],
    results: list[GradeTally | None],
    written: WritebackResult | None,
    config_path: str | None = None,
    weaviate_conn_id: str = WEAVIATE_CONN_ID,
) -> GradeReport:
    """One report per DAG run: runs graded, verdicts per criterion, vetoes by reason, written
    back, revoked, judge tokens and their estimated cost; and which run store and Weaviate the
    run used."""
    config = load_config(config_path)
    total = empty_tally()
    for result in results:
        if not result:
            continue
        add_tally(total, result)
    selected = sum(map(len, batches))
    errors = []
    finished = len([r for r in results if r])
    if finished < len(batches):
        errors.append(
            f"{len(batches) - finished} of {len(batches)} grade batches failed (see their task logs); "
            "their runs are graded on the next run"
        )
    if written is None:
        errors.append("write-back did not finish (see its task log); nothing was revoked or written this run")
    cost = None
    if total["judge"].startswith(JudgeKind.LLM.named("")):
        cost = estimated_cost(
            total["judge"], total["judge_tokens"]["prompt"], total["judge_tokens"]["completion"], (config.llm or {}).get("prices")
        )
    report: GradeReport = {
        "dag_id": dag_run.dag_id,
        "dag_run_id": dag_run.run_id,
        "runs_store": describe_runs_store(),
        "weaviate": endpoint_from_connection(weaviate_conn_id).url,
        "collection": config.collection,
        "judge": total["judge"] or configured_judge_name(config),
        "selected": selected,
        "graded": total["graded"],
        "ungraded": total["ungraded"],
        "vetoed": total["vetoed"],
        "reused_verdicts": total["reused"],
        "verdicts": total["verdicts"],
        "vetoes": dict(sorted(total["vetoes"].items())),
        "ungraded_runs": total["ungraded_runs"][:SHOWN],
        # runs that failed to grade MAX_GRADING_FAILURES times: not selected again (`ragloop runs` shows why)
        "parked_runs": total["parked_runs"][:SHOWN],
        "judge_calls": total["judge_calls"],
        "malformed_replies": total["malformed_replies"],
        "judge_problems": dict(sorted(total.get("judge_problems", {}).items())),
        "judge_tokens": total["judge_tokens"],
        "estimated_cost_usd": cost,
        "write_back": written or {},
        "seconds": {"grade": total["seconds"], "write_back": written["seconds"] if written else None},
        "errors": errors,
    }
    log.info("Grading report:\n%s", format_grade_report(report))
    # For the operator's page and `ragloop report`, past XCom clean-up.
    report["report_stored"] = keep_report("feedback", dict(report))
    return report


def add_tally(total: GradeTally, more: GradeTally) -> None:
    """Add one grade batch's tally to `total`."""
    total["runs"] += more["runs"]
    total["graded"] += more["graded"]
    total["ungraded"] += more["ungraded"]
    total["vetoed"] += more["vetoed"]
    total["reused"] += more["reused"]
    total["judge_calls"] += more["judge_calls"]
    total["malformed_replies"] += more["malformed_replies"]
    problems = total.setdefault("judge_problems", {})
    for kind, count in more.get("judge_problems", {}).items():
        problems[kind] = problems.get(kind, 0) + count
    for criterion, counts in more["verdicts"].items():
        summed = total["verdicts"].setdefault(criterion, {"pass": 0, "fail": 0, "undecided": 0})
        summed["pass"] += counts["pass"]
        summed["fail"] += counts["fail"]
        summed["undecided"] += counts["undecided"]
    for reason, count in more["vetoes"].items():
        total["vetoes"][reason] = total["vetoes"].get(reason, 0) + count
    total["ungraded_runs"] += more["ungraded_runs"]
    total["parked_runs"] += more.get("parked_runs", [])
    total["judge_tokens"]["prompt"] += more["judge_tokens"]["prompt"]
    total["judge_tokens"]["completion"] += more["judge_tokens"]["completion"]
    total["judge"] = total["judge"] or more["judge"]
    total["seconds"] = round(total["seconds"] + more["seconds"], 2)


def format_grade_report(report: GradeReport) -> str:
    lines = [
        f"judge {report['judge']}: {report['selected']} runs selected, {report['graded']} graded, "
        f"{report['ungraded']} ungraded, {report['vetoed']} vetoed"
    ]
    lines.append(f"{'criterion':<14} {'pass':>5} {'fail':>5} {'undecided':>10}")
    for criterion, counts in report["verdicts"].items():
        lines.append(f"{criterion:<14} {counts['pass']:>5} {counts['fail']:>5} {counts['undecided']:>10}")
    if report["vetoes"]:
        lines.append("vetoes: " + ", ".join(f"{reason} {count}" for reason, count in report["vetoes"].items()))
    for item in report["ungraded_runs"]:
        lines.append(f"  ungraded: {item['qa_run_id']}: {item['reason']}")
    for item in report.get("parked_runs", []):
        lines.append(f"  parked after {item['failures']} failures: {item['qa_run_id']}: {item['reason']}")
    tokens = report["judge_tokens"]
    cost = report["estimated_cost_usd"]
    lines.append(
        f"judge tokens: {tokens['prompt']} prompt + {tokens['completion']} completion in {report['judge_calls']} calls "
        f"({report['malformed_replies']} malformed replies asked again"
        + "".join(f", {kind} {count}" for kind, count in (report.get("judge_problems") or {}).items())
        + "); estimated cost "
        + (
            "n/a (no language model)"
            if not report["judge"].startswith(JudgeKind.LLM.named(""))
            else f"${cost:.4f}"
            if cost is not None
            else "unknown: set llm.prices in sources.yaml"
        )
    )
    written = report["write_back"]
    if written:
        lines.append(
            f"write-back to {written['collection']}: {written['good_runs']} good runs; {written['written']} written, "
            f"{written['rewritten']} rewritten, {written['unchanged']} unchanged, {written['revoked']} revoked "
            f"({written['chunks']['embedded']} chunks embedded, {written['chunks']['deleted']} deleted)"
        )
        for item in written["revocations"][:SHOWN]:
            lines.append(f"  revoked: {item['qa_run_id']}: {item['reason']}")
    for error in report["errors"]:
        lines.append(f"ERROR: {error}")
    return "\n".join(lines)


def check_complete(report: dict) -> None:
    if report["errors"]:
        raise GradingError("Grading did not complete: " + "; ".join(report["errors"]))
