"""What the operator reads: `gaps` (docs gaps) and `report` (the page as HTML or JSON)."""

from __future__ import annotations

import argparse

from ragloop.cli import common
from ragloop.cli.common import emit, parse_since, progress
from ragloop.cli.knowledge import VIEWER_HELP
from ragloop.cli.local import prepare_airflow


def cmd_gaps(args: argparse.Namespace) -> int:
    """Recorded questions grouped into topics, the topics the docs serve worst first (ragloop.gaps)."""
    from pathlib import Path

    from ragloop import gaps
    from ragloop.config import load_config
    from ragloop.embedding import make_embedder
    from ragloop.runs import RunStore

    since = parse_since(args.since)
    if args.limit < 1:
        progress(f"ragloop: --limit must be at least 1, got {args.limit}")
        return 2
    config = load_config(args.config)
    prepare_airflow()
    with RunStore.default() as store:
        runs = store.list_runs(since=since, limit=args.limit, audience=args.audience)
        where = repr(store)
    if not runs:
        progress(
            f"ragloop: no runs in the run store {where}"
            + (f" created at or after {args.since}" if since else "")
            + (" that the public audience may see" if args.audience == "public" else "")
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
        f"({gaps.DEFAULT_METHOD}, cosine distance threshold {gaps.DEFAULT_THRESHOLD}, "
        f"no topic above {gaps.DEFAULT_MAX_TOPIC_SHARE:.0%} of the questions)"
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
            "max_topic_share": gaps.DEFAULT_MAX_TOPIC_SHARE,
            "topics": [t.to_json() for t in topics],
        },
        lambda _: gaps.topics_text(topics),
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """What the operator's page shows (knowledge base, ingest history, feedback loop, docs gaps),
    as a self-contained HTML file with the plots inlined (--html), as JSON (--json) or as a summary."""
    from pathlib import Path

    from ragloop.airflow.operator.data import gather
    from ragloop.airflow.operator.render import render_html, render_json

    since = parse_since(args.since)
    prepare_airflow()
    data = gather(args.config, since, with_gaps=not args.no_gaps, progress=progress, audience=args.audience)
    if args.html:
        try:
            Path(args.html).write_text(render_html(data, standalone=True), encoding="utf-8")
        except OSError as err:
            progress(f"ragloop: cannot write --html {args.html}: {err.strerror or err}")
            return 1
        progress(f"Wrote the report to {args.html}")
    if args.json:
        print(render_json(data), file=common.results)
    elif not args.html:
        print(_report_text(data), file=common.results)
    return 0


def _report_text(data: dict) -> str:
    kb, fb, gaps = data["knowledge_base"], data["feedback"], data["gaps"]
    lines = [
        f"{data['collection']}: {kb.get('chunks', '-')} chunks, {kb.get('documents', '-')} documents "
        f"(runs as the {data.get('audience')} audience sees them)"
    ]
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


def register(commands, command) -> None:
    """Add this module's commands to the `ragloop` parser."""
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
    gaps_cmd.add_argument("--audience", choices=["public", "internal"], default="internal", help=VIEWER_HELP)
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
    report_cmd.add_argument("--audience", choices=["public", "internal"], default="internal", help=VIEWER_HELP)
