"""Child processes the demo starts, and how they are found again and stopped.

Children run in their own session, so a Ctrl-C in the terminal reaches only the demo,
which then stops them in order. A pid file holds the pid and the command line the process
had when recorded; `stop_recorded` (behind `make demo-stop`) ends a recorded pid only
while its command line is still that one, so a recycled pid is never hit.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for the hub and the agents' /status)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def spawn(argv: list[str], log: Path, *, env: dict[str, str] | None = None,
          pid_file: Path | None = None) -> subprocess.Popen:
    """Start argv with stdout and stderr appended to `log`; record its pid if asked."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    if pid_file is not None:
        record(pid_file, proc.pid)
    return proc


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def record(pid_file: Path, pid: int) -> None:
    """Write pid and its command line. Popen returns once the exec is under way, a moment
    before the kernel shows the new command line: wait (briefly) until it does."""
    deadline = time.monotonic() + 2
    while not (cmdline := _cmdline(pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n{cmdline}\n")


def stop(proc: subprocess.Popen, timeout_s: float = 10) -> int:
    """SIGTERM (a graceful stop), then SIGKILL after timeout_s. Returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def stop_recorded(pid_dir: Path, timeout_s: float = 10) -> list[str]:
    """SIGTERM every recorded process still running its recorded command line, SIGKILL
    what is left after timeout_s. Removes the pid files. Returns what was stopped."""
    stopped, waiting = [], []
    for pid_file in sorted(pid_dir.glob("*.pid")) if pid_dir.exists() else []:
        try:
            pid_text, cmdline = (pid_file.read_text().split("\n") + [""])[:2]
            pid = int(pid_text)
        except (OSError, ValueError):
            pid, cmdline = 0, ""
        if pid and pid != os.getpid() and cmdline and _cmdline(pid) == cmdline:
            try:
                os.kill(pid, signal.SIGTERM)
                waiting.append((pid, cmdline))
                stopped.append(f"process {pid} ({pid_file.stem})")
            except ProcessLookupError:
                pass
        pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout_s
    for pid, cmdline in waiting:
        while _cmdline(pid) == cmdline and time.monotonic() < deadline:
            time.sleep(0.1)
        if _cmdline(pid) == cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return stopped
