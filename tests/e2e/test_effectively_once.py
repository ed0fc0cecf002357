"""A real SIGKILL at the runtime's crash points changes nothing: every effect happens once.

Every crash point, replays of whole sagas and relays that re-send are covered in one process
by tests/sim/test_effectively_once.py (the harness); these keep what only real processes
show: a process killed between its handlers and its commit, or between its commit and the
Kafka offsets, and the consumer group that hands its partitions on.
"""

from __future__ import annotations

import signal
import uuid
from typing import Any

import pytest

from eventing.settings import Settings
from tests.e2e.harness import (
    Services,
    connect,
    event_types,
    new_sku,
    place,
    stock_of,
    wait_for,
    wait_terminal,
)

pytestmark = pytest.mark.e2e


def effects(settings: Settings, order_id: uuid.UUID, sku: str) -> dict[str, Any]:
    """Everything the saga of `order_id` changed, across the four databases."""
    snap: dict[str, Any] = {"stock": stock_of(settings, sku)}
    queries = {
        "order": [
            "SELECT status, cancel_reason FROM orders WHERE order_id = %(o)s",
            "SELECT count(*) FROM saga_steps WHERE order_id = %(o)s",
        ],
        "inventory": ["SELECT status FROM reservations WHERE order_id = %(o)s"],
        "payment": [
            "SELECT kind, outcome, amount_minor FROM gateway_ledger WHERE order_id = %(o)s"
            " ORDER BY id",
            "SELECT status FROM payments WHERE order_id = %(o)s",
            "SELECT count(*) FROM refunds WHERE order_id = %(o)s",
        ],
        "fulfillment": ["SELECT status, count(*) OVER () FROM shipments WHERE order_id = %(o)s"],
    }
    for service, sqls in queries.items():
        with connect(settings, service) as conn:
            for i, sql in enumerate(sqls):
                snap[f"{service}.{i}"] = conn.execute(sql, {"o": order_id}).fetchall()
            snap[f"{service}.outbox"] = conn.execute(
                "SELECT count(*) FROM outbox WHERE order_id = %(o)s", {"o": order_id}
            ).fetchall()
    return snap


@pytest.mark.parametrize(
    ("service", "point", "event_type"),
    [
        ("payment", "before_commit", "InventoryReserved"),  # after the gateway charged
        ("inventory", "after_commit", "ShipmentScheduled"),  # committed, offset not stored
        ("order", "before_commit", "ShipmentScheduled"),
        # The relay published, Kafka acknowledged, the rows were not marked sent: the next
        # relay sends them again, and the consumers' inboxes drop the copies.
        ("payment", "after_produce", "PaymentCharged"),
    ],
)
def test_sigkill_between_consume_and_commit(
    settings: Settings, running: Services, service: str, point: str, event_type: str
) -> None:
    victim = running[service]
    victim.stop()
    victim.start(extra_env={"SAGA_CRASH_POINT": f"{point}:{event_type}"})
    sku = new_sku(settings, qty=3, price_minor=700)
    order_id = place(settings, items={sku: 1})
    code = victim.wait_exit(timeout=60)
    assert code == -signal.SIGKILL, victim.tail()
    victim.start()

    t = wait_terminal(settings, order_id)
    assert t["status"] == "COMPLETED"
    assert event_types(t) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentCharged",
        "ShipmentScheduled",
    ]
    wait_for("stock committed", lambda: stock_of(settings, sku)["shipped"] == 1)
    snap = effects(settings, order_id, sku)
    assert snap["stock"] == {"on_hand": 2, "reserved": 0, "shipped": 1}
    assert snap["payment.0"] == [("charge", "approved", 700)]  # charged exactly once
    assert snap["fulfillment.0"] == [("scheduled", 1)]
    assert snap["order.1"] == [(4,)]
