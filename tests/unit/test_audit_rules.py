"""The audit's invariants on hand-made facts: each rule flags what it must, and only that."""

from __future__ import annotations

import uuid

import pytest

from saga_cli.audit_rules import (
    Blocker,
    Money,
    OrderFacts,
    SkuFacts,
    Unsent,
    Violation,
    check_liveness,
    check_money,
    check_sku,
    check_stock,
    unknown_orders,
)

OID = "00000000-0000-4000-8000-000000000001"


def order(status: str, reason: str | None = None, total: int | None = 1000) -> OrderFacts:
    return OrderFacts(OID, status, reason, total)


def sku(**kw: int) -> SkuFacts:
    # A consistent SKU: 10 received, 3 shipped, 2 held of the 7 on hand.
    base = dict(on_hand=7, reserved=2, shipped=3, received=10, adjustments=10, held=2, committed=3)
    return SkuFacts("S-1", **{**base, **kw})


def blocker(state: str, overdue_s: float = 0.0, error: str | None = "boom") -> Blocker:
    return Blocker(
        "payment:7", "payment", state, "FulfillmentFailed", 6, "transient", error, overdue_s
    )


def details(vs: list[Violation]) -> list[str]:
    return [v.detail for v in vs]


# -- 1. no oversell ---------------------------------------------------------------------


def test_consistent_sku_passes() -> None:
    assert check_sku(sku()) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"reserved": 8, "held": 8}, "oversold"),
        ({"shipped": 4, "committed": 4}, "units appeared or vanished"),
        ({"received": 11, "on_hand": 8}, "adjustments sum to 10"),
        ({"held": 3}, "open reservations hold 3"),
        ({"committed": 2}, "committed reservations account for 2"),
    ],
)
def test_sku_breaks_are_named(change: dict[str, int], words: str) -> None:
    found = check_sku(sku(**change))
    assert found, change
    assert all(v.invariant == "no_oversell" and v.sku == "S-1" for v in found)
    assert any(words in d for d in details(found)), details(found)
    assert found[0].as_dict()["sku"] == "S-1"


# -- 2. money ---------------------------------------------------------------------------


def test_completed_order_charged_its_total_passes() -> None:
    assert check_money(order("COMPLETED"), Money(1, 1000, 0, 0)) == []


def test_completed_order_not_charged_is_a_violation() -> None:
    [v] = check_money(order("COMPLETED"), None)
    assert v.invariant == "money" and v.order_id == OID
    assert "charged 0.00" in v.detail
    assert v.as_dict() == {"invariant": "money", "order_id": OID, "detail": v.detail}


def test_cancelled_order_refunded_passes_and_unrefunded_does_not() -> None:
    cancelled = order("CANCELLED", "fulfillment_failed")
    assert check_money(cancelled, Money(1, 1000, 1, 1000)) == []
    assert check_money(cancelled, None) == []  # never charged: declined or out of stock
    [v] = check_money(cancelled, Money(1, 1000, 0, 0))
    assert "out 10.00" in v.detail


def test_two_charges_are_flagged_whatever_the_status() -> None:
    for o in (order("PENDING"), order("COMPLETED", total=2000)):
        found = check_money(o, Money(2, 2000, 0, 0))
        assert any("2 approved charges" in d for d in details(found))


def test_in_flight_order_is_only_checked_for_refunds_beyond_charges() -> None:
    assert check_money(order("CANCELLING", "fulfillment_failed"), Money(1, 1000, 0, 0)) == []
    [v] = check_money(order("PENDING"), Money(0, 0, 1, 1000))
    assert "refunded more than was charged" in v.detail


def test_order_without_details_is_not_held_to_an_unknown_total() -> None:
    assert check_money(order("COMPLETED", total=None), Money(1, 1234, 0, 0)) == []


# -- 3. stock ---------------------------------------------------------------------------


@pytest.mark.parametrize("reservation", [None, "released", "expired"])
def test_cancelled_order_holding_nothing_passes(reservation: str | None) -> None:
    assert check_stock(order("CANCELLED", "payment_declined"), reservation, None) == []


@pytest.mark.parametrize("reservation", ["reserved", "paid", "expiring", "committed"])
def test_cancelled_order_holding_stock_is_a_violation(reservation: str) -> None:
    [v] = check_stock(order("CANCELLED", "reservation_expired"), reservation, None)
    assert v.invariant == "stock" and reservation in v.detail


def test_cancelled_order_with_scheduled_shipment_is_a_violation() -> None:
    found = check_stock(order("CANCELLED", "fulfillment_failed"), "released", "scheduled")
    assert details(found) == ["CANCELLED (fulfillment_failed) but a shipment is scheduled"]


def test_completed_order_needs_committed_stock_and_a_shipment() -> None:
    assert check_stock(order("COMPLETED"), "committed", "scheduled") == []
    found = check_stock(order("COMPLETED"), "paid", None)
    assert details(found) == [
        "COMPLETED but its reservation is paid, not committed",
        "COMPLETED but its shipment is absent, not scheduled",
    ]


def test_in_flight_orders_are_not_checked_for_stock() -> None:
    assert check_stock(order("PENDING"), "reserved", None) == []
    assert check_stock(order("CANCELLING", "fulfillment_failed"), "paid", "failed") == []


# -- 4. liveness ------------------------------------------------------------------------


def test_recent_or_terminal_orders_are_live() -> None:
    assert check_liveness(OID, "PENDING", 5.0, 30.0, []) is None
    assert check_liveness(OID, "COMPLETED", 500.0, 30.0, []) is None


def test_idle_order_without_a_dead_entry_is_stuck() -> None:
    v = check_liveness(OID, "PENDING", 45.0, 30.0, [], [Unsent("inventory", 2, 44.0)])
    assert v is not None and v.invariant == "liveness" and v.order_id == OID
    assert "no progress for 45s" in v.detail
    assert "2 unpublished outbox row(s) in inventory" in v.detail


def test_idle_order_blocked_on_a_dead_entry_is_not_a_violation() -> None:
    parked_behind = blocker("retrying", overdue_s=100.0, error=None)
    assert check_liveness(OID, "CANCELLING", 90.0, 30.0, [blocker("dead"), parked_behind]) is None


def test_retry_due_soon_is_progress_but_an_overdue_one_is_not() -> None:
    assert check_liveness(OID, "CANCELLING", 90.0, 30.0, [blocker("retrying", -5.0)]) is None
    v = check_liveness(OID, "CANCELLING", 90.0, 30.0, [blocker("retrying", 60.0)])
    assert v is not None and "payment:7 (FulfillmentFailed) overdue for retry" in v.detail


# -- unknown orders ---------------------------------------------------------------------


def test_records_for_unknown_orders_are_flagged() -> None:
    other = str(uuid.uuid4())
    [v] = unknown_orders("fulfillment", "shipment", [OID, other], {OID})
    assert (v.invariant, v.order_id) == ("unknown_order", other)
    assert v.detail == "fulfillment has a shipment for an order the order service does not know"
