"""Finding orders: by id (the timeline itself), or a customer's, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from saga_cli.console.queries import Q
from saga_cli.times import iso

__all__ = ["MAX_RESULTS", "orders_of_customer"]

MAX_RESULTS = 100


def _ms(start: datetime, end: datetime | None) -> float | None:
    return round((end - start).total_seconds() * 1000, 1) if end is not None else None


def orders_of_customer(
    conn: psycopg.Connection[Any], customer_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    rows = Q.all(
        conn,
        "orders_of_customer",
        {"customer_id": customer_id, "limit": max(1, min(limit, MAX_RESULTS))},
    )
    return [
        {
            "order_id": str(r["order_id"]),
            "status": r["status"],
            "cancel_reason": r["cancel_reason"],
            "customer_id": r["customer_id"],
            "total_minor": r["total_minor"],
            "currency": r["currency"],
            "created_at": iso(r["created_at"]),
            "terminal_at": iso(r["terminal_at"]),
            "duration_ms": _ms(r["created_at"], r["terminal_at"]),
            "archived": r["archived_at"] is not None,
        }
        for r in rows
    ]
