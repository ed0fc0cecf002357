"""Processes, ports and locking: the OS-level helpers that the Kafka and PostgreSQL parts share.

The stack's processes outlive `saga` (they run in their own session), so they are found again
by pid and command line rather than held as child processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from saga_cli.stack.common import StackError
from saga_cli.stack.paths import StackPaths

__all__ = [
    "alive",
    "cmdline",
    "locked",
    "port_free",
    "read_int",
    "require_free",
    "tail",
    "terminate",
    "terminate_all",
]


def cmdline(pid: int) -> str:
    """The command line of a live, non-zombie process, or '' (a zombie has none)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return ""
    except OSError:  # no /proc (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return cmdline(pid) != ""


def read_int(path: Path, line: int = 0) -> int | None:
    """The integer on `line` of a pid file, or None when the file or the line is not there."""
    try:
        return int(path.read_text().splitlines()[line].strip())
    except (OSError, IndexError, ValueError):
        return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return not alive(pid)


def terminate(pid: int, timeout: float, sig: signal.Signals = signal.SIGTERM) -> None:
    """`sig` (the clean shutdown signal of the program), then SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)


def terminate_all(pids: list[int], timeout: float, sig: signal.Signals = signal.SIGTERM) -> None:
    """`terminate` for several processes at once: all get `sig` first, so that brokers of
    one cluster shut down together instead of each waiting on a quorum the others left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    for pid in pids:
        terminate(pid, max(deadline - time.monotonic(), 0.0), sig)


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log, indented, for an error message that says why something failed."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"  ({path} is missing)"
    return "\n".join(f"  {line}" for line in text) or f"  ({path} is empty)"


def port_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:`port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without SO_REUSEADDR a port in TIME_WAIT from our own last run would look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_free(port: int, env_var: str, what: str) -> None:
    if not port_free(port):
        raise StackError(
            f"port {port} ({what}) is already in use by a process that is not this stack's; "
            f"stop that process, or choose another port with {env_var}=<port>"
        )


@contextlib.contextmanager
def locked(paths: StackPaths, timeout: float = 300.0) -> Iterator[None]:
    """One `saga stack` command at a time per stack dir (two `up`s would race to start)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.lock.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(f"another `saga stack` command holds {paths.lock}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
