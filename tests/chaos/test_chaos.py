"""Chaos: orders of every path flow while services, PostgreSQL, Kafka and the payment
gateway fail; once quiet, the audit finds nothing wrong and every order is accounted for.

The CI-sized run is marked `chaos`; the long one is also marked `soak` (`make chaos`).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from eventing.settings import SERVICES, Settings
from payment_svc.gateway import clear_fault, set_fault
from tests.chaos.infra import crash_and_restart
from tests.chaos.workload import (
    Report,
    Shopper,
    clean_audit,
    dead_entries,
    gateway_retries,
    saga,
    unsettled,
)
from tests.e2e.harness import Services, connect, new_sku, wait_for
from tests.e2e.kafka_tools import produce_raw

pytestmark = pytest.mark.chaos


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
    retries_before = gateway_retries(services)
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
    report.gateway_failures = gateway_retries(services) - retries_before
    assert shopper.error is None, f"placing orders failed: {shopper.error!r}"
    assert len(shopper.placed) == orders

    with connect(settings, "payment") as conn:
        clear_fault(conn)
    # Quiet: every order either ends or waits on a dead letter; then redrive those.
    for _ in range(5):
        wait_for(
            "every order to end or wait on a dead letter",
            lambda: len(unsettled(settings, shopper.placed)) <= dead_entries(settings),
            timeout=180,
            interval=0.5,
        )
        dead = dead_entries(settings)
        if not unsettled(settings, shopper.placed):
            break
        report.dead_lettered += dead
        out = saga("dlq", "redrive", "--all")
        assert out.returncode == 0, out.stderr
        report.redriven += dead
        wait_for(
            "redriven entries to be retried",
            lambda d=dead: dead_entries(settings) < d,
            timeout=120,
            interval=0.5,
        )
    wait_for(
        "every order to end",
        lambda: not unsettled(settings, shopper.placed),
        timeout=180,
        interval=0.5,
    )

    with connect(settings, "order") as conn:
        rows = conn.execute(
            "SELECT status, cancel_reason FROM orders_all WHERE order_id = ANY(%s)",
            (shopper.placed,),
        ).fetchall()
    report.statuses = Counter(f"{s}({r})" if r else s for s, r in rows)
    assert sum(report.statuses.values()) == orders  # every placed order accounted for, once
    audit = wait_for("a clean audit", lambda: clean_audit(report), timeout=120, interval=1.0)
    report.seconds = round(time.monotonic() - started, 1)
    assert audit["violations"] == [] and audit["stuck"] == []
    return report


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
