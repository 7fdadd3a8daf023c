"""`ragloop cluster start|stop|status|demo`: a distributed deployment on this machine (see
ragloop.local.cluster.runner)."""

from __future__ import annotations

import argparse
import json

from ragloop.cli.common import emit, progress


def cmd_cluster(args: argparse.Namespace) -> int:
    from ragloop.local.cluster.runner import Cluster

    cluster = Cluster()
    if args.action == "start":
        emit(args, cluster.start(progress=progress), lambda r: f"Cluster up in {r['seconds']} s; Airflow at {r['api_url']}")
    elif args.action == "stop":
        emit(args, {"stopped": cluster.stop(progress=progress)}, lambda r: "Cluster stopped")
    elif args.action == "status":
        emit(args, cluster.status(), lambda r: json.dumps(r, indent=2))
    elif args.action == "demo":
        from ragloop.local.cluster.demo import run_demo

        emit(args, run_demo(cluster, progress=progress), lambda r: f"Mapped tasks ran on {', '.join(r['mapped_task_hosts'])}")
    return 0


def register(commands, command) -> None:
    """Add this module's commands to the `ragloop` parser."""
    cluster = commands.add_parser(
        "cluster", help="a distributed deployment on this machine: Celery workers, Postgres, Redis, S3, 3 Weaviate nodes"
    ).add_subparsers(dest="action", required=True)
    command(cluster, "start", cmd_cluster, "start every component on 127.0.0.1 (make cluster)")
    command(cluster, "stop", cmd_cluster, "stop every component the cluster started (make cluster-stop)")
    command(cluster, "status", cmd_cluster, "components, pids, readiness, objects per Weaviate node")
    command(cluster, "demo", cmd_cluster, "ingest, ask, vote and grade on the running cluster; where each task ran")
