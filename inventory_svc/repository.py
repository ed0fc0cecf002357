"""Inventory's SQL, as thin functions over the named queries."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from eventing.queries import Queries
from inventory_svc.domain import Level

# The named queries themselves: other modules go through the functions below.
Q = Queries.load("inventory_svc")
Conn = psycopg.Connection[Any]

__all__ = [
    "ROLLUP_COMMITTED",
    "Book",
    "Q",
    "Reservation",
    "StockRow",
    "lapsed_reservations",
    "set_status",
    "set_stock",
    "stock_levels",
]


@dataclass
class Reservation:
    reservation_id: uuid.UUID
    order_id: uuid.UUID
    status: str
    lines: list[tuple[str, int]]
    expires_at: datetime
    release_reason: str | None = None
    new: bool = False
    dirty: bool = False
    trace: str | None = None  # the saga's trace context where it was made


@dataclass
class StockRow:
    on_hand: int
    reserved: int
    shipped: int
    dirty: bool = False

    @property
    def level(self) -> Level:
        return Level(self.on_hand, self.reserved)


class Book:
    """The reservations and stock rows one batch touches, locked, changed in memory, and
    written back with one statement per table: a batch costs a handful of round trips."""

    def __init__(
        self, reservations: dict[uuid.UUID, Reservation], stock: dict[str, StockRow]
    ) -> None:
        self.reservations = reservations
        self.stock = stock

    @classmethod
    def load(cls, conn: Conn, order_ids: set[uuid.UUID], skus: set[str]) -> Book:
        # Rows are locked in key order (here and in every writer) so that concurrent
        # batches cannot deadlock.
        reservations = {
            r["order_id"]: Reservation(
                r["reservation_id"],
                r["order_id"],
                r["status"],
                [(i["sku"], int(i["qty"])) for i in r["items"]],
                r["expires_at"],
                r["release_reason"],
            )
            for r in Q.all(conn, "lock_reservations", {"order_ids": sorted(order_ids)})
        }
        skus |= {sku for res in reservations.values() for sku, _ in res.lines}
        stock = {
            r["sku"]: StockRow(r["on_hand"], r["reserved"], r["shipped"])
            for r in Q.all(conn, "lock_stock_levels", {"skus": sorted(skus)})
        }
        return cls(reservations, stock)

    def move(self, how: str, lines: list[tuple[str, int]]) -> None:
        if how not in ("hold", "unhold", "ship"):
            return  # e.g. a refused request's lines, which may name SKUs we do not stock
        for sku, qty in lines:
            row = self.stock[sku]
            if how == "hold":
                row.reserved += qty
            elif how == "unhold":
                row.reserved -= qty
            elif how == "ship":
                row.reserved -= qty
                row.on_hand -= qty
                row.shipped += qty
            else:
                continue
            row.dirty = True

    def flush(self, conn: Conn) -> None:
        Q.copy(
            conn,
            "copy_reservations",
            (
                (
                    r.reservation_id,
                    r.order_id,
                    r.status,
                    json.dumps([{"sku": s, "qty": q} for s, q in r.lines]),
                    r.expires_at,
                    r.trace,
                    r.release_reason,
                )
                for r in self.reservations.values()
                if r.new
            ),
        )
        changed = [r for r in self.reservations.values() if r.dirty and not r.new]
        if changed:
            Q.execute(
                conn,
                "write_reservations",
                {
                    "reservation_ids": [r.reservation_id for r in changed],
                    "statuses": [r.status for r in changed],
                    "release_reasons": [r.release_reason for r in changed],
                },
            )
        rows = {sku: row for sku, row in self.stock.items() if row.dirty}
        if rows:
            Q.execute(
                conn,
                "write_stock_levels",
                {
                    "skus": list(rows),
                    "on_hand": [r.on_hand for r in rows.values()],
                    "reserved": [r.reserved for r in rows.values()],
                    "shipped": [r.shipped for r in rows.values()],
                },
            )


# Run on an archived reservations partition just before it is dropped: the committed
# stock it holds is rolled up first (eventing.archive.ArchivedTable.before_drop).
ROLLUP_COMMITTED: str = Q["rollup_committed"]


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
