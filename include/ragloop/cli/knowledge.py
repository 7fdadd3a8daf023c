"""The knowledge base: `ingest` (each source type's DAG) and `search`."""

from __future__ import annotations

import argparse
import json

from ragloop.cli import common
from ragloop.cli.common import emit, progress
from ragloop.cli.local import ensure_local_weaviate, prepare_airflow


def cmd_ingest(args: argparse.Namespace) -> int:
    """Runs each source type's ingest DAG (docs, slack, github_issues) for the sources asked for,
    or for every configured source, one after the other, and prints one report."""
    from ragloop.config import load_config
    from ragloop.airflow.dagrun import run_dag
    from ragloop.catalog import INGEST_DAG_IDS
    from ragloop.ingest import format_report, merge_reports, select_sources

    config = load_config(args.config)  # every mistake in the file is reported before anything runs
    wanted = [config.source(source_id) for source_id in args.source or []]  # unknown ids fail here, named
    types = [t for t in INGEST_DAG_IDS if any(s["type"] == t for s in (wanted or config.sources))] or ["docs"]
    plans = []
    for source_type in types:
        requested = [s["id"] for s in wanted if s["type"] == source_type]
        plans.append((source_type, requested, select_sources(args.config, requested or None, source_type)))
    prepare_airflow()
    ensure_local_weaviate()
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
VIEWER_HELP = (
    "whose view of the recorded runs: public shows only runs whose every retrieved source was public (their "
    "questions, answers, titles, votes and counts), what a public reader may be shown; internal shows every run; "
    "default internal: whoever runs the CLI holds the run store's own credentials"
)


def cmd_search(args: argparse.Namespace) -> int:
    from ragloop.config import load_config
    from ragloop.embedding import make_embedder
    from ragloop.index import connect, search

    config = load_config(args.config)
    prepare_airflow()
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
            print(json.dumps({**hit.to_json(), "written_back": hit.kind == "qa"}, ensure_ascii=False), file=common.results)
        return 0
    if not hits:
        print("No results.", file=common.results)
    from ragloop.answer import WRITTEN_BACK_LABEL

    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split("\n\n", 1)[-1].split())
        mark = f" ({WRITTEN_BACK_LABEL})" if hit.kind == "qa" else ""
        print(
            f"{rank}. {hit.title}{mark}  [{hit.score:.3f}]\n   {hit.url or hit.doc_id}\n   {hit.heading_path}\n"
            f"   {snippet[:240]}{'...' if len(snippet) > 240 else ''}",
            file=common.results,
        )
    return 0


def register(commands, command) -> None:
    """Add this module's commands to the `ragloop` parser."""
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
