"""`ragloop`: the command line of the local mode and of operators.

Progress goes to stderr; results go to stdout, as text or, with `--json`, as one JSON document,
so `ragloop ... --json | jq` always works. One module per group of commands; each adds its own
to the parser (`register`), and `main` runs the one asked for.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ragloop.local import localenv
from ragloop.cli import cluster, feedback, health, knowledge, local, reports
from ragloop.cli.common import add_command, release_results, reserve_stdout_for_results

__all__ = ["build_parser", "main", "reserve_stdout_for_results"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ragloop", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show Airflow's and ragloop's INFO logs on stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (local, cluster, health, knowledge, feedback, reports):
        group.register(commands, add_command)
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
    finally:
        release_results()


if __name__ == "__main__":
    sys.exit(main())
