"""`saga run all`: four children, logs prefixed, a dead child restarted, a clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.e2e.harness import Services, wait_for
from tests.ports import free_port

pytestmark = pytest.mark.e2e


def _children(pid: int) -> dict[str, int]:
    """The supervisor's children by service name."""
    found = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"run" in cmd:
                found[cmd[cmd.index(b"run") + 1].decode()] = int(child)
    return found


def test_run_all_restarts_a_dead_child_and_stops_cleanly(services: Services) -> None:
    env = {**os.environ, "SAGA_HTTP_PORT": str(free_port()), "SAGA_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "saga_cli.main", "run", "all"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    )  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(
            "four services started",
            lambda: sum('"service started"' in line for line in lines) >= 4,
            timeout=60,
        )
        for name in ("order", "inventory", "payment", "fulfillment"):
            assert any(line.startswith(f"{name:<13}|") for line in lines), name
        before = _children(proc.pid)
        assert set(before) == {"order", "inventory", "payment", "fulfillment"}

        os.kill(before["payment"], signal.SIGKILL)
        wait_for(
            "the supervisor to notice",
            lambda: any(
                re.search(r"payment exited with -9; restarting in [\d.]+s", line) for line in lines
            ),
            timeout=30,
        )
        wait_for(
            "payment restarted",
            lambda: _children(proc.pid).get("payment") not in (None, before["payment"]),
            timeout=30,
        )
        assert _children(proc.pid)["order"] == before["order"]  # the others untouched
        wait_for(
            "payment running again",
            lambda: sum('"service started"' in line for line in lines) >= 5,
            timeout=60,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        reader.join(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
    assert code == 0
    assert any("stopping order, inventory, payment, fulfillment" in line for line in lines)
    assert sum('"service stopped"' in line for line in lines) >= 4
