"""Every path of the checkout, in one process: the real handlers and SQL, the in-memory bus.

Each test runs in well under a second; `tests/e2e/test_paths.py` keeps one path over Kafka
and real processes.
"""

from __future__ import annotations

from typing import Any

import pytest

from eventing.testing import SagaHarness

pytestmark = pytest.mark.integration

HAPPY = ["OrderPlaced", "InventoryReserved", "PaymentCharged", "ShipmentScheduled"]


def types(t: dict[str, Any]) -> list[str]:
    return [e["event_type"] for e in t["events"]]


def ledger(h: SagaHarness, order_id: object) -> list[tuple[str, str, int]]:
    return [
        (r[0], r[1], r[2])
        for r in h.rows(
            "payment",
            "SELECT kind, outcome, amount_minor FROM gateway_ledger WHERE order_id = %s"
            " ORDER BY id",
            order_id,
        )
    ]


def reservation(h: SagaHarness, order_id: object) -> tuple[str, str | None]:
    [(status, reason)] = h.rows(
        "inventory",
        "SELECT status, release_reason FROM reservations WHERE order_id = %s",
        order_id,
    )
    return status, reason


def test_success_completes_and_commits_stock(h: SagaHarness) -> None:
    h.set_stock("A-1", 10, price_minor=1250)
    order_id = h.place({"A-1": 3})
    h.settle()
    t = h.trace(order_id)
    assert (t["status"], t["cancel_reason"]) == ("COMPLETED", None)
    assert types(t) == HAPPY
    assert [e["producer"] for e in t["events"]] == ["order", "inventory", "payment", "fulfillment"]
    assert t["events"][2]["payload"]["amount_minor"] == 3750
    assert h.stock_of("A-1") == {"on_hand": 7, "reserved": 0, "shipped": 3}
    assert ledger(h, order_id) == [("charge", "approved", 3750)]
    ids = [e["event_id"] for e in t["events"]]
    assert [e["causation_id"] for e in t["events"]] == [None, *ids[:-1]]
    assert h.audit().violations == []


def test_out_of_stock_cancels_without_charge_and_holds_nothing(h: SagaHarness) -> None:
    h.set_stock("SCARCE", 1)
    h.set_stock("PLENTY", 5)
    order_id = h.place({"PLENTY": 1, "SCARCE": 2})
    h.settle()
    t = h.trace(order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "out_of_stock")
    assert types(t) == ["OrderPlaced", "InventoryRejected"]
    assert t["events"][1]["payload"]["skus"] == ["SCARCE"]
    # all or nothing: the line that was in stock was not held either
    assert h.stock_of("PLENTY") == {"on_hand": 5, "reserved": 0, "shipped": 0}
    assert ledger(h, order_id) == []
    assert h.audit().violations == []


def test_declined_card_releases_stock(h: SagaHarness) -> None:
    h.set_stock("A-1", 4)
    order_id = h.place({"A-1": 2}, card="tok_declined")
    h.settle()
    t = h.trace(order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "payment_declined")
    assert types(t) == ["OrderPlaced", "InventoryReserved", "PaymentFailed", "InventoryReleased"]
    assert t["events"][3]["payload"]["reason"] == "payment_failed"
    assert t["events"][3]["compensation"] is True
    assert h.stock_of("A-1") == {"on_hand": 4, "reserved": 0, "shipped": 0}
    assert ledger(h, order_id) == [("charge", "declined", 2000)]
    assert h.audit().violations == []


def test_unserviceable_destination_refunds_and_releases(h: SagaHarness) -> None:
    h.set_stock("A-1", 4, price_minor=999)
    order_id = h.place({"A-1": 1}, country="ZZ")
    h.settle()
    t = h.trace(order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "fulfillment_failed")
    assert types(t)[:4] == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentCharged",
        "FulfillmentFailed",
    ]
    # the two compensations run in parallel, in either order
    assert sorted(types(t)[4:]) == ["InventoryReleased", "PaymentRefunded"]
    refund = next(e for e in t["events"] if e["event_type"] == "PaymentRefunded")
    assert refund["payload"]["amount_minor"] == 999
    assert [e["event_type"] for e in t["compensations"]] == types(t)[4:]
    assert h.stock_of("A-1") == {"on_hand": 4, "reserved": 0, "shipped": 0}
    assert sorted(ledger(h, order_id)) == [("charge", "approved", 999), ("refund", "approved", 999)]
    assert h.audit().violations == []


def test_status_is_the_same_whichever_topic_the_order_service_reads_first(
    h: SagaHarness,
) -> None:
    h.set_stock("A-1", 4)
    order_id = h.place({"A-1": 1})
    # Everyone but the order service runs the saga to its end; the order service then gets
    # the three topics' events in one batch, the shipment before the charge.
    for _ in range(6):
        h.relay()
        for name in ("inventory", "payment", "fulfillment"):
            while h.deliver(name):
                pass
    assert h.trace(order_id)["status"] == "PENDING"
    assert h.backlog("order") == 4  # its own OrderPlaced (ignored) and the others' three
    h.settle()
    assert h.trace(order_id)["status"] == "COMPLETED"
    assert h.audit().violations == []


# --- soft reservations lapse -----------------------------------------------------------------


def test_charge_in_flight_when_the_reservation_lapses_is_honoured(h: SagaHarness) -> None:
    h.set_stock("A-1", 2, price_minor=500)
    order_id = h.place({"A-1": 1})
    h.relay()
    h.deliver("inventory")  # reserved until now + TTL
    h.relay()
    h.deliver("payment")  # charged before the deadline, not yet seen by inventory
    h.advance(h.settings.reservation_ttl_s + 1)
    assert h.run_timers("inventory") == 1  # the reaper lapses it: stock still held
    assert reservation(h, order_id) == ("expiring", "expired")
    assert h.stock_of("A-1")["reserved"] == 1
    h.settle()
    t = h.trace(order_id)
    assert t["status"] == "COMPLETED"
    lapse = next(e for e in t["events"] if e["event_type"] == "InventoryReleased")
    assert lapse["payload"]["reason"] == "expired"
    assert [k for k, _, _ in ledger(h, order_id)] == ["charge"]
    assert h.stock_of("A-1") == {"on_hand": 1, "reserved": 0, "shipped": 1}
    assert reservation(h, order_id) == ("committed", "expired")
    assert h.audit().violations == []


def test_payment_silent_past_the_deadline_frees_the_stock(h: SagaHarness) -> None:
    h.set_stock("A-1", 2)
    order_id = h.place({"A-1": 2})
    h.relay()
    h.deliver("inventory")
    h.advance(h.settings.reservation_ttl_s + 1)  # payment has not read a thing meanwhile
    h.run_timers("inventory")
    assert reservation(h, order_id) == ("expiring", "expired")
    assert h.stock_of("A-1")["reserved"] == 2  # a charge could be in flight
    h.settle()
    t = h.trace(order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "reservation_expired")
    assert types(t) == ["OrderPlaced", "InventoryReserved", "InventoryReleased", "PaymentFailed"]
    assert t["events"][3]["payload"]["reason"] == "reservation_expired"
    assert ledger(h, order_id) == []  # too late: payment never called the gateway
    assert h.stock_of("A-1") == {"on_hand": 2, "reserved": 0, "shipped": 0}
    assert reservation(h, order_id) == ("expired", "expired")
    assert h.audit().violations == []


# --- the gateway down -------------------------------------------------------------------------


def test_charges_retry_through_an_outage_and_succeed_once_after(h: SagaHarness) -> None:
    h.set_stock("A-1", 5, price_minor=2500)
    h.gateway("down")
    order_id = h.place({"A-1": 2})
    h.settle(retries=False)
    for _ in range(2):
        h.retry("payment")
    [parked] = h.rows("payment", "SELECT state, attempts, last_error FROM parked")
    assert parked[0] == "retrying" and parked[1] == 3 and "GatewayUnavailable" in parked[2]
    assert h.trace(order_id)["status"] == "PENDING"
    h.gateway("up")
    h.settle()
    assert h.trace(order_id)["status"] == "COMPLETED"
    assert ledger(h, order_id) == [("charge", "approved", 5000)]


def test_gateway_down_past_the_budget_waits_on_a_dead_letter_until_redriven(
    h: SagaHarness,
) -> None:
    h.set_stock("A-1", 5, price_minor=2500)
    h.gateway("down")
    order_id = h.place({"A-1": 2})
    h.settle()  # every retry runs and fails: the charge is dead-lettered
    [dead] = h.dead_letters()
    assert (dead["service"], dead["event_type"], dead["error_kind"]) == (
        "payment",
        "InventoryReserved",
        "transient",
    )
    assert dead["attempts"] == h.forward.max_attempts
    t = h.trace(order_id)
    assert t["status"] == "PENDING"
    assert [b["dlq_id"] for b in t["blocked_on"]] == [f"payment:{dead['seq']}"]
    report = h.audit()  # waiting on a named dead letter is not a violation
    assert report.violations == []
    [stuck] = report.stuck
    assert f"payment:{dead['seq']}" in stuck.verdict

    h.gateway("up")
    assert len(h.redrive()) == 1
    h.settle()
    assert h.trace(order_id)["status"] == "COMPLETED"
    assert ledger(h, order_id) == [("charge", "approved", 5000)]
    assert h.dead_letters() == [] and h.audit().violations == []
