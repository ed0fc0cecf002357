"""Order's SQL, as thin functions over the named queries (set-based: one call per batch)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from eventing.queries import Queries
from order_svc.domain import COMPENSATIONS, Facts, Status
from shared_events.envelope import Event

Q = Queries.load("order_svc")
Conn = psycopg.Connection[Any]

__all__ = ["Q", "facts_of", "lock_orders", "record_steps", "set_statuses"]


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
            )
            for e in events
        ),
    )
    return {e.order_id for e in events}


def lock_orders(conn: Conn, order_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Status]:
    """Create stubs for orders not seen yet, lock all of them, return their current status."""
    ids = sorted(set(order_ids))
    # An event may overtake the OrderPlaced of an order placed elsewhere: keep a stub.
    Q.execute(conn, "insert_stub_orders", {"order_ids": ids})
    rows = Q.all(conn, "lock_orders", {"order_ids": ids})
    return {r["order_id"]: Status(r["status"], r["cancel_reason"]) for r in rows}


def facts_of(conn: Conn, order_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Facts]:
    steps: dict[uuid.UUID, list[tuple[str, str | None]]] = defaultdict(list)
    for r in Q.all(conn, "step_facts", {"order_ids": list(order_ids)}):
        steps[r["order_id"]].append((r["event_type"], r["reason"]))
    return {oid: Facts.of(s) for oid, s in steps.items()}


def set_statuses(conn: Conn, updates: dict[uuid.UUID, Status]) -> None:
    if updates:
        Q.execute(
            conn,
            "set_statuses",
            {
                "order_ids": list(updates),
                "statuses": [s.status for s in updates.values()],
                "cancel_reasons": [s.cancel_reason for s in updates.values()],
            },
        )
