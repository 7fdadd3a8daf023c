"""Background servers that ragloop starts for the local mode, tracked by pid files.

Each server runs in its own process group, so stopping it signals exactly what we started: never
a process we did not start, even when its pid has been recycled by another program.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def _proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # fields: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@dataclass
class ManagedProcess:
    """A server started in the background. `markers` are command-line arguments that identify it,
    checked against /proc before any signal is sent."""

    pid_file: Path
    log_file: Path
    markers: tuple[str, ...]
    _popen: subprocess.Popen | None = field(default=None, repr=False)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except (FileNotFoundError, ProcessLookupError):
            return None
        ours = all(any(marker in part for part in cmdline) for marker in self.markers)
        return pid if ours and self.alive(pid) else None

    def wait_for_group_exit(self, pid: int, timeout: float) -> bool:
        """Wait up to `timeout` s for every member of process group `pid` to exit; True when they have."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and group_members(pid):
            self.alive(pid)  # reaps our own child once it exits
            time.sleep(0.1)
        return not group_members(pid)

    def alive(self, pid: int) -> bool:
        if self._popen is not None and self._popen.pid == pid:
            return self._popen.poll() is None
        state = _proc_state(pid)
        return state is not None and state != "Z"

    def start(self, command: list[str], env: dict[str, str], cwd: Path, user: tuple[int, int] | None = None) -> int:
        """Start `command` in a process group of its own, its output appended to the log file;
        `user`: (uid, gid) to run it as (Postgres refuses to run as root)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log_handle:
            self._popen = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user[0] if user else None,
                group=user[1] if user else None,
                extra_groups=[] if user else None,
            )
        self.pid_file.write_text(f"{self._popen.pid}\n")
        return self._popen.pid

    def exit_code(self) -> int | None:
        """The exit code when the process we started in this Python process has ended."""
        return self._popen.poll() if self._popen is not None else None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the process group, wait until every member has exited, SIGKILL what is left.
        Returns the pid it stopped, or None when nothing of ours was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        os.killpg(pid, signal.SIGTERM)
        if not self.wait_for_group_exit(pid, timeout):
            os.killpg(pid, signal.SIGKILL)
            self.wait_for_group_exit(pid, 10)
        self.alive(pid)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log yet)"
