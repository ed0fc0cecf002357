"""The workload of the chaos and scale-out tests: a shopper placing orders of every path,
and what tells when the system has settled."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from eventing.settings import SERVICES, Settings
from order_svc.placement import CheckoutRequest, place_order
from tests.e2e.harness import Services, connect

__all__ = [
    "Report",
    "Shopper",
    "clean_audit",
    "dead_entries",
    "gateway_retries",
    "saga",
    "unsettled",
]


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


def saga(*args: str) -> subprocess.CompletedProcess[str]:
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


def gateway_retries(services: Services) -> int:
    """Handler failures because the gateway was down, as logged by payment."""
    return services["payment"].log_text().count("payment gateway unavailable")


def unsettled(settings: Settings, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    with connect(settings, "order") as conn:
        rows = conn.execute(
            "SELECT order_id FROM orders_all WHERE order_id = ANY(%s) AND status IN "
            "('COMPLETED', 'CANCELLED')",
            (ids,),
        ).fetchall()
    return sorted(set(ids) - {r[0] for r in rows})


def dead_entries(settings: Settings) -> int:
    total = 0
    for service in SERVICES:
        with connect(settings, service) as conn:
            row = conn.execute(
                "SELECT count(*) FROM parked WHERE state = 'dead' AND blocks"
            ).fetchone()
            total += row[0] if row else 0
    return total


def clean_audit(report: Report) -> dict[str, Any] | None:
    out = saga("audit", "--json", "--older-than", "0s")
    audit = json.loads(out.stdout)
    report.violations, report.stuck = len(audit["violations"]), len(audit["stuck"])
    return audit if out.returncode == 0 and not audit["stuck"] else None
