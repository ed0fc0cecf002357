"""A checkout can start from an OrderPlaced that another system publishes to Kafka."""

from __future__ import annotations

import uuid

import pytest

from eventing.settings import Settings
from shared_events.codec import encode
from shared_events.common import Address, LineItem
from shared_events.order import OrderPlaced, OrderPlacedPayload
from tests.e2e.harness import Services, connect, event_types, new_sku, wait_for, wait_terminal
from tests.e2e.kafka_tools import produce_raw

pytestmark = pytest.mark.e2e


def test_order_placed_published_elsewhere_runs_the_saga(
    settings: Settings, services: Services
) -> None:
    sku = new_sku(settings, qty=3, price_minor=1500)
    order_id = uuid.uuid4()
    event = OrderPlaced.create(
        order_id=order_id,
        producer="storefront",
        payload=OrderPlacedPayload(
            customer_id="ext-42",
            items=(LineItem(sku=sku, qty=2, unit_price_minor=1500),),
            total_minor=3000,
            card_token="tok_ok",
            ship_to=Address(country="CA"),
        ),
    )
    rec = encode(event)
    produce_raw(
        settings.kafka_bootstrap_servers, [("orders.events", rec.key, rec.value, rec.headers)]
    )

    def known() -> bool:
        with connect(settings, "order") as conn:
            return (
                conn.execute("SELECT 1 FROM orders WHERE order_id = %s", (order_id,)).fetchone()
                is not None
            )

    wait_for("the order service to create the saga record", known)
    t = wait_terminal(settings, order_id)
    assert t["status"] == "COMPLETED"
    assert event_types(t) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentCharged",
        "ShipmentScheduled",
    ]
    assert t["events"][0]["producer"] == "storefront"
    assert t["customer_id"] == "ext-42" and t["total_minor"] == 3000
    with connect(settings, "order") as conn:
        origin = conn.execute(
            "SELECT origin FROM orders WHERE order_id = %s", (order_id,)
        ).fetchone()
    assert origin == ("event",)
