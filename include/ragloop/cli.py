"""`ragloop`: the command line of the local mode and of operators.

Progress goes to stderr; results go to stdout, as text or, with `--json`, as one JSON document,
so `ragloop ... --json | jq` always works.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from typing import Any, Callable

from ragloop import localenv
from ragloop.runs.models import WritebackState

log = logging.getLogger("ragloop")


# Where results go. Airflow logs to stdout; `main` moves everything else to stderr so that
# `ragloop ... --json` prints exactly one JSON document on stdout.
results = sys.stdout


def reserve_stdout_for_results():
    """Keep stdout for results only: everything else (Airflow's logs, warnings, child processes)
    goes to stderr from now on. Returns the results stream."""
    global results
    try:
        sys.stdout.flush()
        results = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        # At the descriptor level, so child processes (Airflow's task supervisor) follow too.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        results, sys.stdout = sys.stdout, sys.stderr  # under a test runner's capture
    return results


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(args: argparse.Namespace, result: Any, text: Callable[[Any], str] | None = None) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, indent=None, default=str), file=results)
    else:
        print(text(result) if text else result, file=results)


def _prepare_airflow() -> None:
    """The local mode needs its metadata DB (connections live there) before any command runs."""
    if localenv.is_local_mode() and localenv.ensure_local_airflow():
        progress(f"Prepared the local Airflow metadata DB under {localenv.airflow_home()}")


def _local_server():
    from ragloop.index import endpoint_from_connection
    from ragloop.weaviate_local import local_server_for

    _prepare_airflow()
    return local_server_for(endpoint_from_connection(), localenv.state_dir() / "weaviate")


# --- weaviate ----------------------------------------------------------------------------------


def cmd_weaviate_start(args: argparse.Namespace) -> int:
    server = _local_server()
    message = server.start(timeout=args.timeout, progress=progress)
    emit(args, {"message": message, "url": server.url, "pid": server.pid()}, lambda r: r["message"])
    return 0


def cmd_weaviate_stop(args: argparse.Namespace) -> int:
    emit(args, {"message": _local_server().stop()}, lambda r: r["message"])
    return 0


def _status_text(info: dict) -> str:
    lines = [
        f"Weaviate {'running' if info['running'] else 'not running'} at {info['url']} (gRPC port {info['grpc_port']})",
        f"  version:   {info['version'] or '-'} (pinned {info['pinned_version']})",
        f"  pid:       {info['pid'] or ('-' if not info['running'] else 'not started by ragloop')}",
        f"  data:      {info['data_dir']}",
        f"  log:       {info['log_file']}",
    ]
    if info["collections"]:
        lines.append("  collections:")
        lines += [f"    {name}: {count} objects" for name, count in info["collections"].items()]
    elif info["running"]:
        lines.append("  collections: none")
    return "\n".join(lines)


def cmd_weaviate_status(args: argparse.Namespace) -> int:
    info = _local_server().status()
    emit(args, info, _status_text)
    return 0 if info["running"] else 3


def cmd_weaviate_logs(args: argparse.Namespace) -> int:
    print(_local_server().log_tail(args.lines), file=results)
    return 0


# --- status and embedder -----------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from ragloop.config import load_config
    from ragloop.embedding import make_embedder
    from ragloop.index import WeaviateIndexError, recorded_embedder
    from ragloop.setup_checks import check_weaviate

    _prepare_airflow()
    config = load_config(args.config)
    embedder = make_embedder(config.embedder)
    report: dict[str, Any] = {
        "config": str(config.path),
        "collection": config.collection,
        "embedder": {"name": embedder.name, "dimension": embedder.dimension, "max_input_tokens": embedder.max_input_tokens},
        "sources": [{"id": s["id"], "type": s["type"]} for s in config.sources],
        "airflow_home": localenv.airflow_home(),
    }
    try:
        report["weaviate"] = check_weaviate()
        from ragloop.index import connect

        with connect() as client:
            report["collection_embedder"] = recorded_embedder(client, config.collection)
    except WeaviateIndexError as err:
        report["weaviate"] = {"error": str(err)}
    emit(args, report, _overall_status_text)
    return 0 if "error" not in report["weaviate"] else 3


def cmd_doctor(args: argparse.Namespace) -> int:
    from ragloop.doctor import diagnose, format_diagnosis

    _prepare_airflow()
    report = diagnose(args.config, progress=lambda line: progress(f"  checked {line}"))
    emit(args, report, format_diagnosis)
    return 0 if report["ok"] else 1


def _overall_status_text(report: dict) -> str:
    weaviate = report["weaviate"]
    lines = [
        f"config:      {report['config']}",
        f"collection:  {report['collection']}",
        f"embedder:    {report['embedder']['name']} ({report['embedder']['dimension']} dimensions, "
        f"{report['embedder']['max_input_tokens']} tokens per input)",
        "sources:     " + (", ".join(f"{s['id']} ({s['type']})" for s in report["sources"]) or "none"),
        f"airflow:     {report['airflow_home']}",
    ]
    if "error" in weaviate:
        lines.append(f"weaviate:    NOT REACHABLE: {weaviate['error']}")
    else:
        lines.append(f"weaviate:    {weaviate['version']} at {weaviate['url']}")
        for name, count in weaviate["collections"].items():
            lines.append(f"  {name}: {count} objects")
        recorded = report.get("collection_embedder")
        lines.append(
            f"  {report['collection']} built with {recorded['embedder']}"
            if recorded
            else f"  {report['collection']} not created yet (the first ingest creates it)"
        )
    return "\n".join(lines)


def cmd_embedder(args: argparse.Namespace) -> int:
    from ragloop.setup_checks import measure_embedder

    progress("Loading the embedder and embedding the bundled sample docs...")
    report = measure_embedder(args.config, samples=args.samples, limit=args.limit)
    emit(
        args,
        report,
        lambda r: (
            f"{r['embedder']}: {r['passages']} passages of {r['words_per_passage']} words ({r['tokens']} tokens) "
            f"in {r['embed_seconds']} s = {r['passages_per_second']} passages/s; "
            f"model load {r['load_seconds']} s; {r['dimension']} dimensions"
        ),
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ragloop.dagrun import run_dag

    _prepare_airflow()
    progress("Running the ragloop_check DAG through dag.test()...")
    result = run_dag("ragloop_check", {"config": args.config})
    emit(args, {"run_id": result.run_id, "state": result.state, **result.returns}, _check_text)
    return 0


def _check_text(report: dict) -> str:
    weaviate, collection, rate = report["check_weaviate"], report["prepare_collection"], report["measure_embedder"]
    return "\n".join(
        [
            f"ragloop_check {report['state']} ({report['run_id']})",
            f"  Weaviate {weaviate['version']} at {weaviate['url']}",
            f"  collection {collection['collection']}: {'created' if collection['created'] else 'exists'} for "
            f"{collection['embedder']} ({collection['dimension']} dimensions)",
            f"  embedder: {rate['passages']} passages in {rate['embed_seconds']} s = {rate['passages_per_second']} passages/s",
        ]
    )


# --- ingest and search -------------------------------------------------------------------------


def _ensure_local_weaviate() -> None:
    """Start the local server when the connection points at it and it is down; a remote
    Weaviate is left to whoever runs it."""
    from ragloop.index import endpoint_from_connection
    from ragloop.weaviate_local import LOOPBACK_HOSTS

    endpoint = endpoint_from_connection()
    if endpoint.host in LOOPBACK_HOSTS and not endpoint.http_secure:
        server = _local_server()
        if not server.is_ready():
            server.start(progress=progress)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Runs each source type's ingest DAG (docs, slack, github_issues) for the sources asked for,
    or for every configured source, one after the other, and prints one report."""
    from ragloop.config import load_config
    from ragloop.dagrun import run_dag
    from ragloop.catalog import INGEST_DAG_IDS
    from ragloop.ingest import format_report, merge_reports, select_sources

    config = load_config(args.config)  # every mistake in the file is reported before anything runs
    wanted = [config.source(source_id) for source_id in args.source or []]  # unknown ids fail here, named
    types = [t for t in INGEST_DAG_IDS if any(s["type"] == t for s in (wanted or config.sources))] or ["docs"]
    plans = []
    for source_type in types:
        requested = [s["id"] for s in wanted if s["type"] == source_type]
        plans.append((source_type, requested, select_sources(args.config, requested or None, source_type)))
    _prepare_airflow()
    _ensure_local_weaviate()
    reports, runs, failed_runs = [], [], []
    for source_type, requested, sources in plans:
        dag_id = INGEST_DAG_IDS[source_type]
        mode = (
            "full refresh"
            if args.full_refresh
            else "full listing"
            if args.full_listing and source_type != "docs"
            else "incremental"
        )
        progress(
            f"Ingesting {', '.join(sources) or 'no sources'} into {config.collection} ({mode}) through {dag_id} (dag.test)..."
        )
        conf = {"config": str(config.path), "sources": requested, "full_refresh": args.full_refresh}
        if source_type != "docs":
            conf["full_listing"] = args.full_listing
        result = run_dag(dag_id, conf, raise_on_failure=False, retries=0)
        runs.append({"dag_id": dag_id, "run_id": result.run_id, "state": result.state})
        report = result.returns.get("report")
        if report:
            reports.append(report)
        if result.state != "success":
            errors = "; ".join(report["errors"]) if report and report.get("errors") else ""
            failed_runs.append(
                f"{dag_id} run {result.run_id} ended {result.state}; tasks not successful: {result.failed_tasks}"
                + (f"; {errors}" if errors else "")
            )
    if reports:
        merged = merge_reports(reports)
        state = "success" if not failed_runs else "failed"
        header = {"run_id": runs[0]["run_id"], "state": runs[0]["state"]} if len(runs) == 1 else {"runs": runs, "state": state}
        emit(args, {**header, **merged}, lambda r: format_report(r))
    if failed_runs:
        for line in failed_runs:
            progress(f"ragloop: ingest {line} (the task's error is logged above)")
        return 1
    return 0


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


AUDIENCE_HELP = (
    "who the results are for: public (public sources only) or internal (also Slack and sources marked internal); "
    "default internal: whoever runs the CLI holds the index's own credentials"
)


def cmd_search(args: argparse.Namespace) -> int:
    from ragloop.config import load_config
    from ragloop.embedding import make_embedder
    from ragloop.index import connect, search

    config = load_config(args.config)
    _prepare_airflow()
    embedder = make_embedder(config.embedder)
    with connect() as client:
        hits = search(
            client,
            config.collection,
            embedder,
            args.question,
            limit=args.limit,
            source_ids=args.source or None,
            kinds=args.kind or None,
            alpha=args.alpha,
            audience=args.audience,
        )
    if args.json:
        # One JSON object per hit, one per line: `ragloop search ... --json | jq` works.
        for hit in hits:
            print(json.dumps({**hit.to_json(), "written_back": hit.kind == "qa"}, ensure_ascii=False), file=results)
        return 0
    if not hits:
        print("No results.", file=results)
    from ragloop.answer import WRITTEN_BACK_LABEL

    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split("\n\n", 1)[-1].split())
        mark = f" ({WRITTEN_BACK_LABEL})" if hit.kind == "qa" else ""
        print(
            f"{rank}. {hit.title}{mark}  [{hit.score:.3f}]\n   {hit.url or hit.doc_id}\n   {hit.heading_path}\n"
            f"   {snippet[:240]}{'...' if len(snippet) > 240 else ''}",
            file=results,
        )
    return 0


# --- answers, feedback and runs -----------------------------------------------------------------


def _user_id(args: argparse.Namespace) -> str:
    import getpass

    return args.user or f"cli:{getpass.getuser()}"


def cmd_ask(args: argparse.Namespace) -> int:
    from ragloop.answer import ask, format_answer
    from ragloop.config import load_config
    from ragloop.runs import RunRecorder

    load_config(args.config)
    _prepare_airflow()
    _ensure_local_weaviate()
    with RunRecorder(app="cli", user_id=_user_id(args), emit_events=True) as recorder:
        answer = ask(args.question, config_path=args.config, limit=args.limit, audience=args.audience)
    if recorder.errors:
        progress(f"ragloop: the answer was not recorded: {recorder.last_error}")
    emit(args, answer.to_json(), lambda _: format_answer(answer))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from ragloop.runs import RunStore, VoteIn, emit_runs_event

    _prepare_airflow()
    vote = VoteIn(vote=args.vote, user_id=_user_id(args), comment=args.comment)
    with RunStore.default() as store:
        vote_id, summary = store.add_vote(args.run_id, vote)
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
    from datetime import datetime

    from ragloop.runs import RunStore

    _prepare_airflow()
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            progress(f"ragloop: --since {args.since!r} is not an ISO 8601 time (like 2026-11-01 or 2026-11-01T08:00:00+00:00)")
            return 2
    with RunStore.default() as store:
        runs = store.list_runs(since=since, limit=args.limit)
    emit(args, {"runs": runs, "count": len(runs)}, lambda r: _runs_text(r["runs"]))
    return 0


def cmd_runs_import(args: argparse.Namespace) -> int:
    from ragloop.runs import RunStore, emit_runs_event

    _prepare_airflow()
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


# --- grading and written-back answers ------------------------------------------------------------


def cmd_grade(args: argparse.Namespace) -> int:
    """Runs the feedback DAG (ragloop_grade_feedback) through dag.test() and prints its report."""
    from ragloop.config import load_config
    from ragloop.dagrun import run_dag
    from ragloop.grading import GRADE_DAG_ID, format_grade_report
    from ragloop.runs import runs_database_url

    config = load_config(args.config)
    _prepare_airflow()
    runs_database_url()  # an unreadable runs connection stops here, named, before the DAG runs
    _ensure_local_weaviate()
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

    _prepare_airflow()
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

    _prepare_airflow()
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


# --- index -------------------------------------------------------------------------------------


def cmd_index_drop(args: argparse.Namespace) -> int:
    from ragloop.index import connect, drop_collection

    if not args.yes:
        progress(f"This deletes collection {args.name} and every object in it. Add --yes to do it.")
        return 2
    _prepare_airflow()
    with connect() as client:
        dropped = drop_collection(client, args.name)
    emit(
        args,
        {"collection": args.name, "dropped": dropped},
        lambda r: f"Dropped {r['collection']}" if r["dropped"] else f"No collection {r['collection']}",
    )
    return 0


# --- airflow -----------------------------------------------------------------------------------


def cmd_airflow_setup(args: argparse.Namespace) -> int:
    localenv.ensure_local_airflow(force=True)
    emit(args, {"airflow_home": localenv.airflow_home()}, lambda r: f"Airflow metadata DB ready under {r['airflow_home']}")
    return 0


def cmd_airflow_start(args: argparse.Namespace) -> int:
    _prepare_airflow()
    result = localenv.start_standalone(timeout=args.timeout, progress=progress)
    emit(args, result, lambda r: r["message"])
    return 0


def cmd_airflow_stop(args: argparse.Namespace) -> int:
    emit(args, {"message": localenv.stop_standalone()}, lambda r: r["message"])
    return 0


# --- docs gaps ---------------------------------------------------------------------------------


def cmd_gaps(args: argparse.Namespace) -> int:
    """Recorded questions grouped into topics, the topics the docs serve worst first (ragloop.gaps)."""
    from datetime import datetime
    from pathlib import Path

    from ragloop import gaps
    from ragloop.config import load_config
    from ragloop.embedding import make_embedder
    from ragloop.runs import RunStore

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            progress(
                f"ragloop: --since {args.since!r} is not an ISO 8601 date or time (like 2026-11-01 or 2026-11-01T08:00:00+00:00)"
            )
            return 2
    if args.limit < 1:
        progress(f"ragloop: --limit must be at least 1, got {args.limit}")
        return 2
    config = load_config(args.config)
    _prepare_airflow()
    with RunStore.default() as store:
        runs = store.list_runs(since=since, limit=args.limit)
        where = repr(store)
    if not runs:
        progress(
            f"ragloop: no runs in the run store {where}"
            + (f" created at or after {args.since}" if since else "")
            + ": record answers with `ragloop ask`, the HTTP API or `ragloop runs import` first"
        )
        return 1
    progress(f"Read {len(runs)} runs from {where}; embedding their questions with {config.embedder!r}...")
    vectors = gaps.question_vectors(make_embedder(config.embedder), runs, progress=progress)
    try:
        topics = gaps.find_topics(runs, vectors)
    except gaps.GapsError as err:
        progress(f"ragloop: {err}")
        return 1
    progress(
        f"Grouped {len(runs)} questions into {sum(t.topic_id != gaps.NOT_GROUPED for t in topics)} topics "
        f"({gaps.DEFAULT_METHOD}, cosine distance threshold {gaps.DEFAULT_THRESHOLD})"
    )
    if args.csv:
        try:
            Path(args.csv).write_text(gaps.topics_csv(topics), encoding="utf-8")
        except OSError as err:
            progress(f"ragloop: cannot write --csv {args.csv}: {err.strerror or err}")
            return 1
        progress(f"Wrote {len(topics)} topics to {args.csv}")
    emit(
        args,
        {
            "runs": len(runs),
            "method": gaps.DEFAULT_METHOD,
            "threshold": gaps.DEFAULT_THRESHOLD,
            "topics": [t.to_json() for t in topics],
        },
        lambda _: gaps.topics_text(topics),
    )
    return 0


# --- the operator's report ----------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """What the operator's page shows (knowledge base, ingest history, feedback loop, docs gaps),
    as a self-contained HTML file with the plots inlined (--html), as JSON (--json) or as a summary."""
    from datetime import datetime, timezone
    from pathlib import Path

    from ragloop.operator.data import gather
    from ragloop.operator.render import render_html, render_json

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            progress(f"ragloop: --since {args.since!r} is not an ISO 8601 date or time (like 2026-11-01)")
            return 2
        since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    _prepare_airflow()
    data = gather(args.config, since, with_gaps=not args.no_gaps, progress=progress)
    if args.html:
        try:
            Path(args.html).write_text(render_html(data, standalone=True), encoding="utf-8")
        except OSError as err:
            progress(f"ragloop: cannot write --html {args.html}: {err.strerror or err}")
            return 1
        progress(f"Wrote the report to {args.html}")
    if args.json:
        print(render_json(data), file=results)
    elif not args.html:
        print(_report_text(data), file=results)
    return 0


def _report_text(data: dict) -> str:
    kb, fb, gaps = data["knowledge_base"], data["feedback"], data["gaps"]
    lines = [f"{data['collection']}: {kb.get('chunks', '-')} chunks, {kb.get('documents', '-')} documents"]
    for error in filter(None, [kb.get("error"), data["ingest_history"].get("error"), fb.get("error"), gaps.get("error")]):
        lines.append(f"  ERROR: {error}")
    for source in kb["sources"]:
        lines.append(
            f"  {source['source_id']:<20} {source['freshness']:<8} {source['documents']:>6} docs {source['chunks']:>7} chunks  "
            f"{source['freshness_reason']}"
        )
    lines.append(f"ingest runs stored: {len(data['ingest_history']['runs'])} shown")
    votes = fb.get("votes") or {}
    lines.append(
        f"feedback: {fb.get('runs', '-')} runs, {votes.get('up', 0)} up / {votes.get('down', 0)} down, "
        f"{len(fb.get('written_back') or [])} answers written back"
    )
    for topic in (gaps.get("topics") or [])[:5]:
        lines.append(f"  gap #{topic['topic_id']}: need {topic['need']} of {topic['size']}: {topic['label'][:90]}")
    lines.append("(--html PATH for the page with its plots, --json for everything)")
    return "\n".join(lines)


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ragloop", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show Airflow's and ragloop's INFO logs on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(subparsers, name: str, func, help: str, json_flag: bool = True, config: bool = False):
        sub = subparsers.add_parser(name, help=help, description=help)
        sub.set_defaults(func=func)
        if json_flag:
            sub.add_argument("--json", action="store_true", help="print one JSON document")
        if config:
            sub.add_argument("--config", help="sources.yaml to use (default: $RAGLOOP_CONFIG or include/sources.yaml)")
        return sub

    weaviate = commands.add_parser("weaviate", help="the local Weaviate server").add_subparsers(dest="action", required=True)
    start = command(weaviate, "start", cmd_weaviate_start, "start the local server (builds the binary once)")
    start.add_argument("--timeout", type=float, default=90.0, help="seconds to wait until it is ready")
    command(weaviate, "stop", cmd_weaviate_stop, "stop the server ragloop started")
    command(weaviate, "status", cmd_weaviate_status, "version, address, data folder, objects per collection")
    logs = command(weaviate, "logs", cmd_weaviate_logs, "the end of the server log", json_flag=False)
    logs.add_argument("-n", "--lines", type=int, default=50)

    command(commands, "status", cmd_status, "configuration, embedder, Weaviate and what it holds", config=True)
    command(
        commands,
        "doctor",
        cmd_doctor,
        "every connection and store ragloop uses, resolved and reached, with the fix "
        "for each that is not right (run it where the tasks run)",
        config=True,
    )
    embedder = command(commands, "embedder", cmd_embedder, "measure the configured embedder on the sample docs", config=True)
    embedder.add_argument("--samples", help="folder of markdown to embed (default: include/samples/docs)")
    embedder.add_argument("--limit", type=int, help="embed at most this many passages")

    ingest = command(
        commands, "ingest", cmd_ingest, "ingest the configured sources (each type's ingest DAG via dag.test())", config=True
    )
    ingest.add_argument("--source", action="append", metavar="ID", help="only this source (repeatable); runs the DAG of its type")
    ingest.add_argument("--full-refresh", action="store_true", help="rewrite every document, changed or not")
    ingest.add_argument(
        "--full-listing",
        action="store_true",
        help="Slack and GitHub live sources: read everything, not just what changed since the watermarks, and prune what is gone",
    )
    search_cmd = command(commands, "search", cmd_search, "hybrid search (vector + BM25) over the collection", config=True)
    search_cmd.add_argument("question")
    search_cmd.add_argument("--limit", type=int, default=5)
    search_cmd.add_argument("--source", action="append", metavar="ID", help="only chunks of this source (repeatable)")
    search_cmd.add_argument(
        "--kind", action="append", metavar="KIND", help="only this kind: docs, slack, github, qa (repeatable)"
    )
    search_cmd.add_argument(
        "--alpha",
        type=_unit_interval,
        default=None,
        metavar="A",
        help="weight of the vector against keywords, 0 to 1 (default: the measured HYBRID_ALPHA)",
    )
    search_cmd.add_argument("--audience", choices=["public", "internal"], default="internal", help=AUDIENCE_HELP)

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
    runs_cmd = command(commands, "runs", cmd_runs, "recorded Q&A runs, newest first, with votes, grades and write-back state")
    runs_cmd.add_argument("--limit", type=int, default=20)
    runs_cmd.add_argument("--since", help="only runs created at or after this ISO 8601 time")
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

    command(
        commands, "check", cmd_check, "run the ragloop_check DAG (Weaviate, collection, embedder) via dag.test()", config=True
    )

    index = commands.add_parser("index", help="manage collections").add_subparsers(dest="action", required=True)
    drop = command(index, "drop", cmd_index_drop, "delete a collection and everything in it")
    drop.add_argument("name")
    drop.add_argument("--yes", action="store_true", help="really delete")

    airflow = commands.add_parser("airflow", help="the local Airflow").add_subparsers(dest="action", required=True)
    command(airflow, "setup", cmd_airflow_setup, "migrate the local metadata DB and load airflow_settings.yaml")
    standalone = command(airflow, "start", cmd_airflow_start, "Airflow standalone on 127.0.0.1:8080 in the background")
    standalone.add_argument("--timeout", type=float, default=240.0)
    command(airflow, "stop", cmd_airflow_stop, "stop the Airflow standalone ragloop started")

    gaps_cmd = command(
        commands,
        "gaps",
        cmd_gaps,
        "docs gaps: recorded questions grouped into topics by their embeddings, the topics answered worst first",
        config=True,
    )
    gaps_cmd.add_argument("--since", help="only runs created at or after this ISO 8601 date or time")
    gaps_cmd.add_argument("--limit", type=int, default=5000, help="the newest runs read (default 5000)")
    gaps_cmd.add_argument("--csv", metavar="PATH", help="also write the topics to this CSV file")
    report_cmd = command(
        commands,
        "report",
        cmd_report,
        "the operator's report: knowledge base, ingest history, feedback loop and docs gaps (HTML with plots, or JSON)",
        config=True,
    )
    report_cmd.add_argument("--since", help="only runs, votes and DAG-run reports at or after this ISO 8601 date or time")
    report_cmd.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with the plots inlined")
    report_cmd.add_argument("--no-gaps", action="store_true", help="leave out the docs gaps (which embed every question)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reserve_stdout_for_results()
    from ragloop.progress import PROGRESS_ENV

    if not args.verbose:
        # Airflow logs every step at INFO; the CLI prints its own progress and results instead.
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        # dag.test() warns "No tasks to run" for a second while a task mapped over nothing (an
        # ingest with no changes) is being skipped; at a terminal that reads like a failure.
        # A filter, not a level: Airflow's logging setup resets the levels of existing loggers.
        logging.getLogger("airflow.sdk.definitions.dag").addFilter(
            lambda record: not str(record.msg).startswith("No tasks to run")
        )
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    # The task bodies' progress lines (documents read, batches indexed) reach this terminal even
    # while Airflow's logging is quiet; they run in this process under dag.test().
    os.environ[PROGRESS_ENV] = "1"
    # Before anything imports airflow: it reads its configuration at import time.
    localenv.configure_airflow_env()
    from ragloop.errors import RagloopError

    try:
        return args.func(args)
    except RagloopError as err:  # expected failures: the message names what failed and the fix
        print(f"ragloop: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
