"""Money keeps the currency it came in: charged, refunded and shown in the order's own
currency, and a payment that never had an amount records none (no made-up default)."""

from __future__ import annotations

import pytest

from eventing.archive import move_settled
from eventing.testing import SagaHarness
from payment_svc.service import SPEC as PAYMENT
from saga_cli.trace import build_trace, render_trace
from shared_events.common import Address, LineItem, StockLine
from shared_events.ids import new_id
from shared_events.inventory import InventoryReleased, InventoryReleasedPayload
from shared_events.order import OrderPlaced, OrderPlacedPayload

pytestmark = pytest.mark.integration


def test_a_refund_is_in_the_currency_of_its_charge(h: SagaHarness) -> None:
    h.set_stock("A-1", 10)
    placed = OrderPlaced.create(
        order_id=new_id(),
        producer="storefront",
        payload=OrderPlacedPayload(
            customer_id="ext-1",
            items=(LineItem(sku="A-1", qty=2, unit_price_minor=750),),
            total_minor=1500,
            currency="EUR",
            card_token="tok_ok",
            ship_to=Address(country="ZZ"),  # cannot be served: refunded
        ),
    )
    h.publish(placed)
    h.settle()
    assert h.rows(
        "payment", "SELECT kind, amount_minor, currency FROM gateway_ledger ORDER BY id"
    ) == [("charge", 1500, "EUR"), ("refund", 1500, "EUR")]
    t = build_trace(h.conn("order"), h.settings, placed.order_id)
    assert t is not None and (t.status, t.cancel_reason) == ("CANCELLED", "fulfillment_failed")
    [refunded] = [e for e in t.events if e.event_type == "PaymentRefunded"]
    assert refunded.payload["currency"] == "EUR"
    text = render_trace(t)
    assert "total 15.00 EUR" in text and "charged 15.00 EUR" in text
    assert "refunded 15.00 EUR (reason: fulfillment_failed)" in text
    assert "USD" not in text


def test_a_lapse_payment_never_saw_reserved_records_no_currency(h: SagaHarness) -> None:
    # Payment never read the reservation, so it knows no amount and no currency: it answers
    # the lapse 'not charged' without making one up.
    order_id = new_id()
    h.publish(
        InventoryReleased.create(
            order_id=order_id,
            producer="inventory",
            payload=InventoryReleasedPayload(
                reservation_id=new_id(),
                items=(StockLine(sku="A-1", qty=1),),
                reason="expired",
            ),
        )
    )
    h.relay()
    h.deliver("payment")
    assert h.rows(
        "payment",
        "SELECT status, amount_minor, currency FROM payments WHERE order_id = %s",
        order_id,
    ) == [("expired", 0, None)]
    # and it moves to the archive like any other payment that ended
    with h.conn("payment").transaction():
        assert move_settled(h.conn("payment"), PAYMENT.archives[0], after_s=-60.0) == 1
    assert h.rows(
        "payment", "SELECT status, currency FROM payments_archive WHERE order_id = %s", order_id
    ) == [("expired", None)]
