"""The services' pure rules."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from fulfillment_svc.domain import Plan, Unserviceable, plan_shipment
from inventory_svc import domain as inv
from order_svc.domain import Facts, awaiting, derive_status
from payment_svc.domain import decide_charge, refund_needed, void_needed

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_reservation_is_all_or_nothing() -> None:
    levels = {"A": inv.Level(10, 8), "B": inv.Level(5, 0)}
    assert inv.decide_reservation(levels, [("A", 2), ("B", 5)]) == inv.Hold()
    assert inv.decide_reservation(levels, [("A", 3), ("B", 1)]) == inv.Reject(
        "out_of_stock", ("A",)
    )
    assert inv.decide_reservation(levels, [("A", 1), ("Z", 1)]) == inv.Reject("unknown_sku", ("Z",))


def test_lapsed_reservation_honours_a_charge_in_flight() -> None:
    t = inv.on_payment_charged("expiring")
    assert (t.status, t.stock, t.emit_release) == ("paid", "none", None)


def test_lapsed_reservation_frees_stock_when_payment_says_no() -> None:
    t = inv.on_payment_failed("expiring", "reservation_expired")
    assert (t.status, t.stock, t.emit_release) == ("expired", "unhold", None)
    t = inv.on_payment_failed("reserved", "reservation_expired")
    assert (t.status, t.stock, t.emit_release) == ("released", "unhold", "expired")
    t = inv.on_payment_failed("reserved", "declined")
    assert t.emit_release == "payment_failed"


@pytest.mark.parametrize("status", ["reserved", "paid", "expiring"])
def test_shipment_commits_stock_even_if_it_overtakes_the_charge(status: str) -> None:
    assert inv.on_shipment_scheduled(status).stock == "ship"


@pytest.mark.parametrize("status", ["released", "expired", "committed"])
def test_settled_reservations_do_not_move_stock_again(status: str) -> None:
    for t in (
        inv.on_payment_charged(status),
        inv.on_payment_failed(status, "declined"),
        inv.on_fulfillment_failed(status),
        inv.on_shipment_scheduled(status),
    ):
        assert t.stock == "none" and t.emit_release is None


def test_payment_charges_once_and_never_after_the_deadline() -> None:
    later = NOW + timedelta(seconds=1)
    assert decide_charge(None, NOW, later) == "charge"
    assert decide_charge(None, later, later) == "too_late"
    assert decide_charge("charged", NOW, later) == "already_handled"
    assert decide_charge("declined", NOW, later) == "already_handled"
    assert refund_needed("charged") and not refund_needed("refunded")
    assert void_needed(None) and not void_needed("charged")


def test_fulfillment_cannot_serve_zz() -> None:
    assert isinstance(plan_shipment("ZZ", date(2026, 1, 1)), Unserviceable)
    plan = plan_shipment("US", date(2026, 1, 1))
    assert isinstance(plan, Plan) and plan.estimated_delivery == date(2026, 1, 4)


PATHS = {
    ("COMPLETED", None): [
        ("OrderPlaced", None),
        ("InventoryReserved", None),
        ("PaymentCharged", None),
        ("ShipmentScheduled", None),
    ],
    ("CANCELLED", "out_of_stock"): [("OrderPlaced", None), ("InventoryRejected", "out_of_stock")],
    ("CANCELLED", "payment_declined"): [
        ("OrderPlaced", None),
        ("InventoryReserved", None),
        ("PaymentFailed", "declined"),
        ("InventoryReleased", "payment_failed"),
    ],
    ("CANCELLED", "fulfillment_failed"): [
        ("OrderPlaced", None),
        ("InventoryReserved", None),
        ("PaymentCharged", None),
        ("FulfillmentFailed", "unserviceable_destination"),
        ("PaymentRefunded", "fulfillment_failed"),
        ("InventoryReleased", "fulfillment_failed"),
    ],
    ("CANCELLED", "reservation_expired"): [
        ("OrderPlaced", None),
        ("InventoryReserved", None),
        ("InventoryReleased", "expired"),
        ("PaymentFailed", "reservation_expired"),
    ],
    ("COMPLETED", None, "late"): [
        ("OrderPlaced", None),
        ("InventoryReserved", None),
        ("InventoryReleased", "expired"),
        ("PaymentCharged", None),
        ("ShipmentScheduled", None),
    ],
}


@pytest.mark.parametrize("expected", list(PATHS))
def test_status_depends_on_the_set_of_facts_not_their_order(expected: tuple[object, ...]) -> None:
    steps = PATHS[expected]
    for perm in itertools.permutations(steps):
        s = derive_status(Facts.of(perm))
        assert (s.status, s.cancel_reason) == expected[:2]


def test_partial_sagas_are_pending_or_cancelling_and_say_what_they_wait_for() -> None:
    f = Facts.of([("OrderPlaced", None), ("InventoryReserved", None)])
    assert derive_status(f).status == "PENDING"
    assert awaiting(f) == ["payment: charge the card (PaymentCharged or PaymentFailed)"]
    f = Facts.of(
        [
            ("OrderPlaced", None),
            ("InventoryReserved", None),
            ("PaymentCharged", None),
            ("FulfillmentFailed", "x"),
            ("InventoryReleased", "fulfillment_failed"),
        ]
    )
    assert derive_status(f).status == "CANCELLING"
    assert awaiting(f) == ["payment: refund the charge (PaymentRefunded)"]
    assert awaiting(Facts.of(PATHS[("COMPLETED", None)])) == []
