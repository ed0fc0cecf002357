"""Crashing and restarting the real infrastructure of the local stack."""

from __future__ import annotations

import os
import signal

from eventing.settings import Settings
from saga_cli import stack
from saga_cli.stack.procs import alive
from tests.e2e.harness import wait_for


def crash_and_restart(settings: Settings, part: str) -> None:
    """SIGKILL the Kafka broker, or an immediate shutdown of PostgreSQL (crash recovery on
    start), then bring it back with `saga stack up`'s own code."""
    report = stack.status(settings)
    pid = report[part]["pid"]
    assert pid, f"{part} is not a process of the local stack: cannot restart it ({report})"
    if part == "kafka":
        os.kill(pid, signal.SIGKILL)
    else:
        os.kill(pid, signal.SIGQUIT)  # PostgreSQL's "immediate" shutdown: no checkpoint
    wait_for(f"{part} (pid {pid}) to stop", lambda: not alive(pid), timeout=60)
    stack.up(settings)
