"""Every path of the checkout reaches its terminal state with the right events."""

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


def test_success_completes_and_commits_stock(settings: Settings, services: Services) -> None:
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
    # inventory consumes ShipmentScheduled after the order service may have: wait for it
    wait_for("stock committed", lambda: stock_of(settings, sku)["shipped"] == 3)
    assert stock_of(settings, sku) == {"on_hand": 7, "reserved": 0, "shipped": 3}


def test_out_of_stock_cancels_without_charge(settings: Settings, services: Services) -> None:
    sku = new_sku(settings, qty=1)
    other = new_sku(settings, qty=5)
    order_id = place(settings, items={other: 1, sku: 2})
    t = wait_terminal(settings, order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "out_of_stock")
    assert event_types(t) == ["OrderPlaced", "InventoryRejected"]
    assert t["events"][1]["payload"]["skus"] == [sku]
    # all or nothing: the line that was in stock was not held either
    assert stock_of(settings, other) == {"on_hand": 5, "reserved": 0, "shipped": 0}


def test_declined_card_releases_stock(settings: Settings, services: Services) -> None:
    sku = new_sku(settings, qty=4)
    order_id = place(settings, items={sku: 2}, card="tok_declined")
    t = wait_terminal(settings, order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "payment_declined")
    assert event_types(t) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentFailed",
        "InventoryReleased",
    ]
    assert t["events"][3]["payload"]["reason"] == "payment_failed"
    assert t["events"][3]["compensation"] is True
    assert stock_of(settings, sku) == {"on_hand": 4, "reserved": 0, "shipped": 0}


def test_unserviceable_destination_refunds_and_releases(
    settings: Settings, services: Services
) -> None:
    sku = new_sku(settings, qty=4, price_minor=999)
    order_id = place(settings, items={sku: 1}, country="ZZ")
    t = wait_terminal(settings, order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "fulfillment_failed")
    types = event_types(t)
    assert types[:4] == ["OrderPlaced", "InventoryReserved", "PaymentCharged", "FulfillmentFailed"]
    # the two compensations run in parallel, in either order
    assert sorted(types[4:]) == ["InventoryReleased", "PaymentRefunded"]
    refund = next(e for e in t["events"] if e["event_type"] == "PaymentRefunded")
    assert refund["payload"]["amount_minor"] == 999
    assert [e["event_type"] for e in t["compensations"]] == types[4:]
    assert stock_of(settings, sku) == {"on_hand": 4, "reserved": 0, "shipped": 0}


def test_events_are_causally_linked(settings: Settings, services: Services) -> None:
    sku = new_sku(settings, qty=2)
    order_id = place(settings, items={sku: 1})
    t = wait_terminal(settings, order_id)
    ids = [e["event_id"] for e in t["events"]]
    causes = [e["causation_id"] for e in t["events"]]
    assert causes == [None, *ids[:-1]]
