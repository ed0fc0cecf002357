"""Duplicates and crashes change nothing, in one process: every crash point of the runtime,
replays of whole sagas, relays that re-send. `tests/e2e/test_effectively_once.py` keeps the
same crash points as real SIGKILLs of real processes over Kafka."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from eventing.testing import Crash, SagaHarness

pytestmark = pytest.mark.integration

HAPPY = ["OrderPlaced", "InventoryReserved", "PaymentCharged", "ShipmentScheduled"]


def effects(h: SagaHarness, order_id: uuid.UUID, sku: str) -> dict[str, Any]:
    """Everything the saga of `order_id` changed, across the four databases."""
    queries = {
        "order": [
            "SELECT status, cancel_reason FROM orders WHERE order_id = %s",
            "SELECT count(*) FROM saga_steps WHERE order_id = %s",
        ],
        "inventory": ["SELECT status, release_reason FROM reservations WHERE order_id = %s"],
        "payment": [
            "SELECT kind, outcome, amount_minor FROM gateway_ledger WHERE order_id = %s"
            " ORDER BY id",
            "SELECT status FROM payments WHERE order_id = %s",
            "SELECT count(*) FROM refunds WHERE order_id = %s",
        ],
        "fulfillment": ["SELECT status FROM shipments WHERE order_id = %s"],
    }
    snap: dict[str, Any] = {"stock": h.stock_of(sku)}
    for service, sqls in queries.items():
        for i, sql in enumerate(sqls):
            snap[f"{service}.{i}"] = h.rows(service, sql, order_id)
        snap[f"{service}.outbox"] = h.rows(
            service, "SELECT count(*) FROM outbox WHERE order_id = %s", order_id
        )
    return snap


def types(h: SagaHarness, order_id: uuid.UUID) -> list[str]:
    return [e["event_type"] for e in h.trace(order_id)["events"]]


@pytest.mark.parametrize("inbox", [True, False], ids=["inbox", "past-the-inbox-window"])
@pytest.mark.parametrize(
    ("card", "country"), [("tok_ok", "US"), ("tok_ok", "ZZ"), ("tok_declined", "US")]
)
def test_replaying_a_finished_saga_changes_nothing(
    h: SagaHarness, card: str, country: str, inbox: bool
) -> None:
    h.reset(inbox=inbox)
    h.set_stock("A-1", 5)
    order_id = h.place({"A-1": 2}, card=card, country=country)
    h.settle()
    before = effects(h, order_id, "A-1")
    steps = types(h, order_id)
    h.bus.committed.clear()  # every consumer group reads every topic again from the start
    h.settle()
    assert effects(h, order_id, "A-1") == before
    assert types(h, order_id) == steps
    assert h.dead_letters() == [] and h.audit().violations == []


CRASHES = [
    ("payment", Crash.BEFORE_COMMIT, "InventoryReserved"),  # after the gateway charged
    ("payment", Crash.AFTER_COMMIT, "InventoryReserved"),  # committed, offset not stored
    ("inventory", Crash.BEFORE_COMMIT, "OrderPlaced"),
    ("inventory", Crash.AFTER_COMMIT, "ShipmentScheduled"),
    ("fulfillment", Crash.AFTER_COMMIT, "PaymentCharged"),
    ("fulfillment", Crash.BEFORE_COMMIT, "PaymentCharged"),
    ("order", Crash.BEFORE_COMMIT, "ShipmentScheduled"),
    ("order", Crash.AFTER_COMMIT, "InventoryReserved"),
]


def run_until_pending(h: SagaHarness, service: str, event_type: str) -> None:
    """Run everyone but `service` until a batch for it holds `event_type`."""
    for _ in range(20):
        h.relay()
        pending = h.bus.pending(service, sorted({r.topic for r in _all(h)}))
        if any(_type(r) == event_type for recs in pending.values() for r in recs):
            return
        for name in h.names:
            if name != service:
                while h.deliver(name):
                    pass
        while h.deliver(service):
            pass
    raise AssertionError(f"{service} never got a {event_type}")


def _all(h: SagaHarness) -> list[Any]:
    return [r for topic in h.bus.logs for r in h.bus.messages(topic)]


def _type(rec: Any) -> str | None:
    return next((v.decode() for k, v in rec.headers if k == "event_type"), None)


@pytest.mark.parametrize(("service", "crash", "event_type"), CRASHES)
def test_a_crash_at_each_point_changes_nothing(
    h: SagaHarness, service: str, crash: Crash, event_type: str
) -> None:
    h.set_stock("A-1", 3, price_minor=700)
    order_id = h.place({"A-1": 1})
    run_until_pending(h, service, event_type)
    assert h.deliver(service, crash=crash) is None or crash is Crash.AFTER_COMMIT
    h.settle()
    assert types(h, order_id) == HAPPY
    snap = effects(h, order_id, "A-1")
    assert snap["stock"] == {"on_hand": 2, "reserved": 0, "shipped": 1}
    assert snap["payment.0"] == [("charge", "approved", 700)]  # charged exactly once
    assert snap["fulfillment.0"] == [("scheduled",)]
    assert snap["order.1"] == [(4,)]
    assert h.dead_letters() == [] and h.audit().violations == []


def test_a_relay_that_dies_after_producing_publishes_again_and_nothing_doubles(
    h: SagaHarness,
) -> None:
    h.set_stock("A-1", 3)
    order_id = h.place({"A-1": 1})
    h.relay("order", crash_after_produce=True)
    h.relay("order", crash_after_produce=True)
    assert len(h.bus.messages("orders.events")) == 2  # the same row published twice
    h.relay("order", refuse_from=0)  # and a broker that refuses it once
    h.settle()
    assert len(h.bus.messages("orders.events")) == 3
    assert types(h, order_id) == HAPPY
    assert h.audit().violations == []


def test_a_charge_made_before_a_crash_stands_after_the_deadline(h: SagaHarness) -> None:
    # Found by the simulation (seeds 112, 147): payment charged at the gateway, died before
    # its commit, and the reservation lapsed before the redelivery; the redelivery said "too
    # late, not charged" and the order was cancelled with the customer charged.
    h.set_stock("A-1", 2, price_minor=1500)
    order_id = h.place({"A-1": 1})
    run_until_pending(h, "payment", "InventoryReserved")
    h.deliver("payment", crash=Crash.BEFORE_COMMIT)  # the gateway charged; nothing committed
    assert h.rows("payment", "SELECT kind, outcome FROM gateway_ledger") == [("charge", "approved")]
    h.advance(h.settings.reservation_ttl_s + 1)
    h.run_timers("inventory")  # the reservation lapses: stock still held
    h.settle()
    t = h.trace(order_id)
    assert t["status"] == "COMPLETED"
    assert h.rows("payment", "SELECT kind, outcome, amount_minor FROM gateway_ledger") == [
        ("charge", "approved", 1500)
    ]
    assert h.stock_of("A-1") == {"on_hand": 1, "reserved": 0, "shipped": 1}
    assert h.audit().violations == []
