"""What every command shares: stdout kept for results, progress on stderr, one way to print a
result (text, or one JSON document with --json), and the helper that declares a command."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from datetime import datetime, UTC
from typing import Any
from collections.abc import Callable

from ragloop.errors import RagloopError

# Where results go. Airflow logs to stdout; `main` moves everything else to stderr so that
# `ragloop ... --json` prints exactly one JSON document on stdout.
results = sys.stdout


def reserve_stdout_for_results():
    """Keep stdout for results only: everything else (Airflow's logs, warnings, child processes)
    goes to stderr from now on. Returns the results stream; `release_results` closes it."""
    global results
    try:
        sys.stdout.flush()
        results = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        # At the descriptor level, so child processes (Airflow's task supervisor) follow too.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        results, sys.stdout = sys.stdout, sys.stderr  # under a test runner's capture
    return results


def release_results() -> None:
    """Flush and close the results stream `reserve_stdout_for_results` opened (a duplicate of the
    original stdout). Left open, the interpreter closed it at exit with `ResourceWarning:
    unclosed file` on stderr after every command."""
    global results
    stream, results = results, sys.stdout
    if stream not in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) and not stream.closed:
        stream.close()


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(args: argparse.Namespace, result: Any, text: Callable[[Any], str] | None = None) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, indent=None, default=str), file=results)
    else:
        print(text(result) if text else result, file=results)


def add_command(subparsers, name: str, func, help: str, json_flag: bool = True, config: bool = False):
    """A subcommand running `func(args)`; `--json` prints one JSON document, `--config` names the
    sources.yaml to use."""
    sub = subparsers.add_parser(name, help=help, description=help)
    sub.set_defaults(func=func)
    if json_flag:
        sub.add_argument("--json", action="store_true", help="print one JSON document")
    if config:
        sub.add_argument("--config", help="sources.yaml to use (default: $RAGLOOP_CONFIG or include/sources.yaml)")
    return sub


class BadOption(RagloopError):
    """A command-line option with a value that cannot be used; exits 2, like argparse."""

    exit_code = 2


def parse_since(text: str | None) -> datetime | None:
    """`--since`: an ISO 8601 date or time, as UTC when it names no zone; None when not given."""
    if not text:
        return None
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        raise BadOption(
            f"--since {text!r} is not an ISO 8601 date or time (like 2026-11-01 or 2026-11-01T08:00:00+00:00)"
        ) from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)
