"""Progress lines of long work: in the task log, and on the terminal of a `ragloop` command."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

# Set by the `ragloop` command: its progress lines then reach the terminal even though Airflow's
# logging (which carries them to the task log) is quiet at a terminal.
PROGRESS_ENV = "RAGLOOP_PROGRESS_TO_STDERR"


def progress(message: str, *args) -> None:
    """A progress line: in the task log, and on the terminal of a `ragloop` command."""
    log.info(message, *args)
    if os.environ.get(PROGRESS_ENV):
        print("  " + (message % args if args else message), file=sys.__stderr__, flush=True)
