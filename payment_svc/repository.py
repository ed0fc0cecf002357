"""Payment's SQL, as thin functions over the named queries (one call per batch)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from eventing.queries import Queries

Q = Queries.load("payment_svc")
Conn = psycopg.Connection[Any]

__all__ = ["Ledger", "Payment", "Refund"]


@dataclass
class Payment:
    order_id: uuid.UUID
    payment_id: uuid.UUID
    status: str
    amount_minor: int
    currency: str
    gateway_ref: str | None = None
    detail: str | None = None
    new: bool = False


@dataclass(frozen=True)
class Refund:
    order_id: uuid.UUID
    refund_id: uuid.UUID
    amount_minor: int
    reason: str
    gateway_ref: str


class Ledger:
    """The payments of one batch's orders, locked, changed in memory, written back at once."""

    def __init__(self, payments: dict[uuid.UUID, Payment]) -> None:
        self.payments = payments
        self.refunds: list[Refund] = []
        self.settled: list[uuid.UUID] = []

    @classmethod
    def load(cls, conn: Conn, order_ids: set[uuid.UUID]) -> Ledger:
        rows = Q.all(conn, "lock_payments", {"order_ids": sorted(order_ids)})
        return cls(
            {
                r["order_id"]: Payment(
                    r["order_id"],
                    r["payment_id"],
                    r["status"],
                    r["amount_minor"],
                    r["currency"],
                    r["gateway_ref"],
                )
                for r in rows
            }
        )

    def status(self, order_id: uuid.UUID) -> str | None:
        p = self.payments.get(order_id)
        return None if p is None else p.status

    def add(self, payment: Payment) -> None:
        payment.new = True
        self.payments[payment.order_id] = payment

    def flush(self, conn: Conn) -> None:
        Q.copy(
            conn,
            "copy_payments",
            (
                (
                    p.order_id,
                    p.payment_id,
                    p.status,
                    p.amount_minor,
                    p.currency,
                    p.gateway_ref,
                    p.detail,
                )
                for p in self.payments.values()
                if p.new
            ),
        )
        if self.refunds:
            Q.copy(
                conn,
                "copy_refunds",
                (
                    (r.order_id, r.refund_id, r.amount_minor, r.reason, r.gateway_ref)
                    for r in self.refunds
                ),
            )
            Q.execute(conn, "mark_refunded_many", {"order_ids": [r.order_id for r in self.refunds]})
        if self.settled:
            Q.execute(conn, "mark_settled_many", {"order_ids": self.settled})
