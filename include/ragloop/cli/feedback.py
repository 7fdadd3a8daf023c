"""The feedback loop: `ask`, `feedback`, `runs` (and `runs import`), `grade`, `qa list|revoke`, and feedback in
retrieval: `boosts` (what votes did, curated hits) and `chunk pin|unpin|reset|hide|unhide`."""

from __future__ import annotations

import argparse

from ragloop.cli.common import emit, parse_since, progress
from ragloop.cli.knowledge import AUDIENCE_HELP, VIEWER_HELP
from ragloop.cli.local import ensure_local_weaviate, prepare_airflow
from ragloop.runs.models import WritebackState


def _user_id(args: argparse.Namespace) -> str:
    import getpass

    return args.user or f"cli:{getpass.getuser()}"


def cmd_ask(args: argparse.Namespace) -> int:
    from ragloop.answer import ask, format_answer
    from ragloop.config import load_config
    from ragloop.airflow.events import emit_runs_event
    from ragloop.runs import RunRecorder

    load_config(args.config)
    prepare_airflow()
    ensure_local_weaviate()
    with RunRecorder(app="cli", user_id=_user_id(args), on_recorded=emit_runs_event) as recorder:
        answer = ask(args.question, config_path=args.config, limit=args.limit, audience=args.audience)
    if recorder.errors:
        progress(f"ragloop: the answer was not recorded: {recorder.last_error}")
    emit(args, answer.to_json(), lambda _: format_answer(answer))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from ragloop.airflow.events import emit_runs_event
    from ragloop.runs import RunStore, VoteIn

    prepare_airflow()
    vote = VoteIn(vote=args.vote, user_id=_user_id(args), comment=args.comment)
    with RunStore.default() as store:
        vote_id, summary = store.add_vote(args.run_id, vote, audience=args.audience)
    emit_runs_event({"event": "vote", "run_id": args.run_id, "vote": args.vote})
    emit(
        args,
        {"run_id": args.run_id, "vote_id": vote_id, "vote_summary": summary},
        lambda r: f"Recorded {args.vote} vote {vote_id} on run {args.run_id} ({summary['up']} up, {summary['down']} down)",
    )
    return 0


def _grades_text(grades: list[dict]) -> str:
    """Each criterion's latest grade: `relevance@1 pass 0.82`, a veto by its reasons."""
    latest = {g["criterion"]: g for g in grades}
    if not latest:
        return "not graded"
    checks = latest.get("checks")
    if checks and checks["veto"]:
        return f"vetoed: {checks['veto']}"
    parts = []
    for criterion, grade in latest.items():
        if criterion == "checks":
            continue
        verdict = "pass" if grade["passed"] else "fail" if grade["passed"] is False else "undecided"
        score = "" if grade["score"] is None else f" {grade['score']:.2f}"
        parts.append(f"{criterion}@{grade['criterion_version']} {verdict}{score}")
    return ", ".join(parts)


def _writeback_text(writeback: dict | None) -> str:
    if not writeback:
        return "not written back"
    if writeback["state"] == WritebackState.WRITTEN:
        return f"written back {writeback['written_at'][:16]}"
    return f"{writeback['state'].replace('_', ' ')} {(writeback['revoked_at'] or '')[:16]}: {writeback['revoke_reason']}"


def _runs_text(runs: list[dict]) -> str:
    if not runs:
        return "No runs recorded yet."
    lines = []
    for run in runs:
        votes = run["vote_summary"]
        question = " ".join(run["question"].split())
        lines.append(
            f"{run['created_at'][:19]}  {run['run_id']}  {run['app']:<10} +{votes['up']}/-{votes['down']}  "
            f"{_writeback_text(run['writeback'])}\n    {question[:110]}{'...' if len(question) > 110 else ''}\n"
            f"    grades: {_grades_text(run['grades'])}"
        )
        failure = run.get("grading_failure")
        if failure:
            state = "PARKED (not graded again)" if failure["parked_at"] else "grading failed"
            lines.append(f"    {state} after {failure['failures']} failure(s): {failure['last_error'][:200]}")
    return "\n".join(lines)


def cmd_runs(args: argparse.Namespace) -> int:

    from ragloop.runs import RunStore

    prepare_airflow()
    since = parse_since(args.since)
    with RunStore.default() as store:
        runs = store.list_runs(since=since, limit=args.limit, audience=args.audience)
    emit(args, {"runs": runs, "count": len(runs)}, lambda r: _runs_text(r["runs"]))
    return 0


def cmd_runs_import(args: argparse.Namespace) -> int:
    from ragloop.airflow.events import emit_runs_event
    from ragloop.runs import RunStore

    prepare_airflow()
    with RunStore.default() as store:
        report = store.import_jsonl(args.file, progress=progress)
    for error in report.errors:
        progress(f"{args.file}:{error['line']}: {error['field']}: {error['message']}")
    if report.imported:
        emit_runs_event({"event": "import", "file": str(args.file), "runs": report.imported})
    emit(
        args,
        report.to_json(),
        lambda r: (
            f"{r['path']}: {r['lines']} lines, {r['imported']} runs imported, {r['already_present']} already present, "
            f"{r['votes_added']} votes added, {len(r['errors'])} errors"
        ),
    )
    return 1 if report.errors else 0


def cmd_grade(args: argparse.Namespace) -> int:
    """Runs the feedback DAG (ragloop_grade_feedback) through dag.test() and prints its report."""
    from ragloop.config import load_config
    from ragloop.airflow.dagrun import run_dag
    from ragloop.grading import GRADE_DAG_ID, format_grade_report
    from ragloop.runs import runs_database_url

    config = load_config(args.config)
    prepare_airflow()
    runs_database_url()  # an unreadable runs connection stops here, named, before the DAG runs
    ensure_local_weaviate()
    judge = f"the LLM judge via {config.llm['connection']}" if config.llm else "the offline judge"
    progress(f"Grading runs with {judge}, writing good answers back to {config.collection} through {GRADE_DAG_ID} (dag.test)...")
    conf = {"config": str(config.path), "limit": args.limit, "regrade_outdated": args.regrade_outdated}
    result = run_dag(GRADE_DAG_ID, conf, raise_on_failure=False, retries=0)
    report = result.returns.get("report")
    if report:
        emit(args, {"dag_run_id": result.run_id, "state": result.state, **report}, format_grade_report)
    if result.state != "success":
        progress(
            f"ragloop: grade run {result.run_id} ended {result.state}; tasks not successful: {result.failed_tasks} "
            "(the task's error is logged above)"
        )
        return 1
    return 0


def cmd_qa_list(args: argparse.Namespace) -> int:
    from ragloop.grading import list_written_back

    prepare_airflow()
    rows = list_written_back(args.config)

    def text(rows: list[dict]) -> str:
        if not rows:
            return "No written-back answers in the index."
        lines = []
        for row in rows:
            votes = row["votes"] or {"up": 0, "down": 0}
            lines.append(
                f"{row['run_id']}  {(row['written_at'] or '')[:16]}  +{votes['up']}/-{votes['down']}  "
                f"{row['chunks']} chunks  {row['question'][:100]}"
            )
            if row["graded_by"]:
                lines.append("    graded by " + ", ".join(row["graded_by"].values()))
        return "\n".join(lines)

    emit(args, {"answers": rows, "count": len(rows)}, lambda r: text(r["answers"]))
    return 0


def cmd_qa_revoke(args: argparse.Namespace) -> int:
    from ragloop.grading import revoke_by_hand

    prepare_airflow()
    result = revoke_by_hand(args.run_id, args.reason, args.config)
    emit(
        args,
        result,
        lambda r: (
            (
                f"Revoked the written-back answer of run {r['run_id']} ({r['chunks_deleted']} chunks deleted from {r['collection']}); "
                if r["was_written_back"]
                else f"Run {r['run_id']} was not written back; "
            )
            + "the feedback DAG will not write it back again"
        ),
    )
    return 0


def _boosts_text(report: dict) -> str:
    lines = []
    for title, key in (("Most boosted", "boosted"), ("Most demoted", "demoted")):
        lines.append(f"{title}:")
        rows = report[key]
        lines += [
            f"  x{r['multiplier']:.2f} (boost {r['boost']:+.2f}; {r['up']} up, {r['down']} down"
            + (", pinned" if r["pinned"] is not None else "")
            + (", hidden" if r["hidden"] else "")
            + f")  {r['title'] or r['doc_id']}  chunk {r['chunk_id']}"
            for r in rows
        ] or ["  none"]
    lines.append("Operator actions (newest first):")
    lines += [
        f"  chunk {c['chunk_id']}: "
        + ("hidden; " if c["hidden"] else "")
        + (f"pinned at {c['pinned']:+g}; " if c["pinned"] is not None else "")
        + "; ".join(f"{h['action']} by {h['actor']} at {h['acted_at'][:19]}: {h['reason']}" for h in c["history"][:3])
        for c in report["controlled"]
    ] or ["  none"]
    lines.append("Curated answers served:")
    lines += [
        f"  {c['hits']} hits  run {c['run_id']} ({c['state'] or 'no write-back'}): {c['question'][:80]}"
        for c in report["curated"]
    ] or ["  none"]
    return "\n".join(lines)


def cmd_boosts(args: argparse.Namespace) -> int:
    from ragloop.runs import RunStore

    prepare_airflow()
    with RunStore.default() as store:
        report = {
            **store.boost_report(audience=args.audience, limit=args.limit),
            "curated": store.curated_hits(audience=args.audience),
        }
    emit(args, report, _boosts_text)
    return 0


def cmd_chunk(args: argparse.Namespace) -> int:
    from ragloop.runs import RunStore

    prepare_airflow()
    with RunStore.default() as store:
        recorded = store.record_chunk_action(
            args.chunk_id, args.action, actor=_user_id(args), reason=args.reason, boost=args.boost
        )
    emit(
        args,
        recorded,
        lambda r: (
            f"chunk {r['chunk_id']}: {r['action']}"
            + (f" at boost {r['boost']:+g}" if r["boost"] is not None else "")
            + f", by {r['actor']}: {r['reason']}"
        ),
    )
    return 0


def register(commands, command) -> None:
    """Add this module's commands to the `ragloop` parser."""
    ask_cmd = command(
        commands, "ask", cmd_ask, "answer a question from the knowledge base, cite sources, record the run", config=True
    )
    ask_cmd.add_argument("question")
    ask_cmd.add_argument("--limit", type=int, default=5, help="passages to retrieve")
    ask_cmd.add_argument("--user", help="opaque user id recorded with the run (default: cli:<login>)")
    ask_cmd.add_argument("--audience", choices=["public", "internal"], default="internal", help=AUDIENCE_HELP)
    feedback = command(commands, "feedback", cmd_feedback, "vote on a recorded run: up or down, with an optional comment")
    feedback.add_argument("run_id")
    feedback.add_argument("vote", choices=["up", "down"])
    feedback.add_argument("--comment")
    feedback.add_argument("--user", help="opaque user id of the voter (default: cli:<login>); a user's latest vote counts")
    feedback.add_argument("--audience", choices=["public", "internal"], default="internal", help=VIEWER_HELP)
    runs_cmd = command(commands, "runs", cmd_runs, "recorded Q&A runs, newest first, with votes, grades and write-back state")
    runs_cmd.add_argument("--limit", type=int, default=20)
    runs_cmd.add_argument("--since", help="only runs created at or after this ISO 8601 time")
    runs_cmd.add_argument("--audience", choices=["public", "internal"], default="internal", help=VIEWER_HELP)
    runs_actions = runs_cmd.add_subparsers(dest="action")
    runs_import = command(
        runs_actions, "import", cmd_runs_import, "load runs (and their votes) from a JSON-lines file in the API's shape"
    )
    runs_import.add_argument("file")

    grade = command(
        commands,
        "grade",
        cmd_grade,
        "grade recorded runs and write good answers back (the feedback DAG via dag.test())",
        config=True,
    )
    grade.add_argument("--limit", type=int, default=1000, help="runs graded in this run, oldest first")
    grade.add_argument(
        "--regrade-outdated",
        action="store_true",
        help="also grade again every run graded by an older criterion version (written-back runs always are)",
    )
    qa = commands.add_parser("qa", help="written-back answers").add_subparsers(dest="action", required=True)
    command(qa, "list", cmd_qa_list, "the answers written back into the knowledge base", config=True)
    revoke = command(qa, "revoke", cmd_qa_revoke, "remove a written-back answer now and keep it out", config=True)
    revoke.add_argument("run_id")
    revoke.add_argument("--reason", help="why, recorded with the revocation")
    boosts = command(
        commands,
        "boosts",
        cmd_boosts,
        "what votes did to retrieval: most boosted and demoted chunks, operator actions, curated hits",
    )
    boosts.add_argument("--limit", type=int, default=10, help="chunks listed in each direction")
    boosts.add_argument("--audience", choices=["public", "internal"], default="internal", help=VIEWER_HELP)
    chunk = commands.add_parser("chunk", help="an operator's action on a chunk, recorded with who and why").add_subparsers(
        dest="action", required=True
    )
    for action, text in (
        ("pin", "fix a chunk's boost (a number of votes, -100 to 100); votes no longer move it"),
        ("unpin", "let votes move the chunk again"),
        ("reset", "drop the pin and every vote cast before now"),
        ("hide", "leave the chunk out of retrieval without deleting it"),
        ("unhide", "let the chunk be retrieved again"),
    ):
        sub = command(chunk, action, cmd_chunk, text)
        sub.add_argument("chunk_id")
        sub.add_argument("--reason", required=True, help="why, recorded with the action")
        sub.add_argument("--user", help="who acts (default: cli:<login>)")
        if action == "pin":
            sub.add_argument("--boost", type=float, required=True)
        else:
            sub.set_defaults(boost=None)
