"""Inventory's reactions to upstream events, and the reservation reaper."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from eventing.logging import get_logger
from eventing.tx import Handler, Tx
from inventory_svc import domain
from inventory_svc import repository as repo
from shared_events.common import StockLine
from shared_events.envelope import Event
from shared_events.fulfillment import FulfillmentFailed, ShipmentScheduled
from shared_events.inventory import (
    InventoryRejected,
    InventoryRejectedPayload,
    InventoryReleased,
    InventoryReleasedPayload,
    InventoryReserved,
    InventoryReservedPayload,
)
from shared_events.order import OrderPlaced
from shared_events.payment import PaymentCharged, PaymentFailed

__all__ = ["HANDLERS", "reap_lapsed_reservations"]

log = get_logger(__name__)


def _lines(items: Any) -> list[tuple[str, int]]:
    return [(i["sku"], int(i["qty"])) for i in items]


def on_order_placed(tx: Tx, event: OrderPlaced) -> None:
    if repo.reservation_for_order(tx.conn, event.order_id) is not None:
        log.info("order already has a reservation; duplicate OrderPlaced ignored")
        return
    lines = [(i.sku, i.qty) for i in event.payload.items]
    levels = repo.lock_levels(tx.conn, [s for s, _ in lines])
    decision = domain.decide_reservation(levels, lines)
    if isinstance(decision, domain.Reject):
        tx.emit(
            InventoryRejected, InventoryRejectedPayload(reason=decision.reason, skus=decision.skus)
        )
        log.info("reservation rejected", reason=decision.reason, skus=decision.skus)
        return
    reservation_id = uuid.uuid4()
    expires_at = tx.now + timedelta(seconds=tx.settings.reservation_ttl_s)
    repo.hold(tx.conn, sorted(lines))
    repo.insert_reservation(tx.conn, reservation_id, event.order_id, lines, expires_at)
    p = event.payload
    tx.emit(
        InventoryReserved,
        InventoryReservedPayload(
            reservation_id=reservation_id,
            items=tuple(StockLine(sku=s, qty=q) for s, q in lines),
            expires_at=expires_at,
            amount_minor=p.total_minor,
            currency=p.currency,
            card_token=p.card_token,
            customer_id=p.customer_id,
            ship_to=p.ship_to,
        ),
    )
    log.info(
        "stock reserved", reservation_id=str(reservation_id), expires_at=expires_at.isoformat()
    )


def _apply(tx: Tx, event: Event, transition: domain.Transition, res: dict[str, Any]) -> None:
    lines = _lines(res["items"])
    repo.move_stock(tx.conn, transition.stock, lines)
    if transition.status != res["status"]:
        repo.set_status(tx.conn, res["reservation_id"], transition.status, transition.emit_release)
    if transition.emit_release is not None:
        tx.emit(
            InventoryReleased,
            InventoryReleasedPayload(
                reservation_id=res["reservation_id"],
                items=tuple(StockLine(sku=s, qty=q) for s, q in lines),
                reason=transition.emit_release,  # type: ignore[arg-type]
            ),
        )
    log.info(
        transition.note,
        reservation_status=transition.status,
        previous=res["status"],
        caused_by=event.event_type,
    )


def _reservation(tx: Tx, event: Event) -> dict[str, Any] | None:
    res = repo.reservation_for_order(tx.conn, event.order_id)
    if res is None:
        log.warning("no reservation for this order; nothing to do")
    return res


def on_payment_charged(tx: Tx, event: PaymentCharged) -> None:
    if res := _reservation(tx, event):
        _apply(tx, event, domain.on_payment_charged(res["status"]), res)


def on_payment_failed(tx: Tx, event: PaymentFailed) -> None:
    if res := _reservation(tx, event):
        _apply(tx, event, domain.on_payment_failed(res["status"], event.payload.reason), res)


def on_shipment_scheduled(tx: Tx, event: ShipmentScheduled) -> None:
    if res := _reservation(tx, event):
        _apply(tx, event, domain.on_shipment_scheduled(res["status"]), res)


def on_fulfillment_failed(tx: Tx, event: FulfillmentFailed) -> None:
    if res := _reservation(tx, event):
        _apply(tx, event, domain.on_fulfillment_failed(res["status"]), res)


def reap_lapsed_reservations(tx: Tx) -> int:
    """Reservations past expires_at and not paid: announce expiry, hold stock until payment answers.

    The stock is only freed once payment confirms it did not charge (PaymentFailed with
    reason reservation_expired, which payment sends on our InventoryReleased(expired)):
    a charge already in flight must still find its goods.
    """
    rows = repo.lapsed_reservations(tx.conn, limit=500)
    for res in rows:
        repo.set_status(tx.conn, res["reservation_id"], "expiring", "expired")
        lines = _lines(res["items"])
        tx.emit(
            InventoryReleased,
            InventoryReleasedPayload(
                reservation_id=res["reservation_id"],
                items=tuple(StockLine(sku=s, qty=q) for s, q in lines),
                reason="expired",
            ),
            order_id=res["order_id"],
        )
        log.info(
            "reservation lapsed",
            order_id=str(res["order_id"]),
            expires_at=res["expires_at"].isoformat(),
        )
    return len(rows)


HANDLERS: dict[type[Event], Handler] = {
    OrderPlaced: on_order_placed,
    PaymentCharged: on_payment_charged,
    PaymentFailed: on_payment_failed,
    ShipmentScheduled: on_shipment_scheduled,
    FulfillmentFailed: on_fulfillment_failed,
}
