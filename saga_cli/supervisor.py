"""`saga run all` / `--instances N`: services as child processes, logs prefixed and interleaved.

A child that dies is restarted with exponential backoff (reset once it has stayed up a
while); SIGTERM/SIGINT are passed on so every child shuts down gracefully. With N instances
each child is told which one it is (SAGA_INSTANCE, in its log lines), and order instances
share the API port (SAGA_HTTP_REUSE_PORT).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

import click

from eventing.signals import stop_on_signals

__all__ = ["supervise"]

_COLORS = {"order": "cyan", "inventory": "green", "payment": "yellow", "fulfillment": "magenta"}
_STABLE_S = 30.0


@dataclass
class _Child:
    name: str
    instance: int = 1
    instances: int = 1
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start_at: float = 0.0
    pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name}-{self.instance}" if self.instances > 1 else self.name


def _pump(
    name: str, stream: IO[bytes], lock: threading.Lock, color: bool, service: str = ""
) -> None:
    """Copy a child's output line by line behind its name. Under load a child writes
    thousands of lines a second: read what is there, prefix every whole line, write them
    with one flush, and leave the bytes as they are (no decoding)."""
    prefix = f"{name:<13}|"
    styled = (
        click.style(prefix, fg=_COLORS.get(service or name)) if color else prefix
    ).encode() + b" "
    out = sys.stdout.buffer
    pending = b""
    read = getattr(stream, "read1", stream.read)
    while chunk := read(65536):
        *lines, pending = (pending + chunk).split(b"\n")
        if lines:
            with lock:
                out.write(b"".join(styled + line + b"\n" for line in lines))
                out.flush()
    if pending:
        with lock:
            out.write(styled + pending + b"\n")
            out.flush()


def _spawn(child: _Child, lock: threading.Lock, color: bool) -> None:
    cmd = [sys.executable, "-m", "saga_cli.main", "run", child.name]
    env = os.environ.copy()
    if child.instances > 1:
        env["SAGA_INSTANCE"] = str(child.instance)
        env["SAGA_INSTANCES"] = str(child.instances)
        env["SAGA_HTTP_REUSE_PORT"] = "1"
    child.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    child.started_at = time.monotonic()
    assert child.proc.stdout is not None
    child.pump = threading.Thread(
        target=_pump, args=(child.label, child.proc.stdout, lock, color, child.name), daemon=True
    )
    child.pump.start()


def supervise(names: Sequence[str], color: bool, instances: int = 1) -> int:
    stop = threading.Event()
    lock = threading.Lock()

    stop_on_signals(stop)
    children = [_Child(n, i, instances) for n in names for i in range(1, instances + 1)]
    for c in children:
        _spawn(c, lock, color)
    while not stop.is_set():
        now = time.monotonic()
        for c in children:
            if c.proc is not None and c.proc.poll() is not None:
                code = c.proc.returncode
                if now - c.started_at > _STABLE_S:
                    c.restarts = 0
                delay = min(30.0, 0.5 * 2**c.restarts)
                c.restarts += 1
                c.next_start_at = now + delay
                with lock:
                    click.echo(
                        f"{'supervisor':<13}| {c.label} exited with {code}; "
                        f"restarting in {delay:.1f}s (restart #{c.restarts})"
                    )
                c.proc = None
            if c.proc is None and now >= c.next_start_at:
                _spawn(c, lock, color)
        stop.wait(0.2)
    with lock:
        click.echo(f"{'supervisor':<13}| stopping {', '.join(c.label for c in children)}")
    for c in children:
        if c.proc is not None and c.proc.poll() is None:
            c.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for c in children:
        if c.proc is None:
            continue
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()
        if c.pump is not None:
            c.pump.join(timeout=2)
    return 0
