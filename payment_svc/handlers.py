"""Payment's reactions: charge on a reservation, refund on a failed fulfillment."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from eventing.logging import get_logger
from eventing.tx import Handler, Tx
from payment_svc import domain
from payment_svc import repository as repo
from payment_svc.gateway import Gateway
from shared_events.envelope import Event
from shared_events.fulfillment import FulfillmentFailed
from shared_events.inventory import InventoryReleased, InventoryReserved
from shared_events.payment import (
    PaymentCharged,
    PaymentChargedPayload,
    PaymentFailed,
    PaymentFailedPayload,
    PaymentRefunded,
    PaymentRefundedPayload,
)

__all__ = ["HANDLERS"]

log = get_logger(__name__)


def _status(payment: dict[str, Any] | None) -> str | None:
    return None if payment is None else str(payment["status"])


@cache
def gateway(dsn: str) -> Gateway:
    return Gateway(dsn)


def on_inventory_reserved(tx: Tx, event: InventoryReserved) -> None:
    p = event.payload
    existing = repo.payment_for_order(tx.conn, event.order_id)
    decision = domain.decide_charge(_status(existing), tx.now, p.expires_at)
    if decision == "already_handled":
        log.info("order already has a payment; no second charge", status=_status(existing))
        return
    payment_id = uuid.uuid4()
    if decision == "too_late":
        repo.insert_payment(
            tx.conn,
            event.order_id,
            payment_id,
            "expired",
            p.amount_minor,
            p.currency,
            None,
            "reservation lapsed before the charge",
        )
        tx.emit(
            PaymentFailed,
            PaymentFailedPayload(
                reason="reservation_expired",
                detail=f"reservation expired at {p.expires_at.isoformat()}; not charged",
            ),
        )
        log.info("not charged: reservation lapsed")
        return
    result = gateway(tx.settings.dsn("payment")).charge(
        event.order_id, p.card_token, p.amount_minor, p.currency
    )
    if not result.approved:
        repo.insert_payment(
            tx.conn,
            event.order_id,
            payment_id,
            "declined",
            p.amount_minor,
            p.currency,
            result.reference,
            "card declined",
        )
        tx.emit(
            PaymentFailed,
            PaymentFailedPayload(reason="declined", detail="card declined by the gateway"),
        )
        log.info("card declined", gateway_ref=result.reference)
        return
    repo.insert_payment(
        tx.conn,
        event.order_id,
        payment_id,
        "charged",
        p.amount_minor,
        p.currency,
        result.reference,
        None,
    )
    tx.emit(
        PaymentCharged,
        PaymentChargedPayload(
            payment_id=payment_id,
            amount_minor=p.amount_minor,
            currency=p.currency,
            items=p.items,
            ship_to=p.ship_to,
        ),
    )
    log.info("payment charged", amount_minor=p.amount_minor, gateway_ref=result.reference)


def on_fulfillment_failed(tx: Tx, event: FulfillmentFailed) -> None:
    existing = repo.payment_for_order(tx.conn, event.order_id)
    if existing is None or not domain.refund_needed(existing["status"]):
        log.info("nothing to refund", status=_status(existing))
        return
    result = gateway(tx.settings.dsn("payment")).refund(
        event.order_id, existing["amount_minor"], existing["currency"]
    )
    refund_id = uuid.uuid4()
    repo.insert_refund(
        tx.conn,
        event.order_id,
        refund_id,
        existing["amount_minor"],
        "fulfillment_failed",
        result.reference,
    )
    tx.emit(
        PaymentRefunded,
        PaymentRefundedPayload(
            payment_id=existing["payment_id"],
            refund_id=refund_id,
            amount_minor=existing["amount_minor"],
            currency=existing["currency"],
            reason="fulfillment_failed",
        ),
    )
    log.info(
        "payment refunded", amount_minor=existing["amount_minor"], gateway_ref=result.reference
    )


def on_inventory_released(tx: Tx, event: InventoryReleased) -> None:
    if event.payload.reason != "expired":
        return
    existing = repo.payment_for_order(tx.conn, event.order_id)
    if not domain.void_needed(_status(existing)):
        # Charged before the deadline: inventory still holds the stock and honours it.
        log.info(
            "reservation lapsed after our answer; nothing to do",
            status=_status(existing),
        )
        return
    repo.insert_payment(
        tx.conn,
        event.order_id,
        uuid.uuid4(),
        "expired",
        0,
        "USD",
        None,
        "reservation lapsed before any charge",
    )
    tx.emit(
        PaymentFailed,
        PaymentFailedPayload(
            reason="reservation_expired", detail="reservation lapsed before any charge; not charged"
        ),
    )
    log.info("lapsed reservation answered: not charged")


HANDLERS: dict[type[Event], Handler] = {
    InventoryReserved: on_inventory_reserved,
    FulfillmentFailed: on_fulfillment_failed,
    InventoryReleased: on_inventory_released,
}
