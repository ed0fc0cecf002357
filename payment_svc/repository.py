"""Payment's SQL, as thin functions over the named queries (one call per batch)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from eventing.queries import Queries

# The named queries themselves: other modules go through the functions below.
Q = Queries.load("payment_svc")
Conn = psycopg.Connection[Any]

__all__ = [
    "GATEWAY_DOWN",
    "Ledger",
    "Payment",
    "Refund",
    "gateway_call",
    "gateway_charge_answered",
    "gateway_clear_fault",
    "gateway_set_fault",
]


@dataclass
class Payment:
    order_id: uuid.UUID
    payment_id: uuid.UUID
    status: str
    amount_minor: int
    currency: str | None  # None: no amount was ever to be charged (see _on_released)
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


# -- the simulated payment gateway's own tables (payment_svc.gateway) ----------------------


def gateway_set_fault(conn: Conn, mode: str, for_s: float, latency_ms: int = 0) -> None:
    Q.execute(conn, "gateway_set_fault", {"mode": mode, "for_s": for_s, "latency_ms": latency_ms})


def gateway_clear_fault(conn: Conn) -> None:
    Q.execute(conn, "gateway_clear_fault")


# What the gateway's call raises (as the SQLSTATE of its error) while a fault holds it down.
GATEWAY_DOWN = "SG001"


def gateway_call(
    conn: Conn,
    kinds: list[str],
    order_ids: list[uuid.UUID],
    keys: list[str],
    amounts: list[int],
    currencies: list[str],
    outcomes: list[str],
) -> list[dict[str, Any]]:
    """Ledger entries, one per key (parallel sequences), a key already recorded kept as it
    is; returns each key's entry (idempotency_key, id, outcome). One statement, so in an
    autocommit connection one transaction; raises with SQLSTATE GATEWAY_DOWN when down."""
    return Q.all(
        conn,
        "gateway_call",
        {
            "kinds": kinds,
            "order_ids": order_ids,
            "keys": keys,
            "amounts": amounts,
            "currencies": currencies,
            "outcomes": outcomes,
        },
    )


def gateway_charge_answered(conn: Conn, order_id: uuid.UUID) -> bool:
    """Whether the gateway answered a charge for the order (by its idempotency key)."""
    return Q.scalar(conn, "gateway_charge_answered", {"order_id": order_id}) is not None
