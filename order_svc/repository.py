"""Order's SQL, as thin functions over the named queries (set-based: one call per batch)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from eventing.queries import Queries
from order_svc.domain import COMPENSATIONS, Facts, Status
from shared_events.envelope import Event

Q = Queries.load("order_svc")
Conn = psycopg.Connection[Any]

__all__ = ["OrderState", "Q", "known_steps", "lock_orders", "record_steps", "write_orders"]


@dataclass(frozen=True)
class OrderState:
    status: Status
    facts: Facts
    created_at: datetime | None = None


def record_steps(conn: Conn, events: Sequence[Event]) -> set[uuid.UUID]:
    """Add events to their orders' saga records; returns the orders that got a step.

    COPY, not INSERT ... ON CONFLICT: every event here is new (the inbox dedupes what
    was consumed, placement records its own OrderPlaced once), and COPY is the cheapest
    way in for a batch; the payload goes in as pydantic's JSON, with no Python round trip.
    """
    if not events:
        return set()
    Q.copy(
        conn,
        "copy_steps",
        (
            (
                e.event_id,
                e.order_id,
                e.event_type,
                e.producer,
                e.occurred_at,
                e.causation_id,
                e.event_type in COMPENSATIONS,
                e.payload.model_dump_json(),
                e.traceparent,
            )
            for e in events
        ),
    )
    return {e.order_id for e in events}


def lock_orders(conn: Conn, order_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, OrderState]:
    """Create stubs for orders not seen yet, lock all of them, return their status and facts."""
    ids = sorted(set(order_ids))
    # An event may overtake the OrderPlaced of an order placed elsewhere: keep a stub.
    Q.execute(conn, "insert_stub_orders", {"order_ids": ids})
    return {
        oid: OrderState(Status(status, reason), Facts(frozenset(seen), failure, expired), created)
        for oid, status, reason, seen, failure, expired, created in Q.rows(
            conn, "lock_orders", {"order_ids": ids}
        )
    }


def known_steps(conn: Conn, events: Sequence[Event]) -> set[uuid.UUID]:
    """Which of these events the saga record already holds (for events the inbox could not
    vouch for; it probes every partition of saga_steps, so it is not for the hot path)."""
    if not events:
        return set()
    rows = Q.rows(
        conn,
        "known_steps",
        {
            "order_ids": list({e.order_id for e in events}),
            "event_ids": [e.event_id for e in events],
        },
    )
    return {r[0] for r in rows}


def write_orders(conn: Conn, updates: dict[uuid.UUID, OrderState]) -> None:
    if updates:
        Q.execute(
            conn,
            "write_orders",
            {
                "order_ids": list(updates),
                "statuses": [u.status.status for u in updates.values()],
                "cancel_reasons": [u.status.cancel_reason for u in updates.values()],
                "seen": [_text_array(u.facts.seen) for u in updates.values()],
                "payment_failures": [u.facts.payment_failure for u in updates.values()],
                "expired": [u.facts.expired for u in updates.values()],
            },
        )


def _text_array(values: Iterable[str]) -> str:
    # An array of arrays cannot be ragged in PostgreSQL: each order's set travels as the
    # text of a text[] literal (event type names need no quoting).
    return "{" + ",".join(sorted(values)) + "}"


def order_details(conn: Conn, order_id: uuid.UUID) -> dict[str, Any] | None:
    """What the order row holds of its OrderPlaced (None: only a stub so far)."""
    row = Q.one(conn, "order_details", {"order_id": order_id})
    return None if row is None or row["customer_id"] is None else dict(row)


def step_payloads(conn: Conn, order_id: uuid.UUID, event_type: str) -> list[Any]:
    """The payloads of the order's recorded steps of one type (a rare look: conflicts only)."""
    rows = Q.rows(conn, "step_payloads", {"order_id": order_id, "event_type": event_type})
    return [r[0] for r in rows]


__all__ += ["order_details", "step_payloads"]
