"""Payment's reactions: charge on a reservation, refund on a failed fulfillment, answer a
lapsed reservation."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import cache

from eventing.logging import for_event, get_logger
from eventing.tx import Tx
from payment_svc import domain
from payment_svc.gateway import Gateway, GatewayResult
from payment_svc.repository import Ledger, Payment, Refund
from shared_events.envelope import Event
from shared_events.fulfillment import FulfillmentFailed, ShipmentScheduled
from shared_events.ids import new_id
from shared_events.inventory import InventoryReleased, InventoryReserved
from shared_events.payment import (
    PaymentCharged,
    PaymentChargedPayload,
    PaymentFailed,
    PaymentFailedPayload,
    PaymentRefunded,
    PaymentRefundedPayload,
)

__all__ = ["CONSUMES", "handle"]

log = get_logger(__name__)
CONSUMES: frozenset[type[Event]] = frozenset(
    {InventoryReserved, FulfillmentFailed, InventoryReleased, ShipmentScheduled}
)
# Placeholder status while the gateway call of this batch is outstanding.
CHARGING = "charging"


@cache
def gateway(dsn: str) -> Gateway:
    return Gateway(dsn)


Finish = Callable[[dict[uuid.UUID, GatewayResult], dict[uuid.UUID, GatewayResult]], None]


def _on_reserved(
    tx: Tx, ledger: Ledger, e: InventoryReserved, charges: list[tuple[uuid.UUID, str, int, str]]
) -> Finish | None:
    p = e.payload
    decision = domain.decide_charge(ledger.status(e.order_id), tx.now, p.expires_at)
    if decision == "too_late" and gateway(tx.settings.dsn("payment")).charge_answered(e.order_id):
        decision = domain.decide_charge(None, tx.now, p.expires_at, gateway_answered=True)
        log.info("past the deadline, but the gateway charged before it: its answer stands")
    if decision == "already_handled":
        log.info("order already has a payment; no second charge", status=ledger.status(e.order_id))
        return None
    if decision == "too_late":
        ledger.add(
            Payment(
                e.order_id,
                new_id(),
                "expired",
                p.amount_minor,
                p.currency,
                detail="reservation lapsed before the charge",
            )
        )
        tx.emit(
            PaymentFailed,
            PaymentFailedPayload(
                reason="reservation_expired",
                detail=f"reservation expired at {p.expires_at.isoformat()}; not charged",
            ),
            cause=e,
        )
        log.info("not charged: reservation lapsed")
        return None
    payment = Payment(e.order_id, new_id(), CHARGING, p.amount_minor, p.currency)
    ledger.add(payment)
    charges.append((e.order_id, p.card_token, p.amount_minor, p.currency))

    def finish(charged: dict[uuid.UUID, GatewayResult], _: object) -> None:
        result = charged[e.order_id]
        payment.gateway_ref = result.reference
        if not result.approved:
            payment.status, payment.detail = "declined", "card declined"
            tx.emit(
                PaymentFailed,
                PaymentFailedPayload(reason="declined", detail="card declined by the gateway"),
                cause=e,
            )
            log.info("card declined", gateway_ref=result.reference)
            return
        payment.status = "charged"
        tx.emit(
            PaymentCharged,
            PaymentChargedPayload(
                payment_id=payment.payment_id,
                amount_minor=p.amount_minor,
                currency=p.currency,
                items=p.items,
                ship_to=p.ship_to,
            ),
            cause=e,
        )
        # DEBUG on the success path (the order service logs each saga's end).
        log.debug("payment charged", amount_minor=p.amount_minor, gateway_ref=result.reference)

    return finish


def _on_fulfillment_failed(
    tx: Tx, ledger: Ledger, e: FulfillmentFailed, refunds: list[tuple[uuid.UUID, int, str]]
) -> Finish | None:
    payment = ledger.payments.get(e.order_id)
    if payment is None or payment.status not in ("charged", CHARGING):
        log.info("nothing to refund", status=ledger.status(e.order_id))
        return None
    # Refunded in the currency it was charged in (a charge always has one).
    currency = payment.currency
    assert currency is not None, f"payment of order {e.order_id} charged in no currency"
    refunds.append((e.order_id, payment.amount_minor, currency))

    def finish(_: object, refunded: dict[uuid.UUID, GatewayResult]) -> None:
        result = refunded[e.order_id]
        refund = Refund(
            e.order_id, new_id(), payment.amount_minor, "fulfillment_failed", result.reference
        )
        ledger.refunds.append(refund)
        payment.status = "refunded"
        tx.emit(
            PaymentRefunded,
            PaymentRefundedPayload(
                payment_id=payment.payment_id,
                refund_id=refund.refund_id,
                amount_minor=payment.amount_minor,
                currency=currency,
                reason="fulfillment_failed",
            ),
            cause=e,
        )
        log.info(
            "payment refunded", amount_minor=payment.amount_minor, gateway_ref=result.reference
        )

    return finish


def _on_released(tx: Tx, ledger: Ledger, e: InventoryReleased) -> None:
    if e.payload.reason != "expired":
        return
    if not domain.void_needed(ledger.status(e.order_id)):
        # Charged before the deadline: inventory still holds the stock and honours it.
        log.info(
            "reservation lapsed after our answer; nothing to do", status=ledger.status(e.order_id)
        )
        return
    # Payment never read the reservation (it would have answered it): nothing was to be
    # charged, so there is no amount and no currency to record.
    ledger.add(
        Payment(
            e.order_id,
            new_id(),
            "expired",
            0,
            None,
            detail="reservation lapsed before any charge",
        )
    )
    tx.emit(
        PaymentFailed,
        PaymentFailedPayload(
            reason="reservation_expired", detail="reservation lapsed before any charge; not charged"
        ),
        cause=e,
    )
    log.info("lapsed reservation answered: not charged")


def _on_shipped(ledger: Ledger, e: ShipmentScheduled) -> None:
    """The goods are on their way: no refund can be asked for any more, the charge is settled
    (and the payment may go to the archive)."""
    payment = ledger.payments.get(e.order_id)
    if payment is None or payment.status != "charged":
        log.info(
            "shipment for a payment not charged here; nothing to settle",
            status=ledger.status(e.order_id),
        )
        return
    payment.status = "settled"
    ledger.settled.append(e.order_id)


def handle(tx: Tx, events: list[Event]) -> None:
    """Decide every event in order, call the gateway once for all charges and once for all
    refunds, then finish each event with its result (emitting in the original order)."""
    ledger = Ledger.load(tx.conn, {e.order_id for e in events})
    charges: list[tuple[uuid.UUID, str, int, str]] = []
    refunds: list[tuple[uuid.UUID, int, str]] = []
    pending: list[tuple[Event, Finish]] = []
    for e in events:
        with for_event(e):
            finish: Finish | None = None
            if isinstance(e, InventoryReserved):
                finish = _on_reserved(tx, ledger, e, charges)
            elif isinstance(e, FulfillmentFailed):
                finish = _on_fulfillment_failed(tx, ledger, e, refunds)
            elif isinstance(e, InventoryReleased):
                _on_released(tx, ledger, e)
            elif isinstance(e, ShipmentScheduled):
                _on_shipped(ledger, e)
            if finish is not None:
                pending.append((e, finish))
    if pending:
        gw = gateway(tx.settings.dsn("payment"))
        charged = gw.charge_many(charges) if charges else {}
        refunded = gw.refund_many(refunds) if refunds else {}
        for e, finish in pending:
            with for_event(e):
                finish(charged, refunded)
    ledger.flush(tx.conn)
