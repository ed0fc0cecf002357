"""Running the four services as real processes, and waiting on what they do."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from eventing.settings import SERVICES, Settings
from order_svc.placement import CheckoutRequest, place_order
from saga_cli.trace import build_trace
from tests.ports import free_port

T = TypeVar("T")
_STARTED = re.compile(rb'"service started"')

# Short delays so retry and expiry paths run in seconds, not minutes.
TEST_ENV = {
    "SAGA_LOG_FORMAT": "json",
    "SAGA_LOG_LEVEL": "INFO",
    "SAGA_REAPER_INTERVAL_S": "0.2",
    "SAGA_RETRY_FORWARD_BASE_DELAY_S": "0.05",
    "SAGA_RETRY_FORWARD_MAX_DELAY_S": "0.5",
    "SAGA_RETRY_FORWARD_MAX_ATTEMPTS": "4",
    "SAGA_RETRY_COMPENSATION_BASE_DELAY_S": "0.05",
    "SAGA_RETRY_COMPENSATION_MAX_DELAY_S": "0.5",
    "SAGA_RETRY_COMPENSATION_MAX_ATTEMPTS": "6",
}


def wait_for(
    what: str, check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Service:
    def __init__(
        self,
        name: str,
        log_dir: Path,
        env: dict[str, str],
        instance: int = 0,
        of: int = 1,
        bootstrap: str = "",
    ) -> None:
        self.name = name
        self.bootstrap = bootstrap  # the Kafka this service's group lives in
        self.instance = instance
        self.label = f"{name}-{instance}" if instance else name
        self.env = (
            {
                **env,
                "SAGA_INSTANCE": str(instance),
                "SAGA_INSTANCES": str(of),
                "SAGA_HTTP_REUSE_PORT": "1",
            }
            if instance
            else env
        )
        # Its own metrics port: several services (and instances) run on this one host.
        self.metrics_port = free_port()
        self.env = {**self.env, "SAGA_METRICS_PORT": str(self.metrics_port)}
        self.log_path = log_dir / f"{self.label}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, extra_env: dict[str, str] | None = None, until: str = "assigned") -> None:
        """Start the service; return once its consumer holds partitions (`until="assigned"`)
        or, where Kafka may be down (chaos), once it has started (`until="started"`).

        Waiting for the assignment keeps a test from stopping a service in the middle of
        joining its consumer group, which a real deployment does not do every few seconds.
        """
        log = self.log_path.open("ab")
        self._started_at = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "saga_cli.main", "run", self.name],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**self.env, **(extra_env or {})},
        )
        log.close()
        wait_for(f"{self.label} to start", lambda: self._logged(_STARTED), timeout=60)
        if until == "assigned":
            # Ask the group's coordinator, not the log: this process holds partitions.
            from tests.e2e.kafka_tools import member_holds_partitions

            assert self.proc is not None
            client_id = f"{self.name}-{socket.gethostname()}-{self.proc.pid}"
            bootstrap = self.bootstrap
            wait_for(
                f"{self.label} to hold partitions in {self.name}-svc",
                lambda: (
                    self._alive()
                    and member_holds_partitions(bootstrap, f"{self.name}-svc", client_id)
                ),
                timeout=60,
                interval=0.3,
            )

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.label} exited with {self.proc.returncode}:\n{self.tail()}")
        return True

    def _logged(self, marker: re.Pattern[bytes]) -> bool:
        # Read before looking at the exit status: a crash-point run may log and die at once.
        with self.log_path.open("rb") as f:
            f.seek(self._started_at)
            if marker.search(f.read()):
                return True
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.label} exited with {self.proc.returncode}:\n{self.tail()}")
        return False

    def log_since_start(self) -> str:
        with self.log_path.open("rb") as f:
            f.seek(self._started_at)
            return f.read().decode("utf-8", "replace")

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def diagnosis(self, lines: int) -> str:
        state = "never started"
        if self.proc is not None:
            code = self.proc.poll()
            state = f"pid {self.proc.pid} running" if code is None else f"exited with {code}"
        warnings: Counter[str] = Counter()
        last: deque[str] = deque(maxlen=lines)
        for line in self.log_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                last.append(line[:300])
                continue
            if entry.get("event") == "librdkafka":
                continue
            last.append(f"{entry.get('timestamp', '?')[11:23]} {entry.get('level')} {line[:300]}")
            if entry.get("level") in ("warning", "error", "critical"):
                warnings[str(entry.get("event"))] += 1
        top = ", ".join(f"{n}x {e!r}" for e, n in warnings.most_common(6)) or "none"
        return f"--- {self.label}: {state}; warnings: {top}\n" + "\n".join(last)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Services:
    """Every service as real processes: one each, or `instances` each in one consumer group
    (order's instances then share the API port)."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        instances: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        # Our own API port: a developer's `saga run` on the default port must not collide.
        self.http_port = free_port()
        base = {**os.environ, **TEST_ENV, "SAGA_HTTP_PORT": str(self.http_port), **(env or {})}
        self.settings = settings
        self.fleet = {
            n: [
                Service(
                    n,
                    log_dir,
                    base,
                    instance=i if instances > 1 else 0,
                    of=instances,
                    bootstrap=settings.kafka_bootstrap_servers,
                )
                for i in range(1, instances + 1)
            ]
            for n in SERVICES
        }
        self.by_name = {n: group[0] for n, group in self.fleet.items()}

    def __getitem__(self, name: str) -> Service:
        return self.by_name[name]

    def every(self) -> list[Service]:
        return [s for group in self.fleet.values() for s in group]

    def start_all(self) -> None:
        for s in self.every():
            s.start()

    def stop_all(self) -> None:
        for s in self.every():
            s.stop()

    def diagnosis(self, lines: int = 12) -> str:
        """What each service was doing: its state, its warnings, its last log lines."""
        return "\n".join(s.diagnosis(lines) for s in self.every())


def connect(settings: Settings, service: str) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.dsn(service), autocommit=True)


def place(
    settings: Settings,
    *,
    items: dict[str, int],
    card: str = "tok_ok",
    country: str = "US",
    customer: str = "e2e",
    key: str | None = None,
) -> uuid.UUID:
    req = CheckoutRequest.from_dict(
        {
            "customer_id": customer,
            "items": [{"sku": s, "qty": q} for s, q in items.items()],
            "card_token": card,
            "ship_to": {"country": country},
        }
    )
    with connect(settings, "order") as conn:
        return place_order(conn, req, key).order_id


def trace(settings: Settings, order_id: uuid.UUID) -> dict[str, Any]:
    with connect(settings, "order") as conn:
        t = build_trace(conn, settings, order_id)
    assert t is not None, f"order {order_id} unknown to the order service"
    return t.as_dict()


def wait_terminal(settings: Settings, order_id: uuid.UUID, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        t = trace(settings, order_id)
        return t if t["status"] in ("COMPLETED", "CANCELLED") else None

    try:
        return wait_for(f"order {order_id} to end", done, timeout=timeout, interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ntrace: {trace(settings, order_id)}") from None


def event_types(t: dict[str, Any]) -> list[str]:
    return [e["event_type"] for e in t["events"]]


def new_sku(settings: Settings, qty: int, price_minor: int = 1000) -> str:
    from saga_cli.catalog import set_item

    sku = f"T-{uuid.uuid4().hex[:12]}"
    set_item(settings, sku, qty, price_minor, reason="test")
    return sku


def stock_of(settings: Settings, sku: str) -> dict[str, Any]:
    with connect(settings, "inventory") as conn:
        row = conn.execute(
            "SELECT on_hand, reserved, shipped FROM stock WHERE sku = %s", (sku,)
        ).fetchone()
    assert row is not None
    return {"on_hand": row[0], "reserved": row[1], "shipped": row[2]}


class reconfigured:
    """Run `service` with extra environment inside the block; back to normal after it."""

    def __init__(self, services: Services, service: str, env: dict[str, str]) -> None:
        self.service = services[service]
        self.env = env

    def __enter__(self) -> Service:
        self.service.stop()
        self.service.start(extra_env=self.env)
        return self.service

    def __exit__(self, *exc: object) -> None:
        self.service.stop()
        self.service.start()
