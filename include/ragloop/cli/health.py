"""Is everything right: `status`, `doctor`, `embedder` (its rate) and `check` (the check DAG)."""

from __future__ import annotations

import argparse
from typing import Any

from ragloop.local import localenv
from ragloop.cli.common import emit, progress
from ragloop.cli.local import prepare_airflow


def cmd_status(args: argparse.Namespace) -> int:
    from ragloop.config import load_config
    from ragloop.embedding import make_embedder
    from ragloop.index import WeaviateIndexError, recorded_embedder
    from ragloop.setup_checks import check_weaviate

    prepare_airflow()
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
    from ragloop.airflow.doctor import diagnose, format_diagnosis

    prepare_airflow()
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
    from ragloop.airflow.dagrun import run_dag

    prepare_airflow()
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


def register(commands, command) -> None:
    """Add this module's commands to the `ragloop` parser."""
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

    command(
        commands, "check", cmd_check, "run the ragloop_check DAG (Weaviate, collection, embedder) via dag.test()", config=True
    )
