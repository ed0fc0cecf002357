"""Order's SQL, as thin functions over the named queries."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from eventing.queries import Queries
from order_svc.domain import COMPENSATIONS, Facts, Status
from shared_events.envelope import Event

Q = Queries.load("order_svc")
Conn = psycopg.Connection[Any]

__all__ = ["Q", "facts_of", "record_step", "set_status"]


def record_step(conn: Conn, event: Event) -> bool:
    """Add `event` to the order's saga record; False if it was already there."""
    n = Q.execute(
        conn,
        "insert_step",
        {
            "event_id": event.event_id,
            "order_id": event.order_id,
            "event_type": event.event_type,
            "producer": event.producer,
            "occurred_at": event.occurred_at,
            "causation_id": event.causation_id,
            "compensation": event.event_type in COMPENSATIONS,
            "payload": Jsonb(event.payload.model_dump(mode="json")),
        },
    )
    return n == 1


def facts_of(conn: Conn, order_id: uuid.UUID) -> Facts:
    rows = Q.all(conn, "step_facts", {"order_id": order_id})
    return Facts.of((r["event_type"], r["reason"]) for r in rows)


def set_status(conn: Conn, order_id: uuid.UUID, status: Status) -> None:
    Q.execute(
        conn,
        "set_status",
        {
            "order_id": order_id,
            "status": status.status,
            "cancel_reason": status.cancel_reason,
            "terminal": status.terminal,
        },
    )
