"""One path of the checkout over Kafka and the four services as real processes.

Every path, and every interleaving of them, runs in one process in tests/sim/ (the harness:
the same handlers and SQL, an in-memory bus); this keeps the one thing only the real system
shows: the events go through Kafka, between processes, end to end.
"""

from __future__ import annotations

import pytest

from eventing.settings import Settings
from tests.e2e.harness import (
    Services,
    event_types,
    new_sku,
    place,
    stock_of,
    wait_for,
    wait_terminal,
)

pytestmark = pytest.mark.e2e


def test_success_completes_over_kafka_and_commits_stock(
    settings: Settings, services: Services
) -> None:
    sku = new_sku(settings, qty=10, price_minor=1250)
    order_id = place(settings, items={sku: 3})
    t = wait_terminal(settings, order_id)
    assert (t["status"], t["cancel_reason"]) == ("COMPLETED", None)
    assert event_types(t) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentCharged",
        "ShipmentScheduled",
    ]
    assert [e["producer"] for e in t["events"]] == ["order", "inventory", "payment", "fulfillment"]
    assert t["events"][2]["payload"]["amount_minor"] == 3750
    ids = [e["event_id"] for e in t["events"]]
    assert [e["causation_id"] for e in t["events"]] == [None, *ids[:-1]]
    # inventory consumes ShipmentScheduled after the order service may have: wait for it
    wait_for("stock committed", lambda: stock_of(settings, sku)["shipped"] == 3)
    assert stock_of(settings, sku) == {"on_hand": 7, "reserved": 0, "shipped": 3}
