"""`saga audit`: read the four databases, set-based, and apply saga_cli.audit_rules.

Each database is read in one REPEATABLE READ, READ ONLY transaction: a consistent snapshot
per service, and nothing written. The four snapshots are taken one after another, so a
saga in flight can look inconsistent across them (the order says COMPLETED, inventory has
not committed the stock yet). Orders that look wrong are therefore read again, just those,
until `settle_s` has passed: only what stays wrong is reported. Per-SKU checks need no
second look, their facts all live in the inventory snapshot.

Cost: one query per table per database, whatever the number of orders, joined in Python
by order id; a re-check reads only the suspects (`= ANY(ids)`). The big result sets are
fetched as tuples with order ids as text (100k orders: a few seconds, mostly in Python).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import IsolationLevel

from eventing.queries import Queries
from eventing.settings import Settings
from order_svc.domain import Facts, awaiting
from saga_cli.audit_rules import (
    CONFLICT,
    Blocker,
    Money,
    OrderFacts,
    OrderId,
    SkuFacts,
    Unsent,
    Violation,
    check_conflicts,
    check_liveness,
    check_money,
    check_sku,
    check_stock,
    unknown_orders,
)
from saga_cli.db import connect
from shared_events.envelope import utcnow

__all__ = ["AuditReport", "IdleOrder", "SchemaMissing", "run_audit"]

Q = Queries.load("saga_cli", "sql/audit.sql")
_RECHECK_EVERY_S = 0.25


class SchemaMissing(Exception):
    """A service database without its tables: the service never ran against it."""


@dataclass
class _Snapshot:
    orders: dict[OrderId, OrderFacts] = field(default_factory=dict)
    idle: dict[OrderId, tuple[str, float]] = field(default_factory=dict)
    skus: list[SkuFacts] = field(default_factory=list)
    reservations: dict[OrderId, str] = field(default_factory=dict)
    money: dict[OrderId, Money] = field(default_factory=dict)
    payments: dict[OrderId, str] = field(default_factory=dict)
    shipments: dict[OrderId, str] = field(default_factory=dict)
    blockers: dict[OrderId, list[Blocker]] = field(default_factory=lambda: defaultdict(list))
    unsent: dict[OrderId, list[Unsent]] = field(default_factory=lambda: defaultdict(list))
    repeated: dict[OrderId, list[tuple[str, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # Orders with a record archived so long ago that its partition, here or in another
    # service, may already be dropped: not checked across services.
    at_edge: set[OrderId] = field(default_factory=set)
    edge: datetime = field(default_factory=utcnow)

    def note(self, order_id: OrderId, archived_at: datetime | None) -> None:
        if archived_at is not None and archived_at < self.edge:
            self.at_edge.add(order_id)


@contextmanager
def _read_only(service: str, cfg: Settings) -> Iterator[psycopg.Connection[Any]]:
    with connect(service, cfg) as conn:
        conn.read_only = True
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        try:
            with conn.transaction():  # BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY
                yield conn
        except psycopg.errors.UndefinedTable as exc:
            raise SchemaMissing(
                f"the {service} database has no {service} tables ({exc.diag.message_primary}): "
                f"run `saga migrate` or start the service once"
            ) from None


def _tuples(conn: psycopg.Connection[Any], name: str, params: Any) -> list[tuple[Any, ...]]:
    # Plain tuples: building 100k dicts per table is the audit's biggest cost otherwise.
    with conn.cursor() as cur:
        cur.execute(Q[name], params)
        return cur.fetchall()


def _edge(cfg: Settings) -> datetime:
    """Archived before this, a record's partition is the oldest one kept: the same order's
    partition in another service (archived seconds apart, maybe across a partition
    boundary) may be dropped already."""
    keep = cfg.archive_retention_s - cfg.archive_partition_s
    return utcnow() - timedelta(seconds=max(keep, 0.0))


def _read(cfg: Settings, ids: list[OrderId] | None, with_skus: bool) -> _Snapshot:
    s = _Snapshot(edge=_edge(cfg))
    p = {"ids": ids}
    # Other services first, the order service last: a record elsewhere then always finds
    # its order (orders are created before any event about them leaves the order service).
    with _read_only("inventory", cfg) as conn:
        for oid, status, archived_at in _tuples(conn, "audit_reservations", p):
            s.reservations[oid] = status
            s.note(oid, archived_at)
        if with_skus:
            s.skus = [SkuFacts(**r) for r in Q.all(conn, "audit_skus")]
        _read_runtime(conn, "inventory", p, s)
    with _read_only("payment", cfg) as conn:
        for row in _tuples(conn, "audit_money", p):
            oid, status, charges, charged, refunds, refunded, archived_at = row
            s.money[oid] = Money(charges, charged, refunds, refunded)
            if status is not None:
                s.payments[oid] = status
            s.note(oid, archived_at)
        _read_runtime(conn, "payment", p, s)
    with _read_only("fulfillment", cfg) as conn:
        for oid, status, archived_at in _tuples(conn, "audit_shipments", p):
            s.shipments[oid] = status
            s.note(oid, archived_at)
        _read_runtime(conn, "fulfillment", p, s)
    with _read_only("order", cfg) as conn:
        for oid, status, reason, total, archived_at in _tuples(conn, "audit_orders", p):
            s.orders[oid] = OrderFacts(oid, status, reason, total)
            s.note(oid, archived_at)
        s.idle = {
            oid: (status, idle) for oid, status, idle in _tuples(conn, "audit_idle_orders", p)
        }
        for oid, event_type, n in _tuples(conn, "audit_repeated_steps", p):
            s.repeated[oid].append((event_type, n))
        _read_runtime(conn, "order", p, s)
    return s


def _read_runtime(
    conn: psycopg.Connection[Any], service: str, p: dict[str, Any], s: _Snapshot
) -> None:
    for r in Q.all(conn, "audit_parked", p):
        s.blockers[r["order_id"]].append(
            Blocker(
                dlq_id=f"{service}:{r['seq']}",
                service=service,
                state=r["state"],
                event_type=r["event_type"],
                attempts=r["attempts"],
                error_kind=r["error_kind"],
                error=r["last_error"],
                overdue_s=r["overdue_s"],
            )
        )
    for r in Q.all(conn, "audit_unsent", p):
        s.unsent[r["order_id"]].append(Unsent(service, r["n"], r["age_s"]))


def _with_dlq_hint(v: Violation, s: _Snapshot) -> Violation:
    # A terminal order can still have a message parked downstream (e.g. inventory could not
    # commit the stock): name it, it is usually the cause and the fix.
    named = [f"{b.dlq_id} ({b.state})" for b in s.blockers.get(v.order_id or "", [])]
    if not named or v.invariant == "conflict":  # a conflict names its entry already
        return v
    return Violation(v.invariant, f"{v.detail}; parked: {', '.join(named)}", v.order_id, v.sku)


def _evaluate(s: _Snapshot, older_than_s: float) -> list[Violation]:
    found: list[Violation] = []
    for sku in s.skus:
        found += check_sku(sku)
    for o in s.orders.values():
        if o.order_id in s.at_edge:
            continue
        found += check_money(o, s.money.get(o.order_id))
        found += check_stock(o, s.reservations.get(o.order_id), s.shipments.get(o.order_id))
    for oid, (status, idle_s) in s.idle.items():
        v = check_liveness(
            oid, status, idle_s, older_than_s, s.blockers.get(oid, []), s.unsent.get(oid, [])
        )
        if v is not None:
            found.append(v)
    for oid in sorted(s.blockers.keys() | s.repeated.keys()):
        found += check_conflicts(oid, s.blockers.get(oid, []), s.repeated.get(oid, []))
    known = set(s.orders) | s.at_edge
    found += unknown_orders("inventory", "reservation", s.reservations, known)
    found += unknown_orders(
        "payment", "payment or gateway ledger entry", s.money.keys() | s.payments.keys(), known
    )
    found += unknown_orders("fulfillment", "shipment", s.shipments, known)
    return [_with_dlq_hint(v, s) for v in found]


@dataclass(frozen=True)
class IdleOrder:
    """A saga that is not terminal and has been idle for the threshold or longer, with
    what it waits on and the audit's verdict on it."""

    order_id: OrderId
    status: str
    idle_s: float  # rounded to a tenth of a second
    waiting_for: tuple[str, ...]
    blocked_on: tuple[Blocker, ...]
    unsent_outbox: tuple[Unsent, ...]
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "status": self.status,
            "idle_s": self.idle_s,
            "waiting_for": list(self.waiting_for),
            "blocked_on": [b.as_dict() for b in self.blocked_on],
            "unsent_outbox": [u.as_dict() for u in self.unsent_outbox],
            "verdict": self.verdict,
        }


@dataclass
class AuditReport:
    orders_checked: int
    skus_checked: int
    violations: list[Violation]
    stuck: list[IdleOrder]
    older_than_s: float
    rechecked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders_checked": self.orders_checked,
            "skus_checked": self.skus_checked,
            "older_than_s": self.older_than_s,
            "rechecked": self.rechecked,
            "violations": [v.as_dict() for v in self.violations],
            "stuck": [s.as_dict() for s in self.stuck],
        }


def _stuck(
    cfg: Settings, s: _Snapshot, older_than_s: float, liveness: set[OrderId]
) -> list[IdleOrder]:
    idle = {oid: v for oid, v in s.idle.items() if v[1] >= older_than_s}
    if not idle:
        return []
    steps: dict[OrderId, list[tuple[str, str | None]]] = defaultdict(list)
    with _read_only("order", cfg) as conn:
        for r in Q.all(conn, "audit_steps", {"ids": list(idle)}):
            steps[r["order_id"]].append((r["event_type"], r["reason"]))
    out = []
    for oid, (status, idle_s) in sorted(idle.items(), key=lambda kv: -kv[1][1]):
        blockers = s.blockers.get(oid, [])
        dead = [b.dlq_id for b in blockers if b.state == "dead" and b.error_kind != CONFLICT]
        if dead:
            verdict = f"blocked on DLQ entry {', '.join(dead)}: fix the cause, then redrive"
        elif oid in liveness:
            verdict = "stuck: not waiting on any DLQ entry (liveness violation)"
        else:
            verdict = "retrying: not quiet yet"
        out.append(
            IdleOrder(
                order_id=oid,
                status=status,
                idle_s=round(idle_s, 1),
                waiting_for=tuple(awaiting(Facts.of(steps.get(oid, [])))),
                blocked_on=tuple(blockers),
                unsent_outbox=tuple(s.unsent.get(oid, [])),
                verdict=verdict,
            )
        )
    return out


def _overlay(full: _Snapshot, fresh: _Snapshot, ids: list[OrderId]) -> None:
    """What a re-read saw of `ids` replaces the first read, for the stuck listing."""
    for oid in ids:
        full.idle.pop(oid, None)
        if oid in fresh.idle:
            full.idle[oid] = fresh.idle[oid]
        full.blockers[oid] = fresh.blockers.get(oid, [])
        full.unsent[oid] = fresh.unsent.get(oid, [])


def run_audit(
    cfg: Settings,
    older_than_s: float = 30.0,
    settle_s: float = 2.0,
    orders: list[OrderId] | None = None,
    skus: list[str] | None = None,
) -> AuditReport:
    """Check every invariant; suspects are re-read for up to `settle_s` before reporting.

    `orders` / `skus`: only these (a test's own, or one incident's); the per-SKU checks run
    for `skus` only when `orders` are given."""
    full = _read(cfg, orders, with_skus=orders is None or bool(skus))
    if skus is not None:
        full.skus = [sku for sku in full.skus if sku.sku in set(skus)]
    found = _evaluate(full, older_than_s)
    by_sku = [v for v in found if v.order_id is None]
    suspects = {v.key: v for v in found if v.order_id is not None}
    rechecked = 0
    deadline = time.monotonic() + settle_s
    while suspects and time.monotonic() < deadline:
        time.sleep(_RECHECK_EVERY_S)
        ids = sorted({v.order_id for v in suspects.values() if v.order_id is not None})
        fresh = _read(cfg, ids, with_skus=False)
        _overlay(full, fresh, ids)
        rechecked += 1
        again = {v.key: v for v in _evaluate(fresh, older_than_s)}
        # Only what was wrong every time stays a suspect; the latest wording wins.
        suspects = {k: again[k] for k in suspects if k in again}
    violations = by_sku + sorted(suspects.values(), key=lambda v: (v.invariant, str(v.order_id)))
    liveness = {v.order_id for v in violations if v.invariant == "liveness" and v.order_id}
    return AuditReport(
        orders_checked=len(full.orders),
        skus_checked=len(full.skus),
        violations=violations,
        stuck=_stuck(cfg, full, older_than_s, liveness),
        older_than_s=older_than_s,
        rechecked=rechecked,
    )
