"""The order service's reactions: record every step of the saga and derive the status."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

from eventing.logging import for_event, get_logger
from eventing.tx import Tx
from order_svc import repository as repo
from order_svc.domain import LAPSE, Facts, contradiction, derive_status, fact_kind
from order_svc.metrics import SAGA_DURATION
from shared_events.codec import PRODUCER_OF
from shared_events.envelope import Event
from shared_events.order import OrderPlaced

__all__ = ["CONSUMES", "handle"]

log = get_logger(__name__)

# The saga record holds every event of the order, whoever produced it.
CONSUMES: frozenset[type[Event]] = frozenset(PRODUCER_OF)


def _start_from_event(tx: Tx, event: OrderPlaced) -> None:
    """Our own OrderPlaced is already recorded; one from another system starts a saga here."""
    if repo.start_from_event(tx.conn, event):
        with for_event(event):
            log.info("saga started from an OrderPlaced published by another system")


def _placed_details(event: OrderPlaced) -> dict[str, Any]:
    """An OrderPlaced's content as the order row keeps it (what a second one is compared to)."""
    p = event.payload
    return {
        "customer_id": p.customer_id,
        "items": [li.model_dump() for li in p.items],
        "total_minor": p.total_minor,
        "currency": p.currency,
        "card_token": p.card_token,
        "ship_to": p.ship_to.model_dump(mode="json"),
    }


def _same_fact(tx: Tx, event: Event) -> bool:
    """Whether `event` says what the saga record already holds under another event id."""
    if isinstance(event, OrderPlaced):
        details = repo.order_details(tx.conn, event.order_id)
        return details == _placed_details(event)
    recorded = repo.step_payloads(tx.conn, event.order_id, event.event_type)
    return json.loads(event.payload.model_dump_json()) in recorded


def _set_aside(tx: Tx, event: Event, reason: str) -> None:
    """A dead letter that holds nothing back: the first fact stands and the saga goes on, and
    the conflict waits in the DLQ (and the trace, and the audit) for an operator."""
    tx.set_aside(
        event,
        "conflict",
        reason,
        action="find out why its producer sent it; `saga dlq redrive` acknowledges it",
        message="conflicting event dead-lettered; the first one stands",
    )


def _without_contradictions(
    tx: Tx, current: dict[uuid.UUID, repo.OrderState], events: list[Event]
) -> list[Event]:
    """The events that can be facts of their sagas; the others are set aside as conflicts.

    An order's saga has one event of each type and one outcome per step (order_svc.domain
    .contradiction). Another event id for a fact already recorded is a copy (e.g. another
    system retried under a new id) when its content is the same: dropped, quietly; with
    other content it contradicts the record: the first one wins. The inbox has already
    dropped every repeat of one event id.
    """
    kinds: dict[uuid.UUID, frozenset[str]] = {}
    kept = []
    for e in events:
        if e.order_id not in kinds:
            kinds[e.order_id] = _recorded_kinds(tx, e.order_id, current[e.order_id].facts)
        kind = fact_kind(e.event_type, _reason(e))
        why = contradiction(kinds[e.order_id], kind)
        if why is None:
            kinds[e.order_id] |= {kind}
            kept.append(e)
        elif kind in kinds[e.order_id] and _same_fact(tx, e):
            with for_event(e):
                log.info("the same fact again under another event id; not recorded twice")
        else:
            other = " with other content" if kind in kinds[e.order_id] else ""
            _set_aside(
                tx,
                e,
                f"conflict: {e.event_type} {e.event_id} from {e.producer}{other} contradicts "
                f"the saga record: {why}",
            )
    return kept


def _recorded_kinds(tx: Tx, order_id: uuid.UUID, facts: Facts) -> frozenset[str]:
    """The kinds of fact the saga record holds. The facts kept on the order row tell all but
    one thing: with a lapse on record, whether a release of another reason is too (then the
    steps are read: a saga that both lapsed and was released is rare)."""
    kinds = set(facts.seen)
    if "InventoryReleased" in kinds and facts.expired:
        reasons = {
            p.get("reason") for p in repo.step_payloads(tx.conn, order_id, "InventoryReleased")
        }
        kinds.discard("InventoryReleased")
        kinds |= {fact_kind("InventoryReleased", r) for r in reasons} | {LAPSE}
    return frozenset(kinds)


def _reason(event: Event) -> str | None:
    # From the fields themselves: getattr on a payload without the field goes through
    # pydantic's __getattr__ and an AttributeError, for each event of each batch.
    reason = event.payload.__dict__.get("reason")
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
    events = _without_contradictions(tx, current, events)
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
                    # One INFO line per saga, at its end; the steps before are DEBUG.
                    (log.info if new.terminal else log.debug)(
                        "order status changed",
                        status=new.status,
                        cancel_reason=new.cancel_reason,
                        previous=old.status.status,
                    )
                    if new.terminal and old.created_at is not None:
                        SAGA_DURATION.labels(new.cancel_reason or "completed").observe(
                            (tx.now - old.created_at).total_seconds()
                        )
        updates[order_id] = repo.OrderState(new, facts)
    repo.write_orders(tx.conn, updates)
