"""Conflicting duplicates: an event that contradicts what a service recorded for an order is
never a second fact of its saga. The first wins; the conflict is a dead letter with a clear
reason (holding nothing back), a line in the trace and a finding of the audit, until an
operator acknowledges it with a redrive. A copy of a fact under another id passes quietly."""

from __future__ import annotations

import uuid

import pytest
from structlog.testing import capture_logs

from eventing.testing import SagaHarness
from saga_cli.trace import build_trace, render_trace
from shared_events.common import Address, LineItem
from shared_events.ids import new_id
from shared_events.order import OrderPlaced, OrderPlacedPayload
from shared_events.payment import PaymentCharged

pytestmark = pytest.mark.integration


def placed(
    items: dict[str, int], order_id: uuid.UUID | None = None, customer: str = "ext-1"
) -> OrderPlaced:
    lines = tuple(LineItem(sku=s, qty=q, unit_price_minor=500) for s, q in items.items())
    return OrderPlaced.create(
        order_id=order_id or new_id(),
        producer="storefront",
        payload=OrderPlacedPayload(
            customer_id=customer,
            items=lines,
            total_minor=sum(li.qty * 500 for li in lines),
            card_token="tok_ok",
            ship_to=Address(country="US"),
        ),
    )


def types(h: SagaHarness, order_id: uuid.UUID) -> list[str]:
    return [e["event_type"] for e in h.trace(order_id)["events"]]


def test_a_conflicting_order_placed_is_set_aside_and_the_first_wins(h: SagaHarness) -> None:
    h.set_stock("A-1", 10)
    first = placed({"A-1": 1})
    second = placed({"A-1": 3}, order_id=first.order_id, customer="ext-2")
    h.publish(first)
    h.publish(second)
    with capture_logs() as logs:
        h.settle()

    t = h.trace(first.order_id)
    assert t["status"] == "COMPLETED"
    assert types(h, first.order_id).count("OrderPlaced") == 1
    assert t["events"][0]["event_id"] == str(first.event_id)
    # the first one's content everywhere: the order, the reservation, the charge
    assert (t["customer_id"], t["total_minor"]) == ("ext-1", 500)
    assert h.rows("inventory", "SELECT items FROM reservations") == [([{"sku": "A-1", "qty": 1}],)]
    assert h.rows("payment", "SELECT amount_minor FROM gateway_ledger") == [(500,)]
    assert h.stock_of("A-1") == {"on_hand": 9, "reserved": 0, "shipped": 1}

    # a dead letter with a clear reason, which holds nothing back
    [dead] = h.dead_letters()
    assert (dead["service"], dead["event_type"], dead["error_kind"]) == (
        "order",
        "OrderPlaced",
        "conflict",
    )
    assert dead["event_id"] == second.event_id and dead["blocks"] is False
    assert "with other content contradicts the saga record" in dead["last_error"]
    assert "the saga already has an OrderPlaced" in dead["last_error"]
    [line] = [e for e in logs if e["log_level"] == "error"]
    assert "conflicting event dead-lettered" in line["event"]
    assert line["error_kind"] == "conflict" and str(second.event_id) in line["reason"]
    assert any("conflicting OrderPlaced ignored" in e["event"] for e in logs)  # inventory

    # a line in the trace
    [conflict] = t["conflicts"]
    assert conflict["dlq_id"] == f"order:{dead['seq']}" and t["blocked_on"] == []
    typed = build_trace(h.conn("order"), h.settings, first.order_id)
    assert typed is not None and [c.dlq_id for c in typed.conflicts] == [conflict["dlq_id"]]
    assert f"set aside a conflicting OrderPlaced as order:{dead['seq']}" in render_trace(typed)

    # a finding of the audit, until acknowledged
    [finding] = h.audit().violations
    assert (finding.invariant, finding.order_id) == ("conflict", str(first.order_id))
    assert f"order:{dead['seq']}" in finding.detail
    assert [e["event_id"] for e in h.redrive()] == [second.event_id]
    h.settle()
    assert h.dead_letters() == [] and h.audit().violations == []
    assert h.trace(first.order_id)["status"] == "COMPLETED"


def test_a_copy_under_a_new_event_id_is_not_a_second_fact_nor_a_conflict(
    h: SagaHarness,
) -> None:
    h.set_stock("A-1", 10)
    first = placed({"A-1": 2})
    h.publish(first)
    h.publish(first.model_copy(update={"event_id": new_id()}))  # an external retry
    h.settle()
    assert types(h, first.order_id) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentCharged",
        "ShipmentScheduled",
    ]
    assert h.dead_letters() == [] and h.audit().violations == []
    assert h.stock_of("A-1")["shipped"] == 2


def test_a_refused_order_stays_refused_when_its_order_placed_comes_again(
    h: SagaHarness,
) -> None:
    # Found by the simulation (seeds 5, 52): a rejection was not on record, so a second
    # OrderPlaced, once stock was back, reserved, charged and shipped a CANCELLED order.
    h.set_stock("HOT", 1)
    first = placed({"HOT": 2})
    h.publish(first)
    h.settle()
    assert h.trace(first.order_id)["cancel_reason"] == "out_of_stock"
    h.set_stock("HOT", 5)  # restocked
    h.publish(first.model_copy(update={"event_id": new_id()}))
    h.settle()
    assert types(h, first.order_id) == ["OrderPlaced", "InventoryRejected"]
    assert h.rows("inventory", "SELECT status, release_reason FROM reservations") == [
        ("released", "rejected")
    ]
    assert h.stock_of("HOT") == {"on_hand": 5, "reserved": 0, "shipped": 0}
    assert h.rows("payment", "SELECT * FROM gateway_ledger") == []
    assert h.audit().violations == []


def test_a_refused_order_redelivered_past_the_inbox_window_is_not_decided_again(
    h: SagaHarness,
) -> None:
    h.reset(inbox=False)  # every repeat is judged by the services' own records
    h.set_stock("HOT", 1)
    first = placed({"HOT": 2})
    h.publish(first)
    h.settle()
    h.set_stock("HOT", 5)
    for group in h.names:  # a consumer group reset: everything comes again
        for key in [k for k in h.bus.committed if k[0] == group]:
            h.bus.committed[key] = 0
    h.settle()
    assert types(h, first.order_id) == ["OrderPlaced", "InventoryRejected"]
    assert h.stock_of("HOT")["reserved"] == 0
    assert h.dead_letters() == [] and h.audit().violations == []


def test_another_outcome_of_a_step_is_set_aside_and_changes_nothing(h: SagaHarness) -> None:
    h.set_stock("A-1", 10)
    order_id = h.place({"A-1": 1})
    h.settle()
    [raw] = [r for r in h.bus.messages("payments.events") if b"PaymentCharged" in (r.value or b"")]
    charged = PaymentCharged.model_validate_json(raw.value or b"")
    forged = charged.model_copy(
        update={
            "event_id": new_id(),
            "payload": charged.payload.model_copy(update={"payment_id": uuid.uuid4()}),
        }
    )
    h.publish(forged)  # a buggy payment service charges "again"
    h.settle()
    assert types(h, order_id).count("PaymentCharged") == 1
    assert h.rows("fulfillment", "SELECT count(*) FROM shipments") == [(1,)]
    [dead] = h.dead_letters()
    assert (dead["service"], dead["event_type"], dead["error_kind"]) == (
        "order",
        "PaymentCharged",
        "conflict",
    )
    [finding] = h.audit().violations
    assert finding.invariant == "conflict"


def test_a_lapse_then_a_release_for_a_failed_fulfillment_are_both_facts(h: SagaHarness) -> None:
    # Found by the simulation (seed 8) in the first version of the conflict rule, which took
    # the second InventoryReleased for a contradiction.
    h.set_stock("A-1", 2)
    order_id = h.place({"A-1": 1}, country="ZZ")
    h.relay()
    h.deliver("inventory")
    h.relay()
    h.deliver("payment")  # charged before the deadline
    h.advance(h.settings.reservation_ttl_s + 1)
    h.run_timers("inventory")  # lapses: InventoryReleased(expired), stock still held
    h.settle()
    t = h.trace(order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "fulfillment_failed")
    reasons = [
        e["payload"]["reason"] for e in t["events"] if e["event_type"] == "InventoryReleased"
    ]
    assert sorted(reasons) == ["expired", "fulfillment_failed"]
    assert h.dead_letters() == [] and h.audit().violations == []
    assert h.stock_of("A-1") == {"on_hand": 2, "reserved": 0, "shipped": 0}
