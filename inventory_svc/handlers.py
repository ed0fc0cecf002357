"""Inventory's reactions to upstream events, and the reservation reaper."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from eventing.logging import for_event, get_logger
from eventing.tx import Tx
from inventory_svc import domain
from inventory_svc import repository as repo
from inventory_svc.repository import Book, Reservation
from shared_events.common import StockLine
from shared_events.envelope import Event
from shared_events.fulfillment import FulfillmentFailed, ShipmentScheduled
from shared_events.ids import new_id
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

__all__ = ["CONSUMES", "handle", "reap_lapsed_reservations"]

log = get_logger(__name__)


def _stock_lines(lines: list[tuple[str, int]]) -> tuple[StockLine, ...]:
    return tuple(StockLine(sku=s, qty=q) for s, q in lines)


def on_order_placed(tx: Tx, book: Book, event: OrderPlaced) -> None:
    lines = [(i.sku, i.qty) for i in event.payload.items]
    first = book.reservations.get(event.order_id)
    if first is not None:
        # One decision per order, the first: a copy of its OrderPlaced under another id, or
        # one redelivered past the inbox's window, changes nothing; one with other content
        # contradicts it (the order service dead-letters it as a conflict).
        if sorted(first.lines) == sorted(lines):
            log.info("order already decided; duplicate OrderPlaced ignored")
        else:
            log.warning(
                "conflicting OrderPlaced ignored: the order's first one stands",
                first=first.lines,
                ignored=lines,
            )
        return
    levels = {sku: row.level for sku, row in book.stock.items()}
    decision = domain.decide_reservation(levels, lines)
    if isinstance(decision, domain.Reject):
        tx.emit(
            InventoryRejected,
            InventoryRejectedPayload(reason=decision.reason, skus=decision.skus),
            cause=event,
        )
        # Kept as a reservation released at once: without it a second OrderPlaced would be
        # decided again and could reserve (and be charged) what was refused.
        book.reservations[event.order_id] = Reservation(
            new_id(),
            event.order_id,
            "released",
            lines,
            tx.now,
            release_reason=domain.REJECTED,
            new=True,
        )
        log.info("reservation rejected", reason=decision.reason, skus=decision.skus)
        return
    res = Reservation(
        new_id(),
        event.order_id,
        "reserved",
        lines,
        tx.now + timedelta(seconds=tx.settings.reservation_ttl_s),
        new=True,
        trace=tx.traceparents.get(event.event_id),
    )
    book.reservations[event.order_id] = res
    book.move("hold", lines)
    p = event.payload
    tx.emit(
        InventoryReserved,
        InventoryReservedPayload(
            reservation_id=res.reservation_id,
            items=_stock_lines(lines),
            expires_at=res.expires_at,
            amount_minor=p.total_minor,
            currency=p.currency,
            card_token=p.card_token,
            customer_id=p.customer_id,
            ship_to=p.ship_to,
        ),
        cause=event,
    )
    # Success-path lines are DEBUG: at thousands a second they cost more than they tell;
    # the order service logs each saga's end, and `saga trace` tells the whole story.
    log.debug(
        "stock reserved",
        reservation_id=str(res.reservation_id),
        expires_at=res.expires_at.isoformat(),
    )


def _settle(tx: Tx, book: Book, event: Event, rule: Callable[[str], domain.Transition]) -> None:
    res = book.reservations.get(event.order_id)
    if res is None:
        log.warning("no reservation for this order; nothing to do")
        return
    t = rule(res.status)
    book.move(t.stock, res.lines)
    if t.status != res.status or t.emit_release:
        log.debug(t.note, reservation_status=t.status, previous=res.status)
        res.status, res.dirty = t.status, True
        res.release_reason = t.emit_release or res.release_reason
    if t.emit_release is not None:
        tx.emit(
            InventoryReleased,
            InventoryReleasedPayload(
                reservation_id=res.reservation_id,
                items=_stock_lines(res.lines),
                reason=t.emit_release,  # type: ignore[arg-type]
            ),
            cause=event,
        )


_RULES: dict[type[Event], Callable[[Any], Callable[[str], domain.Transition]]] = {
    PaymentCharged: lambda e: domain.on_payment_charged,
    PaymentFailed: lambda e: lambda status: domain.on_payment_failed(status, e.payload.reason),
    ShipmentScheduled: lambda e: domain.on_shipment_scheduled,
    FulfillmentFailed: lambda e: domain.on_fulfillment_failed,
}
CONSUMES: frozenset[type[Event]] = frozenset({OrderPlaced, *_RULES})


def handle(tx: Tx, events: list[Event]) -> None:
    skus = {i.sku for e in events if isinstance(e, OrderPlaced) for i in e.payload.items}
    book = Book.load(tx.conn, {e.order_id for e in events}, skus)
    for e in events:
        with for_event(e):
            if isinstance(e, OrderPlaced):
                on_order_placed(tx, book, e)
            else:
                _settle(tx, book, e, _RULES[type(e)](e))
    book.flush(tx.conn)


def reap_lapsed_reservations(tx: Tx) -> int:
    """Reservations past expires_at and not paid: announce expiry, hold stock until payment answers.

    The stock is only freed once payment confirms it did not charge (PaymentFailed with
    reason reservation_expired, which payment sends on our InventoryReleased(expired)):
    a charge already in flight must still find its goods.
    """
    rows = repo.lapsed_reservations(tx.conn, limit=500)
    for res in rows:
        repo.set_status(tx.conn, res["reservation_id"], "expiring", "expired")
        lines = [(i["sku"], int(i["qty"])) for i in res["items"]]
        tx.emit(
            InventoryReleased,
            InventoryReleasedPayload(
                reservation_id=res["reservation_id"],
                items=_stock_lines(lines),
                reason="expired",
            ),
            order_id=res["order_id"],
            trace=res["trace"],
        )
        log.info(
            "reservation lapsed",
            order_id=str(res["order_id"]),
            expires_at=res["expires_at"].isoformat(),
        )
    return len(rows)
