"""The invariants of DESIGN.md as pure functions: facts read from the four databases in,
violations out. No SQL here (saga_cli/audit.py reads the facts), so each rule is unit-tested
on hand-made facts.

1. no_oversell  per SKU: available >= 0, on_hand + shipped = received = sum of adjustments,
                and the counters agree with the reservations that hold or shipped stock
2. money        per order, at the gateway: charged - refunded = total if COMPLETED,
                0 if CANCELLED; never two approved charges
3. stock        CANCELLED holds no reservation and ships nothing; COMPLETED has one
                committed reservation and one scheduled shipment
4. liveness     an order idle for longer than the threshold is terminal or waits on a
                named DLQ entry
5. conflict     no order has two conflicting facts (two OrderPlaced with different content,
                two outcomes of one step): a contradicting event is set aside as a dead
                letter of kind 'conflict', reported until an operator acknowledges it
and unknown_order: a record in another service for an order the order service never saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from order_svc.domain import is_terminal

__all__ = [
    "HOLDING",
    "Blocker",
    "Money",
    "OrderFacts",
    "OrderId",
    "SkuFacts",
    "Unsent",
    "Violation",
    "check_conflicts",
    "check_liveness",
    "check_money",
    "check_sku",
    "check_stock",
    "unknown_orders",
]

# Order ids as PostgreSQL prints UUIDs (lowercase, hyphenated): the audit joins 100k of
# them across databases, and strings hash far faster than uuid.UUID objects.
OrderId = str

# Reservation states that still hold stock ('expiring': lapsed, held until payment answers).
HOLDING = frozenset({"reserved", "paid", "expiring"})
_FREE = frozenset({"released", "expired"})


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str
    order_id: OrderId | None = None
    sku: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.invariant, self.order_id or f"sku:{self.sku}")

    def as_dict(self) -> dict[str, Any]:
        subject = {"order_id": self.order_id} if self.order_id else {"sku": self.sku}
        return {"invariant": self.invariant, **subject, "detail": self.detail}


def _money(minor: int) -> str:
    return f"{minor / 100:.2f}"


# -- 1. no oversell --------------------------------------------------------------------


@dataclass(frozen=True)
class SkuFacts:
    sku: str
    on_hand: int
    reserved: int
    shipped: int
    received: int
    adjustments: int  # sum of stock_adjustments.delta
    held: int  # qty in reservations that hold stock
    committed: int  # qty in committed (shipped) reservations


def check_sku(s: SkuFacts) -> list[Violation]:
    found: list[str] = []
    if s.on_hand - s.reserved < 0:
        found.append(f"oversold: {s.reserved} reserved but only {s.on_hand} on hand")
    if s.on_hand + s.shipped != s.received:
        found.append(
            f"on_hand {s.on_hand} + shipped {s.shipped} = {s.on_hand + s.shipped}, "
            f"but {s.received} were received: units appeared or vanished"
        )
    if s.received != s.adjustments:
        found.append(f"received is {s.received} but the stock adjustments sum to {s.adjustments}")
    if s.reserved != s.held:
        found.append(f"reserved is {s.reserved} but open reservations hold {s.held}")
    if s.shipped != s.committed:
        found.append(f"shipped is {s.shipped} but committed reservations account for {s.committed}")
    return [Violation("no_oversell", d, sku=s.sku) for d in found]


# -- 2. money and 3. stock, per order -------------------------------------------------


@dataclass(frozen=True)
class OrderFacts:
    order_id: OrderId
    status: str
    cancel_reason: str | None
    total_minor: int | None  # None: an order known only from events, details never arrived


@dataclass(frozen=True)
class Money:
    """What the gateway's ledger says happened to one order's money (approved only)."""

    charges: int = 0
    charged: int = 0
    refunds: int = 0
    refunded: int = 0


def _status(o: OrderFacts) -> str:
    return f"{o.status} ({o.cancel_reason})" if o.cancel_reason else o.status


def _flow(m: Money) -> str:
    return f"charged {_money(m.charged)}, refunded {_money(m.refunded)}"


_NO_MONEY = Money()


def check_money(o: OrderFacts, m: Money | None) -> list[Violation]:
    m = m or _NO_MONEY
    found: list[str] = []
    if m.charges > 1:
        found.append(f"{m.charges} approved charges for one order (total {_money(m.charged)})")
    if m.refunds > 1:
        found.append(f"{m.refunds} approved refunds for one order")
    net = m.charged - m.refunded
    if o.status == "COMPLETED" and o.total_minor is not None and net != o.total_minor:
        found.append(f"{_status(o)} with total {_money(o.total_minor)} but {_flow(m)}")
    elif o.status == "CANCELLED" and net != 0:
        found.append(f"{_status(o)} but the customer is out {_money(net)} ({_flow(m)})")
    elif not is_terminal(o.status) and net < 0:
        found.append(f"{_status(o)}: refunded more than was charged ({_flow(m)})")
    return [Violation("money", d, order_id=o.order_id) for d in found]


def check_stock(o: OrderFacts, reservation: str | None, shipment: str | None) -> list[Violation]:
    found: list[str] = []
    res = reservation or "absent"
    if o.status == "CANCELLED":
        if reservation in HOLDING:
            found.append(f"{_status(o)} but its reservation is still {res}: stock held")
        elif reservation is not None and reservation not in _FREE:
            found.append(f"{_status(o)} but its reservation is {res}")
        if shipment == "scheduled":
            found.append(f"{_status(o)} but a shipment is scheduled")
    elif o.status == "COMPLETED":
        if reservation != "committed":
            found.append(f"COMPLETED but its reservation is {res}, not committed")
        if shipment != "scheduled":
            found.append(f"COMPLETED but its shipment is {shipment or 'absent'}, not scheduled")
    return [Violation("stock", d, order_id=o.order_id) for d in found]


def unknown_orders(
    service: str, what: str, order_ids: Iterable[OrderId], known: set[OrderId]
) -> list[Violation]:
    return [
        Violation(
            "unknown_order",
            f"{service} has a {what} for an order the order service does not know",
            order_id=oid,
        )
        for oid in order_ids
        if oid not in known
    ]


# -- 4. liveness ------------------------------------------------------------------------


@dataclass(frozen=True)
class Blocker:
    """A parked message of the order in some service."""

    dlq_id: str  # <service>:<seq>
    service: str
    state: str  # dead | retrying
    event_type: str | None
    attempts: int
    error_kind: str | None
    error: str | None
    overdue_s: float  # how long past its next attempt (negative: not due yet)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dlq_id": self.dlq_id,
            "service": self.service,
            "state": self.state,
            "event_type": self.event_type,
            "attempts": self.attempts,
            "error_kind": self.error_kind,
            "error": self.error,
        }


@dataclass(frozen=True)
class Unsent:
    """Outbox rows of the order a service has not published yet."""

    service: str
    count: int
    age_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "count": self.count, "age_s": round(self.age_s, 1)}


def check_liveness(
    order_id: OrderId,
    status: str,
    idle_s: float,
    older_than_s: float,
    blockers: Sequence[Blocker],
    unsent: Sequence[Unsent] = (),
) -> Violation | None:
    """None when the order is fine for now: moving, waiting on a dead entry, or retrying.

    A retry that is not yet overdue counts as progress to come (the system is not quiet
    yet); one overdue by more than the threshold means nobody is retrying it.
    """
    if is_terminal(status) or idle_s < older_than_s:
        return None
    # A conflict holds nothing back (the first fact stands): it cannot explain a wait.
    blockers = [b for b in blockers if b.error_kind != CONFLICT]
    if any(b.state == "dead" for b in blockers):
        return None
    retrying = [b for b in blockers if b.state == "retrying"]
    if any(b.overdue_s < older_than_s for b in retrying):
        return None
    why = [f"{status}, no progress for {idle_s:.0f}s and no dead DLQ entry to explain it"]
    why += [
        f"{b.dlq_id} ({b.event_type}) overdue for retry by {b.overdue_s:.0f}s: "
        f"is the {b.service} service running?"
        for b in retrying
    ]
    why += [
        f"{u.count} unpublished outbox row(s) in {u.service} for {u.age_s:.0f}s: "
        f"is the {u.service} service (its relay) running?"
        for u in unsent
    ]
    return Violation("liveness", "; ".join(why), order_id=order_id)


# -- 5. conflicts ---------------------------------------------------------------------------

CONFLICT = "conflict"  # the error kind of an event set aside because it contradicts the record


def check_conflicts(
    order_id: OrderId, blockers: Sequence[Blocker], repeated: Sequence[tuple[str, int]] = ()
) -> list[Violation]:
    """Conflicting events set aside for the order, and any event type its saga record holds
    more than once (`repeated`: (event type, steps)), which the record must never do."""
    found = [
        f"{b.event_type} set aside by {b.service} as {b.dlq_id}: {b.error}; the first one "
        f"stands (check its producer, then acknowledge: saga dlq redrive {b.dlq_id})"
        for b in blockers
        if b.error_kind == CONFLICT and b.state == "dead"
    ]
    found += [f"the saga record holds {n} {t} steps: one fact recorded as {n}" for t, n in repeated]
    return [Violation("conflict", d, order_id=order_id) for d in found]


__all__ += ["CONFLICT"]
