"""The order service's reactions: record every step of the saga and derive the status."""

from __future__ import annotations

import uuid
from collections import defaultdict

from psycopg.types.json import Jsonb

from eventing.logging import for_event, get_logger
from eventing.tx import Tx
from order_svc import repository as repo
from order_svc.domain import derive_status
from shared_events.codec import PRODUCER_OF
from shared_events.envelope import Event
from shared_events.order import OrderPlaced

__all__ = ["CONSUMES", "handle"]

log = get_logger(__name__)
Q = repo.Q

# The saga record holds every event of the order, whoever produced it.
CONSUMES: frozenset[type[Event]] = frozenset(PRODUCER_OF)


def _start_from_event(tx: Tx, event: OrderPlaced) -> None:
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
    created = Q.scalar(tx.conn, "insert_order_from_event", details)
    if created is None:
        Q.execute(tx.conn, "fill_order_details", details)  # fills a stub, if it is one
    else:
        with for_event(event):
            log.info("saga started from an OrderPlaced published by another system")


def _reason(event: Event) -> str | None:
    reason = getattr(event.payload, "reason", None)
    return reason if isinstance(reason, str) else None


def handle(tx: Tx, events: list[Event]) -> None:
    """Record the steps, then derive each touched order's status from all its facts.

    Events of one order arrive from four topics in no set order, which is why the status
    is recomputed from the set of facts rather than moved along by each event.
    """
    # The runtime never hands a service its own events: an OrderPlaced here comes from
    # another system (ours was recorded when the order was placed).
    for e in events:
        if isinstance(e, OrderPlaced):
            _start_from_event(tx, e)
    current = repo.lock_orders(tx.conn, (e.order_id for e in events))
    if tx.unguarded:  # outside the inbox's window: our own record says if it is a repeat
        known = repo.known_steps(tx.conn, [e for e in events if e.event_id in tx.unguarded])
        events = [e for e in events if e.event_id not in known]
    repo.record_steps(tx.conn, events)
    by_order: dict[uuid.UUID, list[Event]] = defaultdict(list)
    for e in events:
        by_order[e.order_id].append(e)
    updates: dict[uuid.UUID, repo.OrderState] = {}
    for order_id, seen in by_order.items():
        old = current[order_id]
        facts = old.facts.with_steps((e.event_type, _reason(e)) for e in seen)
        new = derive_status(facts)
        if facts == old.facts:
            continue
        if new != old.status:
            with for_event(seen[-1]):
                if old.status.terminal:
                    log.error(
                        "event would change a terminal order; kept as it is",
                        status=old.status.status,
                        would_be=new.status,
                    )
                    new = old.status
                else:
                    log.info(
                        "order status changed",
                        status=new.status,
                        cancel_reason=new.cancel_reason,
                        previous=old.status.status,
                    )
        updates[order_id] = repo.OrderState(new, facts)
    repo.write_orders(tx.conn, updates)
