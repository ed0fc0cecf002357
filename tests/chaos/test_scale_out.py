"""Scale-out: two instances of every service in one consumer group each, one instance of each
SIGKILLed at random moments and restarted, while orders of every path flow. Afterwards every
order is terminal, the audit finds nothing, and what went over Kafka matches the saga records
(nothing missing, causes before effects on every topic; repeats from a relay that took over
are counted and must be harmless).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventing.settings import SERVICES, Settings
from saga_cli.bench import body
from saga_cli.bench_client import Connection
from tests.chaos.published import check_published, read_published
from tests.chaos.workload import Report, Shopper, clean_audit, saga, unsettled
from tests.e2e.harness import Services, connect, new_sku, wait_for

pytestmark = pytest.mark.chaos


@pytest.fixture
def fleet(services: Services, settings: Settings, tmp_path: Path) -> Iterator[Services]:
    """Two instances of each service in place of the session's one each (restored after)."""
    services.stop_all()
    two = Services(settings, tmp_path, instances=2)
    try:
        two.start_all()
        yield two
    finally:
        two.stop_all()
        services.start_all()


def _saga_records(settings: Settings, orders: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    with connect(settings, "order") as conn:
        rows = conn.execute(
            "SELECT order_id, event_id FROM saga_steps WHERE order_id = ANY(%s)", (orders,)
        ).fetchall()
    records: dict[uuid.UUID, list[uuid.UUID]] = {o: [] for o in orders}
    for order_id, event_id in rows:
        records[order_id].append(event_id)
    return records


def _same_key_twice(port: int, sku: str, n: int) -> list[tuple[str, str]]:
    """Each checkout sent twice, on two connections (the kernel may hand them to different
    instances): the pair of order ids per key."""

    async def run() -> list[tuple[str, str]]:
        pairs = []
        for _ in range(n):
            key = f"scale-{uuid.uuid4()}"
            conns = [Connection("127.0.0.1", port) for _ in range(2)]
            replies = await asyncio.gather(
                *(c.request("POST", "/orders", body("scale", sku), {"Idempotency-Key": key})
                  for c in conns)
            )  # fmt: skip
            for c in conns:
                c.close()
            assert [r.status for r in replies] == [202, 202], [r.body for r in replies]
            pairs.append((replies[0].json()["order_id"], replies[1].json()["order_id"]))
        return pairs

    return asyncio.run(run())


def test_two_instances_of_every_service_survive_instance_kills(
    settings: Settings, fleet: Services
) -> None:
    seed = int(os.environ.get("SCALE_SEED", "3"))
    orders = int(os.environ.get("SCALE_ORDERS", "160"))
    rate = 10.0
    rng = random.Random(seed)
    report = Report(orders=orders)
    skus = {"plenty": new_sku(settings, qty=orders * 3), "scarce": new_sku(settings, qty=15)}
    shopper = Shopper(settings, skus, orders, rate, rng, report)
    started = time.monotonic()
    thread = threading.Thread(target=shopper.run, daemon=True)
    thread.start()

    # Two rounds: in each, one instance of every service dies at a random moment.
    duration = orders / rate
    faults = [(rng.uniform(1.0, duration * 0.85), name) for name in SERVICES for _ in range(2)]
    for at, name in sorted(faults):
        time.sleep(max(0.0, started + at - time.monotonic()))
        victim = rng.choice(fleet.fleet[name])
        report.timeline.append(f"{time.monotonic() - started:6.1f}s kill {victim.label}")
        victim.kill()
        report.kills[victim.label] += 1
        time.sleep(rng.uniform(0.2, 2.0))
        victim.start(until="started")

    # The checkout API of two order instances on one port: a key gives one order.
    pairs = _same_key_twice(fleet.http_port, skus["plenty"], 20)
    assert all(a == b for a, b in pairs), pairs
    api_orders = [uuid.UUID(a) for a, _ in pairs]

    thread.join(timeout=duration + 120)
    assert shopper.error is None, f"placing orders failed: {shopper.error!r}"
    placed = shopper.placed + api_orders
    wait_for(
        "every order to end",
        lambda: not unsettled(settings, placed),
        timeout=240,
        interval=0.5,
    )
    with connect(settings, "order") as conn:
        rows = conn.execute(
            "SELECT status, cancel_reason FROM orders_all WHERE order_id = ANY(%s)", (placed,)
        ).fetchall()
    report.statuses = Counter(f"{s}({r})" if r else s for s, r in rows)
    assert sum(report.statuses.values()) == len(placed)
    audit = wait_for("a clean audit", lambda: clean_audit(report), timeout=120, interval=1.0)
    assert audit["violations"] == [] and audit["stuck"] == []

    published = read_published(settings.kafka_bootstrap_servers, set(placed))
    check = check_published(published, _saga_records(settings, placed))
    report.seconds = round(time.monotonic() - started, 1)
    result: dict[str, Any] = {**report.as_dict(), "kafka": check.as_dict()}
    text = json.dumps(result, indent=2)
    print(f"\nscale-out report:\n{text}")
    # On containers (SAGA_TEST_INFRA=containers) no local stack made the directory.
    Path(settings.stack_dir).mkdir(parents=True, exist_ok=True)
    Path(settings.stack_dir, "scale-out-instances.json").write_text(text)
    assert check.missing == []
    assert check.out_of_order == []
    assert check.events >= len(placed) * 3
    assert sum(report.kills.values()) == 2 * len(SERVICES)
    out = saga("dlq", "list", "--json")
    assert out.returncode == 0, out.stderr
