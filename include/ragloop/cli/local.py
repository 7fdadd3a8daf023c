"""The local mode's servers: Weaviate (start, stop, status, logs), Airflow standalone, and
collections dropped by hand."""

from __future__ import annotations

import argparse

from ragloop.local import localenv
from ragloop.cli import common
from ragloop.cli.common import emit, progress
from ragloop.paths import state_dir


def prepare_airflow() -> None:
    """The local mode needs its metadata DB (connections live there) before any command runs."""
    if localenv.is_local_mode() and localenv.ensure_local_airflow():
        progress(f"Prepared the local Airflow metadata DB under {localenv.airflow_home()}")


def local_server():
    from ragloop.index import endpoint_from_connection
    from ragloop.local.weaviate_local import local_server_for

    prepare_airflow()
    return local_server_for(endpoint_from_connection(), state_dir() / "weaviate")


def ensure_local_weaviate() -> None:
    """Start the local server when the connection points at it and it is down; a remote
    Weaviate is left to whoever runs it."""
    from ragloop.index import endpoint_from_connection
    from ragloop.local.weaviate_local import LOOPBACK_HOSTS

    endpoint = endpoint_from_connection()
    if endpoint.host in LOOPBACK_HOSTS and not endpoint.http_secure:
        server = local_server()
        if not server.is_ready():
            server.start(progress=progress)


def cmd_weaviate_start(args: argparse.Namespace) -> int:
    server = local_server()
    message = server.start(timeout=args.timeout, progress=progress)
    emit(args, {"message": message, "url": server.url, "pid": server.pid()}, lambda r: r["message"])
    return 0


def cmd_weaviate_stop(args: argparse.Namespace) -> int:
    emit(args, {"message": local_server().stop()}, lambda r: r["message"])
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
    info = local_server().status()
    emit(args, info, _status_text)
    return 0 if info["running"] else 3


def cmd_weaviate_logs(args: argparse.Namespace) -> int:
    print(local_server().log_tail(args.lines), file=common.results)
    return 0


def cmd_index_drop(args: argparse.Namespace) -> int:
    from ragloop.index import connect, drop_collection

    if not args.yes:
        progress(f"This deletes collection {args.name} and every object in it. Add --yes to do it.")
        return 2
    prepare_airflow()
    with connect() as client:
        dropped = drop_collection(client, args.name)
    emit(
        args,
        {"collection": args.name, "dropped": dropped},
        lambda r: f"Dropped {r['collection']}" if r["dropped"] else f"No collection {r['collection']}",
    )
    return 0


def cmd_airflow_setup(args: argparse.Namespace) -> int:
    localenv.ensure_local_airflow(force=True)
    emit(args, {"airflow_home": localenv.airflow_home()}, lambda r: f"Airflow metadata DB ready under {r['airflow_home']}")
    return 0


def cmd_airflow_start(args: argparse.Namespace) -> int:
    prepare_airflow()
    result = localenv.start_standalone(timeout=args.timeout, progress=progress)
    emit(args, result, lambda r: r["message"])
    return 0


def cmd_airflow_stop(args: argparse.Namespace) -> int:
    emit(args, {"message": localenv.stop_standalone()}, lambda r: r["message"])
    return 0


def register(commands, command) -> None:
    """Add this module's commands to the `ragloop` parser."""
    weaviate = commands.add_parser("weaviate", help="the local Weaviate server").add_subparsers(dest="action", required=True)
    start = command(weaviate, "start", cmd_weaviate_start, "start the local server (builds the binary once)")
    start.add_argument("--timeout", type=float, default=90.0, help="seconds to wait until it is ready")
    command(weaviate, "stop", cmd_weaviate_stop, "stop the server ragloop started")
    command(weaviate, "status", cmd_weaviate_status, "version, address, data folder, objects per collection")
    logs = command(weaviate, "logs", cmd_weaviate_logs, "the end of the server log", json_flag=False)
    logs.add_argument("-n", "--lines", type=int, default=50)

    index = commands.add_parser("index", help="manage collections").add_subparsers(dest="action", required=True)
    drop = command(index, "drop", cmd_index_drop, "delete a collection and everything in it")
    drop.add_argument("name")
    drop.add_argument("--yes", action="store_true", help="really delete")

    airflow = commands.add_parser("airflow", help="the local Airflow").add_subparsers(dest="action", required=True)
    command(airflow, "setup", cmd_airflow_setup, "migrate the local metadata DB and load airflow_settings.yaml")
    standalone = command(airflow, "start", cmd_airflow_start, "Airflow standalone on 127.0.0.1:8080 in the background")
    standalone.add_argument("--timeout", type=float, default=240.0)
    command(airflow, "stop", cmd_airflow_stop, "stop the Airflow standalone ragloop started")
