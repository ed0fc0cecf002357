"""Running the four services in the background for a command (demo, bench)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from eventing.kafka.admin import groups_assigned
from eventing.settings import SERVICES, load_settings
from eventing.signals import exit_on_sigterm

__all__ = ["background_services", "child_pids"]


def _wait_ready(log_path: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until each service's consumer group holds its partitions, so that measurements and
    traces show the saga rather than start-up."""
    bootstrap = load_settings().kafka_bootstrap_servers
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"the services exited; see {log_path}")
        if groups_assigned(bootstrap, [f"{s}-svc" for s in SERVICES]):
            return
        time.sleep(0.3)
    raise click.ClickException(f"the services did not start within 90 s; see {log_path}")


@contextmanager
def background_services(
    log_path: Path,
    env: dict[str, str] | None = None,
    keep_running: bool = False,
    instances: int = 1,
) -> Iterator[subprocess.Popen[bytes]]:
    """`saga run all [--instances N]` in its own session, logging JSON to `log_path`, stopped
    on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "saga_cli.main", "run", "all", "--instances", str(instances)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SAGA_LOG_FORMAT": "json", **(env or {})},
            start_new_session=True,
        )
    try:
        with exit_on_sigterm():
            _wait_ready(log_path, proc)
            yield proc
    finally:
        if keep_running:
            click.echo(f"\nservices still running (pid {proc.pid}); stop with: kill {proc.pid}")
        else:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def child_pids(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return found
