"""Soft reservations lapse; whatever the interleaving with a charge, the end is consistent.

Either the charge was made before the deadline and is honoured (stock was still held), or
payment answers 'not charged' and the stock returns: never charged without goods, never
goods held for an order that will not pay.
"""

from __future__ import annotations

import pytest

from eventing.settings import Settings
from payment_svc.gateway import clear_fault, set_fault
from tests.e2e.harness import (
    Services,
    connect,
    event_types,
    new_sku,
    place,
    reconfigured,
    stock_of,
    wait_for,
    wait_terminal,
)

pytestmark = pytest.mark.e2e

SHORT_TTL = {"SAGA_RESERVATION_TTL_S": "1", "SAGA_REAPER_INTERVAL_S": "0.1"}


def charges(settings: Settings, order_id: object) -> list[tuple[str, str]]:
    with connect(settings, "payment") as conn:
        return conn.execute(
            "SELECT kind, outcome FROM gateway_ledger WHERE order_id = %s", (order_id,)
        ).fetchall()


def reservation(settings: Settings, order_id: object) -> tuple[str, str | None] | None:
    with connect(settings, "inventory") as conn:
        row = conn.execute(
            "SELECT status, release_reason FROM reservations WHERE order_id = %s", (order_id,)
        ).fetchone()
    return None if row is None else (row[0], row[1])


def test_charge_in_flight_when_the_reservation_lapses_is_honoured(
    settings: Settings, running: Services
) -> None:
    sku = new_sku(settings, qty=2, price_minor=500)
    with connect(settings, "payment") as conn:
        # The charge is decided before the deadline, then the gateway takes 3 s to answer:
        # the reaper lapses the reservation while the charge is in flight.
        set_fault(conn, "slow", for_s=30, latency_ms=3000)
    try:
        with reconfigured(running, "inventory", SHORT_TTL):
            order_id = place(settings, items={sku: 1})
            t = wait_terminal(settings, order_id, timeout=60)
    finally:
        with connect(settings, "payment") as conn:
            clear_fault(conn)

    assert t["status"] == "COMPLETED"
    types = event_types(t)
    assert "InventoryReleased" in types, "the reservation did not lapse: the race was not forced"
    lapse = next(e for e in t["events"] if e["event_type"] == "InventoryReleased")
    assert lapse["payload"]["reason"] == "expired"
    assert charges(settings, order_id) == [("charge", "approved")]
    wait_for("stock committed", lambda: stock_of(settings, sku)["shipped"] == 1)
    assert stock_of(settings, sku) == {"on_hand": 1, "reserved": 0, "shipped": 1}
    assert reservation(settings, order_id) == ("committed", "expired")


def test_payment_down_past_the_deadline_frees_the_stock(
    settings: Settings, running: Services
) -> None:
    sku = new_sku(settings, qty=2)
    with reconfigured(running, "inventory", SHORT_TTL):
        running["payment"].stop()
        try:
            order_id = place(settings, items={sku: 2})
            wait_for(
                "the reservation to lapse",
                lambda: reservation(settings, order_id) == ("expiring", "expired"),
                timeout=30,
            )
            # stock stays held while payment has not answered: a charge could be in flight
            assert stock_of(settings, sku)["reserved"] == 2
        finally:
            running["payment"].start()
        t = wait_terminal(settings, order_id)

    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "reservation_expired")
    assert event_types(t) == [
        "OrderPlaced",
        "InventoryReserved",
        "InventoryReleased",
        "PaymentFailed",
    ]
    assert t["events"][3]["payload"]["reason"] == "reservation_expired"
    assert charges(settings, order_id) == []
    wait_for("stock freed", lambda: stock_of(settings, sku)["reserved"] == 0)
    assert stock_of(settings, sku) == {"on_hand": 2, "reserved": 0, "shipped": 0}
    assert reservation(settings, order_id) == ("expired", "expired")
