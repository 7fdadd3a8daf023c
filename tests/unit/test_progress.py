"""Progress bars of long `ragloop` commands (tqdm): count, rate and time left on stderr, never on
stdout; lines printed while a bar is drawn land above it; no bar where nobody watches."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
import sys
from ragloop.progress import progress, progress_bar
with progress_bar(200, "indexing", "doc") as bar:
    for _ in range(4):
        bar.update(50)
    progress("batch %d done", 1)
with progress_bar(None, "reading", "doc") as bar:
    bar.update(7)
print("result")
"""


def run(**env: str) -> subprocess.CompletedProcess:
    child = {k: v for k, v in os.environ.items() if k not in ("RAGLOOP_PROGRESS_TO_STDERR", "RAGLOOP_PROGRESS_BARS")}
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, env={**child, **env})


def test_a_command_shows_bars_with_rate_and_time_left_on_stderr_only():
    done = run(RAGLOOP_PROGRESS_TO_STDERR="1", RAGLOOP_PROGRESS_BARS="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "result\n"
    assert "indexing: 100%" in done.stderr and "200/200" in done.stderr
    assert "doc/s" in done.stderr and "<00:00" in done.stderr  # rate, and elapsed<remaining
    assert "reading: 7doc [" in done.stderr  # an unknown total: the count and the rate
    assert "  batch 1 done" in done.stderr


def test_no_bars_off_a_terminal_or_outside_a_command():
    quiet_log = run(RAGLOOP_PROGRESS_TO_STDERR="1")  # stderr is a pipe here, as in a log file
    assert quiet_log.returncode == 0 and "doc/s" not in quiet_log.stderr and "  batch 1 done" in quiet_log.stderr
    task = run(RAGLOOP_PROGRESS_BARS="1")  # a task under the scheduler: its log has the lines, no bars
    assert task.returncode == 0 and task.stderr == "" and task.stdout == "result\n"
