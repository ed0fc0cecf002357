"""Order's SQL, as thin functions over the named queries (set-based: one call per batch)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from eventing.queries import Queries
from order_svc.domain import COMPENSATIONS, Facts, Status
from shared_events.envelope import Event
from shared_events.order import OrderPlaced

# The named queries themselves: other modules go through the functions below. (`Q` stays
# importable until the last modules that still use it raw have moved to the functions.)
Q = Queries.load("order_svc")
Conn = psycopg.Connection[Any]

__all__ = [
    "OrderState",
    "Q",
    "admission_stats",
    "bench_completions_between",
    "bench_latency_ms",
    "bench_outcomes",
    "bench_progress",
    "copy_orders",
    "count_in_flight",
    "get_order",
    "known_steps",
    "lock_orders",
    "order_details",
    "orders_not_terminal",
    "placement_lookup",
    "prices_for",
    "record_steps",
    "set_price",
    "start_from_event",
    "step_payloads",
    "steps_of",
    "write_orders",
]


@dataclass(frozen=True)
class OrderState:
    status: Status
    facts: Facts
    created_at: datetime | None = None


def record_steps(conn: Conn, events: Sequence[Event]) -> set[uuid.UUID]:
    """Add events to their orders' saga records; returns the orders that got a step.

    A plain insert (`Queries.copy`: COPY for a batch), not INSERT ... ON CONFLICT: every
    event here is new (the inbox dedupes what was consumed, placement records its own
    OrderPlaced once); the payload goes in as pydantic's JSON, with no Python round trip.
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
    rows = Q.rows(conn, "stub_and_lock_orders", {"order_ids": ids})
    if len(rows) < len(ids):  # inserted meanwhile by another transaction: now committed
        rows += Q.rows(conn, "lock_orders", {"order_ids": sorted(set(ids) - {r[0] for r in rows})})
    return {
        oid: OrderState(Status(status, reason), Facts(frozenset(seen), failure, expired), created)
        for oid, status, reason, seen, failure, expired, created in rows
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


# -- placing orders ---------------------------------------------------------------------


def prices_for(conn: Conn, skus: list[str]) -> list[dict[str, Any]]:
    """The price list's rows (sku, price_minor, currency) of those of `skus` it has."""
    return Q.all(conn, "prices_for", {"skus": skus})


def set_price(conn: Conn, sku: str, price_minor: int, currency: str = "USD") -> None:
    Q.execute(conn, "set_price", {"sku": sku, "price_minor": price_minor, "currency": currency})


def placement_lookup(
    conn: Conn, keys: list[str], skus: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """In one statement: the orders placed under these keys, running or archived (by key:
    order_id, status, request_hash), and the price list's rows of these SKUs (by sku:
    price_minor, currency)."""
    known: dict[str, dict[str, Any]] = {}
    prices: dict[str, dict[str, Any]] = {}
    for row in Q.all(conn, "placement_lookup", {"keys": keys, "skus": skus}):
        (prices if row["kind"] == "price" else known)[row["key"]] = row
    return known, prices


def copy_orders(conn: Conn, rows: Iterable[Sequence[Any]]) -> None:
    """New order rows, in the columns of `copy_orders` (order_id, status, origin,
    customer_id, items, total_minor, currency, card_token, ship_to, idempotency_key,
    request_hash, seen)."""
    Q.copy(conn, "copy_orders", rows)


def start_from_event(conn: Conn, event: OrderPlaced) -> bool:
    """The order row of an OrderPlaced another system published: created (True), or the
    details filled into a stub an earlier event left (False; a full row stays as it is)."""
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
    if Q.scalar(conn, "insert_order_from_event", details) is not None:
        return True
    Q.execute(conn, "fill_order_details", details)  # fills a stub, if it is one
    return False


# -- reading the saga record --------------------------------------------------------------


def get_order(conn: Conn, order_id: uuid.UUID) -> dict[str, Any] | None:
    """The order as the service knows it, running or archived (None: no such order)."""
    return Q.one(conn, "get_order", {"order_id": order_id})


def steps_of(conn: Conn, order_id: uuid.UUID) -> list[dict[str, Any]]:
    """The order's recorded steps, in the order they happened."""
    return Q.all(conn, "steps_of", {"order_id": order_id})


def orders_not_terminal(conn: Conn, older_than_s: float, limit: int) -> list[dict[str, Any]]:
    """Orders still PENDING or CANCELLING with no change for `older_than_s`, oldest first."""
    return Q.all(conn, "orders_not_terminal", {"older_than_s": older_than_s, "limit": limit})


def count_in_flight(conn: Conn) -> int:
    """Sagas not yet terminal (PENDING or CANCELLING)."""
    return int(Q.scalar(conn, "count_in_flight"))


def admission_stats(conn: Conn, window_s: float) -> dict[str, Any] | None:
    """What admission control steers by: in_flight, and the number (ended) and p99_s of the
    sagas that ended in the last `window_s`."""
    return Q.one(conn, "admission_stats", {"window_s": window_s})


# -- a benchmark run's orders (`saga bench`: one customer id per run) ----------------------


def bench_progress(conn: Conn, customer_id: str) -> dict[str, Any] | None:
    """How many orders of the run were placed, and how many of them are terminal."""
    return Q.one(conn, "bench_progress", {"customer_id": customer_id})


def bench_latency_ms(conn: Conn, customer_id: str) -> dict[str, Any] | None:
    """pcts (p50, p95, p99) and max_ms placed-to-terminal, first_placed, last_placed and
    last_terminal of the run's finished orders."""
    return Q.one(conn, "bench_latency_ms", {"customer_id": customer_id})


def bench_completions_between(conn: Conn, customer_id: str, start: datetime, end: datetime) -> int:
    """Orders of the run that became terminal between `start` and `end`."""
    return int(
        Q.scalar(
            conn,
            "bench_completions_between",
            {"customer_id": customer_id, "start": start, "end": end},
        )
    )


def bench_outcomes(conn: Conn, customer_id: str) -> list[dict[str, Any]]:
    """The run's orders by status and cancel_reason (n), most frequent first."""
    return Q.all(conn, "bench_outcomes", {"customer_id": customer_id})
