"""Progress of long work: lines in the task log and on the terminal of a `ragloop` command, and
bars (tqdm: count, rate and time left) on that terminal only, on stderr, never stdout."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Any
from collections.abc import Iterator

log = logging.getLogger(__name__)

# Set by the `ragloop` command: its progress lines then reach the terminal even though Airflow's
# logging (which carries them to the task log) is quiet at a terminal.
PROGRESS_ENV = "RAGLOOP_PROGRESS_TO_STDERR"
# Bars are drawn when the command's stderr is a terminal; "1" draws them anyway (a log file then
# holds the bar's redraws), "0" never.
BARS_ENV = "RAGLOOP_PROGRESS_BARS"

_bars: list[Any] = []  # the bars on the terminal now: lines are printed above them


def progress(message: str, *args) -> None:
    """A progress line: in the task log, and on the terminal of a `ragloop` command."""
    log.info(message, *args)
    if os.environ.get(PROGRESS_ENV):
        line = "  " + (message % args if args else message)
        if _bars:
            from tqdm import tqdm

            tqdm.write(line, file=sys.__stderr__)
        else:
            print(line, file=sys.__stderr__, flush=True)


def bars_enabled() -> bool:
    if not os.environ.get(PROGRESS_ENV) or sys.__stderr__ is None:
        return False
    setting = os.environ.get(BARS_ENV)
    if setting is not None:
        return setting == "1"
    return sys.__stderr__.isatty()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


@contextmanager
def progress_bar(total: int | None, description: str, unit: str = "it") -> Iterator[Any]:
    """A bar on the terminal of a `ragloop` command (`.update(n)` as work is done); elsewhere (a
    task under the scheduler) nothing: the task log has the progress lines."""
    if not bars_enabled():
        yield _NoBar()
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc="  " + description, unit=unit, file=sys.__stderr__, mininterval=0.5, dynamic_ncols=True)
    _bars.append(bar)
    try:
        yield bar
    finally:
        _bars.remove(bar)
        bar.close()
