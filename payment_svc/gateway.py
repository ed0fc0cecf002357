"""A simulated payment gateway: deterministic outcomes, idempotency keys, fault injection.

`tok_declined` is declined, any other token is approved. The gateway keeps its own ledger
through its own connection (autocommit), outside the caller's transaction, as a remote
API would; callers pass an idempotency key so a retry never charges twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from eventing.errors import TransientError
from eventing.queries import Queries

__all__ = ["Gateway", "GatewayResult", "GatewayUnavailable", "clear_fault", "set_fault"]

Q = Queries.load("payment_svc")
DECLINED_TOKENS = frozenset({"tok_declined"})


class GatewayUnavailable(TransientError):
    """The gateway cannot be reached (simulated network partition)."""


@dataclass(frozen=True)
class GatewayResult:
    approved: bool
    reference: str


class Gateway:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._local = threading.local()

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:
                raise GatewayUnavailable(f"payment gateway unreachable: {exc}") from exc
            self._local.conn = conn
        return conn

    def _check_faults(self, conn: psycopg.Connection[Any]) -> None:
        fault = Q.one(conn, "gateway_active_fault")
        if fault is None:
            return
        if fault["mode"] == "down":
            raise GatewayUnavailable(
                f"payment gateway unavailable (fault injected until {fault['until']:%H:%M:%S})"
            )
        time.sleep(fault["latency_ms"] / 1000)

    def _record(
        self, kind: str, order_id: uuid.UUID, key: str, amount: int, currency: str, outcome: str
    ) -> GatewayResult:
        try:
            conn = self._conn()
            self._check_faults(conn)
            params = {
                "kind": kind,
                "order_id": order_id,
                "key": key,
                "amount_minor": amount,
                "currency": currency,
                "outcome": outcome,
            }
            row = Q.one(conn, "gateway_record", params) or Q.one(
                conn, "gateway_lookup", {"key": key}
            )
        except psycopg.OperationalError as exc:
            self._local.conn = None
            raise GatewayUnavailable(f"payment gateway connection lost: {exc}") from exc
        assert row is not None
        return GatewayResult(row["outcome"] == "approved", f"gw_{row['id']}")

    def charge(
        self, order_id: uuid.UUID, card_token: str, amount: int, currency: str
    ) -> GatewayResult:
        outcome = "declined" if card_token in DECLINED_TOKENS else "approved"
        return self._record("charge", order_id, f"charge:{order_id}", amount, currency, outcome)

    def refund(self, order_id: uuid.UUID, amount: int, currency: str) -> GatewayResult:
        return self._record("refund", order_id, f"refund:{order_id}", amount, currency, "approved")


def set_fault(conn: psycopg.Connection[Any], mode: str, for_s: float, latency_ms: int = 0) -> None:
    Q.execute(conn, "gateway_set_fault", {"mode": mode, "for_s": for_s, "latency_ms": latency_ms})


def clear_fault(conn: psycopg.Connection[Any]) -> None:
    Q.execute(conn, "gateway_clear_fault")
