"""Payment's SQL, as thin functions over the named queries."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from eventing.queries import Queries

Q = Queries.load("payment_svc")
Conn = psycopg.Connection[Any]

__all__ = ["insert_payment", "insert_refund", "payment_for_order"]


def payment_for_order(conn: Conn, order_id: uuid.UUID) -> dict[str, Any] | None:
    return Q.one(conn, "payment_for_order", {"order_id": order_id})


def insert_payment(
    conn: Conn,
    order_id: uuid.UUID,
    payment_id: uuid.UUID,
    status: str,
    amount: int,
    currency: str,
    gateway_ref: str | None,
    detail: str | None,
) -> None:
    Q.execute(
        conn,
        "insert_payment",
        {
            "order_id": order_id,
            "payment_id": payment_id,
            "status": status,
            "amount_minor": amount,
            "currency": currency,
            "gateway_ref": gateway_ref,
            "detail": detail,
        },
    )


def insert_refund(
    conn: Conn,
    order_id: uuid.UUID,
    refund_id: uuid.UUID,
    amount: int,
    reason: str,
    gateway_ref: str,
) -> None:
    Q.execute(
        conn,
        "insert_refund",
        {
            "order_id": order_id,
            "refund_id": refund_id,
            "amount_minor": amount,
            "reason": reason,
            "gateway_ref": gateway_ref,
        },
    )
    Q.execute(conn, "mark_refunded", {"order_id": order_id})
