"""The CLI's own SQL, as named functions: one place for every query the tools run themselves.

The queries live in `saga_cli/sql/` (dlq.sql, fault.sql, audit.sql); the runtime tables'
(`parked`, `outbox`) reads of `saga dlq`, `saga trace` and the console's live view are the
shared runtime's own named queries (eventing/sql/queries.sql), reached from here only. A
service's own tables are read through that service's repository (e.g.
`order_svc.repository.get_order`).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from eventing.queries import Queries

__all__ = [
    "audit_idle_orders",
    "audit_money",
    "audit_orders",
    "audit_parked",
    "audit_repeated_steps",
    "audit_reservations",
    "audit_shipments",
    "audit_skus",
    "audit_steps",
    "audit_unsent",
    "dlq_get",
    "dlq_held_behind",
    "dlq_list",
    "dlq_redrive_all",
    "dlq_redrive_one",
    "dlq_seq_issued",
    "fault_status",
    "outbox_backlog",
    "parked_counts",
    "parked_for_order",
]

Conn = psycopg.Connection[Any]
# Order ids as text (the audit keeps them so), or None for every order.
OrderIds = list[str] | None

_RUNTIME = Queries.load("eventing")
_DLQ = Queries.load("saga_cli", "sql/dlq.sql")
_FAULT = Queries.load("saga_cli", "sql/fault.sql")
_AUDIT = Queries.load("saga_cli", "sql/audit.sql")


# -- dead letters (`saga dlq`): a service database's `parked` table ------------------------


def dlq_list(conn: Conn, include_retrying: bool = False) -> list[dict[str, Any]]:
    """The dead entries (and the retrying ones if asked), oldest first."""
    return _RUNTIME.all(conn, "dlq_list", {"include_retrying": include_retrying})


def dlq_get(conn: Conn, seq: int) -> dict[str, Any] | None:
    """One entry, every column (the original message included)."""
    return _RUNTIME.one(conn, "dlq_get", {"seq": seq})


def dlq_redrive_one(conn: Conn, seq: int) -> list[dict[str, Any]]:
    """Entry `seq` back to retrying with a fresh budget if it is dead (else no row)."""
    return _RUNTIME.all(conn, "dlq_redrive", {"seq": seq, "all": False})


def dlq_redrive_all(conn: Conn) -> list[dict[str, Any]]:
    """Every dead entry back to retrying with a fresh budget; the rows moved."""
    return _RUNTIME.all(conn, "dlq_redrive", {"seq": None, "all": True})


def dlq_seq_issued(conn: Conn) -> int | None:
    """The highest entry number ever handed out (an id above it never existed)."""
    value: int | None = _DLQ.scalar(conn, "dlq_seq_issued")
    return value


def dlq_held_behind(conn: Conn, order_id: uuid.UUID | None, seq: int) -> int:
    """Later messages of the same order the service keeps waiting behind entry `seq`."""
    return int(_DLQ.scalar(conn, "dlq_held_behind", {"order_id": order_id, "seq": seq}))


def parked_for_order(conn: Conn, order_id: uuid.UUID) -> list[dict[str, Any]]:
    """The order's parked messages in this service, oldest first (`saga trace`)."""
    return _RUNTIME.all(conn, "parked_for_order", {"order_id": order_id})


def parked_counts(conn: Conn) -> tuple[int, int]:
    """Parked messages: (retrying, dead)."""
    retrying, dead = _RUNTIME.rows(conn, "metrics_parked")[0]
    return retrying, dead


def outbox_backlog(conn: Conn) -> tuple[int, float]:
    """Outbox rows not sent yet, and the age in seconds of the oldest (0 if none)."""
    unsent, oldest_s = _RUNTIME.rows(conn, "metrics_outbox")[0]
    return unsent, oldest_s


# -- fault injection (`saga fault`): the payment database's gateway_faults ------------------


def fault_status(conn: Conn) -> dict[str, Any] | None:
    """The gateway's fault row (mode, latency_ms, until, active, remaining_s), if any."""
    return _FAULT.one(conn, "fault_status")


# -- the invariant audit (`saga audit`): every query takes the order ids, None for all ----
# Plain tuples where the audit reads every order (building 100k dicts per table is its
# biggest cost otherwise), and with no prepared statement: each runs once per audit.


def _tuples(conn: Conn, name: str, ids: OrderIds) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(_AUDIT[name], {"ids": ids})
        return cur.fetchall()


def audit_orders(conn: Conn, ids: OrderIds) -> list[tuple[Any, ...]]:
    """(order_id text, status, cancel_reason, total_minor, archived_at), archive included."""
    return _tuples(conn, "audit_orders", ids)


def audit_idle_orders(conn: Conn, ids: OrderIds) -> list[tuple[Any, ...]]:
    """(order_id text, status, idle_s) of the non-terminal orders."""
    return _tuples(conn, "audit_idle_orders", ids)


def audit_repeated_steps(conn: Conn, ids: OrderIds) -> list[tuple[Any, ...]]:
    """(order_id text, kind, n) of the kinds of fact an order's record holds more than once."""
    return _tuples(conn, "audit_repeated_steps", ids)


def audit_reservations(conn: Conn, ids: OrderIds) -> list[tuple[Any, ...]]:
    """(order_id text, status, archived_at) of inventory's reservations."""
    return _tuples(conn, "audit_reservations", ids)


def audit_money(conn: Conn, ids: OrderIds) -> list[tuple[Any, ...]]:
    """(order_id text, payment status, charges, charged, refunds, refunded, archived_at)."""
    return _tuples(conn, "audit_money", ids)


def audit_shipments(conn: Conn, ids: OrderIds) -> list[tuple[Any, ...]]:
    """(order_id text, status, archived_at) of fulfillment's shipments."""
    return _tuples(conn, "audit_shipments", ids)


def audit_skus(conn: Conn) -> list[dict[str, Any]]:
    """Inventory's stock counters beside its ledger of adjustments and its reservations."""
    return _AUDIT.all(conn, "audit_skus")


def audit_steps(conn: Conn, ids: list[str]) -> list[dict[str, Any]]:
    """(order_id text, event_type, reason) of every step of these orders."""
    return _AUDIT.all(conn, "audit_steps", {"ids": ids})


def audit_parked(conn: Conn, ids: OrderIds) -> list[dict[str, Any]]:
    """A service database's parked messages of these orders (seq, order_id text, event_type,
    state, attempts, error_kind, last_error, overdue_s)."""
    return _AUDIT.all(conn, "audit_parked", {"ids": ids})


def audit_unsent(conn: Conn, ids: OrderIds) -> list[dict[str, Any]]:
    """A service database's unsent outbox rows of these orders (order_id, n, age_s)."""
    return _AUDIT.all(conn, "audit_unsent", {"ids": ids})
