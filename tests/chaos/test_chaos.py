"""Chaos: orders of every path flow while services, PostgreSQL, Kafka and the payment
gateway fail; once quiet, the audit finds nothing wrong and every order is accounted for.

The CI-sized run is marked `chaos`; the long one is also marked `soak` (`make chaos`).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from eventing.settings import SERVICES, Settings
from order_svc.placement import CheckoutRequest, place_order
from payment_svc.gateway import clear_fault, set_fault
from tests.chaos.infra import crash_and_restart
from tests.e2e.harness import Services, connect, new_sku, wait_for
from tests.e2e.kafka_tools import produce_raw

pytestmark = pytest.mark.chaos


@dataclass
class Report:
    orders: int = 0
    placement_retries: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    infra_restarts: Counter[str] = field(default_factory=Counter)
    gateway_outages: int = 0
    gateway_failures: int = 0
    timeline: list[str] = field(default_factory=list)
    poison: int = 0
    dead_lettered: int = 0
    redriven: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    violations: int = 0
    stuck: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, Counter) else v for k, v in self.__dict__.items()}


def _saga(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saga_cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


class Shopper:
    """Places orders at a steady rate; retries through outages with an idempotency key."""

    def __init__(
        self,
        settings: Settings,
        skus: dict[str, str],
        n: int,
        rate: float,
        rng: random.Random,
        report: Report,
    ) -> None:
        self.settings, self.skus, self.n, self.rate = settings, skus, n, rate
        self.rng, self.report = rng, report
        self.placed: list[uuid.UUID] = []
        self.error: BaseException | None = None

    def _body(self) -> dict[str, Any]:
        roll = self.rng.random()
        sku = self.skus["scarce"] if roll < 0.15 else self.skus["plenty"]
        card = "tok_declined" if 0.15 <= roll < 0.3 else "tok_ok"
        country = "ZZ" if 0.3 <= roll < 0.45 else "US"
        return {
            "customer_id": "chaos",
            "items": [{"sku": sku, "qty": self.rng.randint(1, 3)}],
            "card_token": card,
            "ship_to": {"country": country},
        }

    def _place(self, req: CheckoutRequest, key: str) -> uuid.UUID:
        deadline = time.monotonic() + 120
        while True:
            try:
                with psycopg.connect(
                    self.settings.dsn("order"), autocommit=True, connect_timeout=3
                ) as conn:
                    return place_order(conn, req, key).order_id
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                self.report.placement_retries += 1
                time.sleep(0.2)

    def run(self) -> None:
        try:
            start = time.monotonic()
            for i in range(self.n):
                req = CheckoutRequest.from_dict(self._body())
                self.placed.append(self._place(req, f"chaos-{uuid.uuid4()}"))
                time.sleep(max(0.0, start + (i + 1) / self.rate - time.monotonic()))
        except BaseException as exc:
            self.error = exc


def _gateway_retries(services: Services) -> int:
    """Handler failures because the gateway was down, as logged by payment."""
    return services["payment"].log_text().count("payment gateway unavailable")


def _unsettled(settings: Settings, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    with connect(settings, "order") as conn:
        rows = conn.execute(
            "SELECT order_id FROM orders WHERE order_id = ANY(%s) AND status IN "
            "('COMPLETED', 'CANCELLED')",
            (ids,),
        ).fetchall()
    return sorted(set(ids) - {r[0] for r in rows})


def _dead_entries(settings: Settings) -> int:
    total = 0
    for service in SERVICES:
        with connect(settings, service) as conn:
            row = conn.execute(
                "SELECT count(*) FROM parked WHERE state = 'dead' AND blocks"
            ).fetchone()
            total += row[0] if row else 0
    return total


def run_chaos(
    settings: Settings, services: Services, *, orders: int, rate: float, rounds: int, seed: int
) -> Report:
    rng = random.Random(seed)
    report = Report(orders=orders)
    started = time.monotonic()
    skus = {"plenty": new_sku(settings, qty=orders * 3), "scarce": new_sku(settings, qty=15)}
    shopper = Shopper(settings, skus, orders, rate, rng, report)
    thread = threading.Thread(target=shopper.run, daemon=True)
    thread.start()

    duration = orders / rate
    # Every service is killed once per round; the gateway stays down longer than the
    # forward retry budget of the tests, so some charges and refunds are dead-lettered.
    faults = [*(f"kill:{s}" for s in SERVICES), "postgres", "kafka"] * rounds
    faults.append("poison")
    rng.shuffle(faults)
    times = sorted(rng.uniform(0.5, duration * 0.9) for _ in faults)
    # Gateway outages at fixed points, so that charges are certainly flowing through them.
    schedule = sorted(
        [
            *zip(times, faults, strict=True),
            *((duration * (r + 0.3) / rounds, "gateway") for r in range(rounds)),
        ]
    )
    retries_before = _gateway_retries(services)
    for at, fault in schedule:
        time.sleep(max(0.0, started + at - time.monotonic()))
        report.timeline.append(f"{time.monotonic() - started:6.1f}s {fault}")
        if fault.startswith("kill:"):
            victim = fault.removeprefix("kill:")
            services[victim].kill()
            report.kills[victim] += 1
            time.sleep(rng.uniform(0.2, 1.5))
            services[victim].start(until="started")  # Kafka may be down right now
        elif fault in ("postgres", "kafka"):
            crash_and_restart(settings, fault)
            report.infra_restarts[fault] += 1
        elif fault == "gateway":
            with connect(settings, "payment") as conn:
                set_fault(conn, "down", for_s=8)
            report.gateway_outages += 1
        else:
            bad = [
                (b"not json", "orders.events"),
                (b'{"event_type": "Nope", "schema_version": 1}', "payments.events"),
            ]
            produce_raw(
                settings.kafka_bootstrap_servers,
                [(topic, str(uuid.uuid4()).encode(), value, []) for value, topic in bad],
            )
            report.poison += len(bad)
    thread.join(timeout=duration + 300)
    report.gateway_failures = _gateway_retries(services) - retries_before
    assert shopper.error is None, f"placing orders failed: {shopper.error!r}"
    assert len(shopper.placed) == orders

    with connect(settings, "payment") as conn:
        clear_fault(conn)
    # Quiet: every order either ends or waits on a dead letter; then redrive those.
    for _ in range(5):
        wait_for(
            "every order to end or wait on a dead letter",
            lambda: len(_unsettled(settings, shopper.placed)) <= _dead_entries(settings),
            timeout=180,
            interval=0.5,
        )
        dead = _dead_entries(settings)
        if not _unsettled(settings, shopper.placed):
            break
        report.dead_lettered += dead
        out = _saga("dlq", "redrive", "--all")
        assert out.returncode == 0, out.stderr
        report.redriven += dead
        wait_for(
            "redriven entries to be retried",
            lambda d=dead: _dead_entries(settings) < d,
            timeout=120,
            interval=0.5,
        )
    wait_for(
        "every order to end",
        lambda: not _unsettled(settings, shopper.placed),
        timeout=180,
        interval=0.5,
    )

    with connect(settings, "order") as conn:
        rows = conn.execute(
            "SELECT status, cancel_reason FROM orders WHERE order_id = ANY(%s)", (shopper.placed,)
        ).fetchall()
    report.statuses = Counter(f"{s}({r})" if r else s for s, r in rows)
    assert sum(report.statuses.values()) == orders  # every placed order accounted for, once
    audit = wait_for("a clean audit", lambda: _clean_audit(report), timeout=120, interval=1.0)
    report.seconds = round(time.monotonic() - started, 1)
    assert audit["violations"] == [] and audit["stuck"] == []
    return report


def _clean_audit(report: Report) -> dict[str, Any] | None:
    out = _saga("audit", "--json", "--older-than", "0s")
    audit = json.loads(out.stdout)
    report.violations, report.stuck = len(audit["violations"]), len(audit["stuck"])
    return audit if out.returncode == 0 and not audit["stuck"] else None


def _save(settings: Settings, name: str, report: Report) -> None:
    text = json.dumps(report.as_dict(), indent=2)
    print(f"\nchaos report ({name}):\n{text}")
    Path(settings.stack_dir, f"chaos-{name}.json").write_text(text)


def test_chaos_ci_sized(settings: Settings, running: Services) -> None:
    report = run_chaos(
        settings,
        running,
        orders=int(os.environ.get("CHAOS_ORDERS", "240")),
        rate=15,
        rounds=1,
        seed=int(os.environ.get("CHAOS_SEED", "7")),
    )
    _save(settings, "ci", report)
    assert report.kills == Counter(dict.fromkeys(SERVICES, 1))
    assert report.infra_restarts == Counter({"postgres": 1, "kafka": 1})


@pytest.mark.soak
def test_chaos_long(settings: Settings, running: Services) -> None:
    report = run_chaos(
        settings,
        running,
        orders=int(os.environ.get("CHAOS_ORDERS", "1500")),
        rate=20,
        rounds=4,
        seed=int(os.environ.get("CHAOS_SEED", "11")),
    )
    _save(settings, "long", report)
