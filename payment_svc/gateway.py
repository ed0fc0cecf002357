"""A simulated payment gateway: deterministic outcomes, idempotency keys, fault injection.

`tok_declined` is declined, any other token is approved. The gateway keeps its own ledger
through its own connection (autocommit), outside the caller's transaction, as a remote
API would; callers pass an idempotency key so a retry never charges twice. Calls take a
list, like a gateway's batch API, so a batch of charges is one round trip.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from eventing.errors import TransientError
from payment_svc import repository as repo

__all__ = [
    "Gateway",
    "GatewayResult",
    "GatewayUnavailable",
    "clear_fault",
    "set_fault",
]

DECLINED_TOKENS = frozenset({"tok_declined"})


class GatewayUnavailable(TransientError):
    """The gateway cannot be reached (simulated network partition)."""


@dataclass(frozen=True)
class GatewayResult:
    approved: bool
    reference: str


@dataclass(frozen=True)
class _Op:
    kind: str
    order_id: uuid.UUID
    key: str
    amount: int
    currency: str
    outcome: str


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

    def close(self) -> None:
        """Close this thread's connection (the gateway reconnects when called again)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _record(self, ops: list[_Op]) -> dict[str, GatewayResult]:
        """Record operations (idempotent by key); return each key's outcome."""
        if not ops:
            return {}
        try:
            rows = repo.gateway_call(
                self._conn(),
                kinds=[o.kind for o in ops],
                order_ids=[o.order_id for o in ops],
                keys=[o.key for o in ops],
                amounts=[o.amount for o in ops],
                currencies=[o.currency for o in ops],
                outcomes=[o.outcome for o in ops],
            )
        except psycopg.OperationalError as exc:
            self._local.conn = None
            raise GatewayUnavailable(f"payment gateway connection lost: {exc}") from exc
        except psycopg.Error as exc:
            if exc.sqlstate == repo.GATEWAY_DOWN:
                raise GatewayUnavailable(exc.diag.message_primary or str(exc)) from exc
            raise
        return {
            r["idempotency_key"]: GatewayResult(r["outcome"] == "approved", f"gw_{r['id']}")
            for r in rows
        }

    def charge_answered(self, order_id: uuid.UUID) -> bool:
        """Whether the gateway already answered a charge for the order, by the charge's
        idempotency key (what a real gateway is asked). Past a deadline only: not hot."""
        try:
            return repo.gateway_charge_answered(self._conn(), order_id)
        except psycopg.OperationalError as exc:
            self._local.conn = None
            raise GatewayUnavailable(f"payment gateway connection lost: {exc}") from exc

    def charge_many(
        self, charges: list[tuple[uuid.UUID, str, int, str]]
    ) -> dict[uuid.UUID, GatewayResult]:
        """Charge each (order_id, card_token, amount, currency): once per order, ever."""
        ops = [
            _Op(
                "charge",
                oid,
                f"charge:{oid}",
                amount,
                currency,
                "declined" if token in DECLINED_TOKENS else "approved",
            )
            for oid, token, amount, currency in charges
        ]
        results = self._record(ops)
        return {op.order_id: results[op.key] for op in ops}

    def refund_many(
        self, refunds: list[tuple[uuid.UUID, int, str]]
    ) -> dict[uuid.UUID, GatewayResult]:
        """Refund each (order_id, amount, currency): once per order, ever."""
        ops = [
            _Op("refund", oid, f"refund:{oid}", amount, currency, "approved")
            for oid, amount, currency in refunds
        ]
        results = self._record(ops)
        return {op.order_id: results[op.key] for op in ops}


set_fault = repo.gateway_set_fault
clear_fault = repo.gateway_clear_fault
