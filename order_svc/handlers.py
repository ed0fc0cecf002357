"""The order service's reactions: record every step of the saga and derive the status."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from eventing.logging import get_logger
from eventing.tx import Handler, Tx
from order_svc import repository as repo
from order_svc.domain import derive_status
from shared_events.envelope import Event
from shared_events.fulfillment import FulfillmentFailed, ShipmentScheduled
from shared_events.inventory import InventoryRejected, InventoryReleased, InventoryReserved
from shared_events.order import OrderPlaced
from shared_events.payment import PaymentCharged, PaymentFailed, PaymentRefunded

__all__ = ["HANDLERS"]

log = get_logger(__name__)
Q = repo.Q


def on_order_placed(tx: Tx, event: OrderPlaced) -> None:
    """Our own OrderPlaced is already recorded; one from another system starts a saga here."""
    p = event.payload
    details = {
        "order_id": event.order_id,
        "customer_id": p.customer_id,
        "items": Jsonb([li.model_dump() for li in p.items]),
        "total_minor": p.total_minor,
        "currency": p.currency,
        "card_token": p.card_token,
        "ship_to": Jsonb(p.ship_to.model_dump(mode="json")),
    }
    created = Q.scalar(
        tx.conn,
        "insert_order",
        {**details, "origin": "event", "idempotency_key": None, "request_hash": None},
    )
    if created is None:
        Q.execute(tx.conn, "fill_order_details", details)
    on_step(tx, event)
    if created is not None:
        log.info("saga started from an OrderPlaced published by another system")


def on_step(tx: Tx, event: Event) -> None:
    # An event may overtake the OrderPlaced of an order placed elsewhere: keep a stub.
    Q.execute(tx.conn, "insert_stub_order", {"order_id": event.order_id})
    current = Q.one(tx.conn, "lock_order", {"order_id": event.order_id})
    assert current is not None
    if not repo.record_step(tx.conn, event):
        return
    new = derive_status(repo.facts_of(tx.conn, event.order_id))
    if (new.status, new.cancel_reason) == (current["status"], current["cancel_reason"]):
        return
    if current["status"] in ("COMPLETED", "CANCELLED"):
        log.error(
            "event would change a terminal order; kept as it is",
            status=current["status"],
            would_be=new.status,
        )
        return
    repo.set_status(tx.conn, event.order_id, new)
    log.info(
        "order status changed",
        status=new.status,
        cancel_reason=new.cancel_reason,
        previous=current["status"],
    )


HANDLERS: dict[type[Event], Handler] = {
    OrderPlaced: on_order_placed,
    InventoryReserved: on_step,
    InventoryRejected: on_step,
    InventoryReleased: on_step,
    PaymentCharged: on_step,
    PaymentFailed: on_step,
    PaymentRefunded: on_step,
    ShipmentScheduled: on_step,
    FulfillmentFailed: on_step,
}
