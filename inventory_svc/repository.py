"""Inventory's SQL, as thin functions over the named queries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from eventing.queries import Queries
from inventory_svc.domain import Level

Q = Queries.load("inventory_svc")
Conn = psycopg.Connection[Any]

__all__ = [
    "Q",
    "hold",
    "insert_reservation",
    "lapsed_reservations",
    "lock_levels",
    "move_stock",
    "reservation_for_order",
    "set_status",
    "set_stock",
    "stock_levels",
]


def lock_levels(conn: Conn, skus: list[str]) -> dict[str, Level]:
    rows = Q.all(conn, "lock_stock", {"skus": sorted(skus)})
    return {r["sku"]: Level(r["on_hand"], r["reserved"]) for r in rows}


def hold(conn: Conn, lines: list[tuple[str, int]]) -> None:
    Q.executemany(conn, "hold_stock", [{"sku": s, "qty": q} for s, q in lines])


def move_stock(conn: Conn, move: str, lines: list[tuple[str, int]]) -> None:
    if move == "none":
        return
    name = {"unhold": "unhold_stock", "ship": "ship_stock"}[move]
    # Sorted, like lock_stock, so concurrent transactions lock rows in one order.
    Q.executemany(conn, name, [{"sku": s, "qty": q} for s, q in sorted(lines)])


def insert_reservation(
    conn: Conn,
    reservation_id: uuid.UUID,
    order_id: uuid.UUID,
    lines: list[tuple[str, int]],
    expires_at: datetime,
) -> None:
    Q.execute(
        conn,
        "insert_reservation",
        {
            "reservation_id": reservation_id,
            "order_id": order_id,
            "items": Jsonb([{"sku": s, "qty": q} for s, q in lines]),
            "expires_at": expires_at,
        },
    )


def reservation_for_order(conn: Conn, order_id: uuid.UUID) -> dict[str, Any] | None:
    return Q.one(conn, "reservation_for_order", {"order_id": order_id})


def set_status(
    conn: Conn, reservation_id: uuid.UUID, status: str, reason: str | None = None
) -> None:
    Q.execute(
        conn,
        "set_reservation_status",
        {"reservation_id": reservation_id, "status": status, "reason": reason},
    )


def lapsed_reservations(conn: Conn, limit: int) -> list[dict[str, Any]]:
    return Q.all(conn, "lapsed_reservations", {"limit": limit})


def set_stock(conn: Conn, sku: str, qty: int, reason: str) -> dict[str, int]:
    """Set on-hand stock of `sku` (creating it); refuses to go below what is reserved."""
    if qty < 0:
        raise ValueError(f"quantity for {sku} must be >= 0, got {qty}")
    with conn.transaction():
        created = Q.scalar(conn, "upsert_stock", {"sku": sku, "qty": qty})
        if created is not None:
            Q.execute(conn, "insert_adjustment", {"sku": sku, "delta": qty, "reason": reason})
            return {"on_hand": qty, "reserved": 0, "delta": qty}
        row = Q.one(conn, "stock_row", {"sku": sku})
        assert row is not None
        if qty < row["reserved"]:
            raise ValueError(
                f"{sku}: cannot set on-hand to {qty}, {row['reserved']} are reserved by orders "
                "in flight; wait for them or set a higher quantity"
            )
        delta = qty - row["on_hand"]
        if delta:
            Q.execute(conn, "set_on_hand", {"sku": sku, "qty": qty, "delta": delta})
            Q.execute(conn, "insert_adjustment", {"sku": sku, "delta": delta, "reason": reason})
        return {"on_hand": qty, "reserved": row["reserved"], "delta": delta}


def stock_levels(conn: Conn) -> list[dict[str, Any]]:
    return Q.all(conn, "stock_levels")
