"""Crashing and restarting the real infrastructure of the local stack."""

from __future__ import annotations

import os
import signal

from eventing.settings import Settings
from saga_cli import stack
from saga_cli.stack.procs import alive
from tests.e2e.harness import wait_for


def crash_and_restart(settings: Settings, part: str) -> None:
    """SIGKILL every Kafka broker of the stack (one, or all three of a cluster: Kafka as a
    whole crashes), or an immediate shutdown of PostgreSQL (crash recovery on start), then
    bring it back with `saga stack up`'s own code."""
    report = stack.status(settings)
    if part == "kafka":
        pids = [b["pid"] for b in report["kafka"]["brokers"] if b["pid"]]
        sig = signal.SIGKILL
    else:
        pids = [report[part]["pid"]] if report[part]["pid"] else []
        sig = signal.SIGQUIT  # PostgreSQL's "immediate" shutdown: no checkpoint
    assert pids, f"{part} is not a process of the local stack: cannot restart it ({report})"
    for pid in pids:
        os.kill(pid, sig)
    for pid in pids:
        wait_for(f"{part} (pid {pid}) to stop", lambda p=pid: not alive(p), timeout=60)
    stack.up(settings)
