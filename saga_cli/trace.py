"""One order's story across the four services, as data (for --json) and as text.

The order service's saga record has every event of the order; what a stuck order waits
on (a retry, a dead letter) lives in each service's parked table, so we read all four.

The story is typed (Trace, TraceEvent, ParkedMessage, StuckOrder): times stay datetimes
and ids UUIDs until `as_dict()`, which gives the JSON of `saga trace --json` (and of the
console's /api/orders/ID), and until the text, whose times are formatted in UTC.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from eventing import tracing
from eventing.settings import SERVICES, Settings
from order_svc import repository as orders
from order_svc.domain import Facts, awaiting, is_terminal
from saga_cli import queries
from saga_cli.times import iso
from shared_events.envelope import utcnow

__all__ = [
    "ParkedMessage",
    "StuckOrder",
    "Trace",
    "TraceEvent",
    "build_trace",
    "clock",
    "clock_ms",
    "key_facts",
    "render_trace",
    "stuck_orders",
]

_CONFLICT = "conflict"  # error kind of an event set aside for contradicting the record


def _utc(value: datetime | str) -> datetime:
    """A datetime in UTC; an ISO string (as payloads carry times) is parsed first, and a
    time without a zone is taken as UTC, as every time of the system is."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def clock(value: datetime | str) -> str:
    """HH:MM:SS in UTC."""
    return _utc(value).strftime("%H:%M:%S")


def clock_ms(value: datetime | str) -> str:
    """HH:MM:SS.mmm in UTC, milliseconds always (also on a whole second)."""
    at = _utc(value)
    return f"{at:%H:%M:%S}.{at.microsecond // 1000:03d}"


def _money(minor: int | None, currency: str | None) -> str:
    return f"{(minor or 0) / 100:.2f} {currency or ''}".strip()


def _until(value: Any) -> str:
    if not isinstance(value, str | datetime):
        return "?"  # absent (an old or hand-made step)
    try:
        return f"{clock(value)}Z"
    except ValueError:
        return str(value)  # not a time: shown as it is rather than not at all


def key_facts(event_type: str, p: dict[str, Any], order_currency: str | None) -> str:
    """The one line about an event a person wants to read. Amounts are in the currency
    the payload names, else in the order's (`order_currency`, from the order record)."""
    items = p.get("items") or []
    lines = ", ".join(f"{i['sku']}x{i['qty']}" for i in items)
    currency = p.get("currency") or order_currency
    match event_type:
        case "OrderPlaced":
            return (
                f"{lines}; total {_money(p.get('total_minor'), currency)}; "
                f"card {p.get('card_token')}; ship to {p.get('ship_to', {}).get('country')}"
            )
        case "InventoryReserved":
            return f"held {lines} until {_until(p.get('expires_at'))}"
        case "InventoryRejected":
            return f"{p.get('reason')}: {', '.join(p.get('skus') or [])}"
        case "InventoryReleased":
            return f"released {lines} (reason: {p.get('reason')})"
        case "PaymentCharged":
            return f"charged {_money(p.get('amount_minor'), currency)}"
        case "PaymentFailed":
            return f"{p.get('reason')}: {p.get('detail')}"
        case "PaymentRefunded":
            amount = _money(p.get("amount_minor"), currency)
            return f"refunded {amount} (reason: {p.get('reason')})"
        case "ShipmentScheduled":
            eta = p.get("estimated_delivery")
            return f"{p.get('carrier')} to {p.get('country')}, delivery by {eta}"
        case "FulfillmentFailed":
            return f"{p.get('reason')}: {p.get('detail')}"
    return ""


def _ms(a: datetime, b: datetime) -> float:
    return round((b - a).total_seconds() * 1000, 1)


@dataclass(frozen=True)
class TraceEvent:
    """One step of the saga record."""

    event_type: str
    producer: str
    occurred_at: datetime
    event_id: uuid.UUID
    causation_id: uuid.UUID | None
    compensation: bool
    since_previous_ms: float | None  # None on the first step
    since_start_ms: float
    facts: str  # key_facts of the payload
    payload: dict[str, Any]  # as recorded (JSON)
    traceparent: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "producer": self.producer,
            "occurred_at": self.occurred_at.isoformat(),
            "event_id": str(self.event_id),
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "compensation": self.compensation,
            "since_previous_ms": self.since_previous_ms,
            "since_start_ms": self.since_start_ms,
            "facts": self.facts,
            "payload": self.payload,
            "traceparent": self.traceparent,
        }


@dataclass(frozen=True)
class ParkedMessage:
    """A message of the order parked in some service: waiting for a retry, dead-lettered,
    held back behind an earlier one, or set aside as a conflict."""

    service: str
    dlq_id: str  # <service>:<seq>
    state: str  # retrying | dead
    event_type: str | None  # None: a poison message
    attempts: int
    error_kind: str | None
    last_error: str | None
    next_attempt_at: datetime | None  # only while retrying
    parked_at: datetime
    queued_behind: str | None  # the dlq_id of the service's first parked message of the order

    @property
    def conflict(self) -> bool:
        return self.error_kind == _CONFLICT

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "dlq_id": self.dlq_id,
            "state": self.state,
            "event_type": self.event_type,
            "attempts": self.attempts,
            "error_kind": self.error_kind,
            "last_error": self.last_error,
            "next_attempt_at": iso(self.next_attempt_at),
            "parked_at": self.parked_at.isoformat(),
            "queued_behind": self.queued_behind,
        }


@dataclass(frozen=True)
class Trace:
    """One order's story: its record, its steps, and what it waits on."""

    order_id: uuid.UUID
    trace_id: str | None  # the saga's trace in a tracing backend (OpenTelemetry)
    status: str
    cancel_reason: str | None
    customer_id: str | None
    total_minor: int | None
    created_at: datetime
    terminal_at: datetime | None
    archived_at: datetime | None
    duration_ms: float | None  # first to last step, once terminal
    events: tuple[TraceEvent, ...]
    waiting_for: tuple[str, ...]
    waiting_s: float | None  # since the last step, while not terminal
    # Terminal orders too: a message can still be parked downstream (e.g. inventory
    # failed to commit the stock of a COMPLETED order) and the trace must show it.
    blocked_on: tuple[ParkedMessage, ...] = ()
    # Events set aside because they contradict the record (the first fact stands): they
    # hold nothing back, and stay listed until an operator acknowledges them.
    conflicts: tuple[ParkedMessage, ...] = ()

    @property
    def terminal(self) -> bool:
        return is_terminal(self.status)

    @property
    def compensations(self) -> tuple[TraceEvent, ...]:
        return tuple(e for e in self.events if e.compensation)

    def as_dict(self, events: bool = True) -> dict[str, Any]:
        """The JSON of `saga trace --json`; without `events` (`--follow --json`'s last
        line), everything else."""
        d: dict[str, Any] = {
            "order_id": str(self.order_id),
            "trace_id": self.trace_id,
            "status": self.status,
            "cancel_reason": self.cancel_reason,
            "customer_id": self.customer_id,
            "total_minor": self.total_minor,
            "created_at": self.created_at.isoformat(),
            "terminal_at": iso(self.terminal_at),
            "archived_at": iso(self.archived_at),
            "duration_ms": self.duration_ms,
            "events": [e.as_dict() for e in self.events],
            "compensations": [e.as_dict() for e in self.compensations],
            "waiting_for": list(self.waiting_for),
            "waiting_s": self.waiting_s,
            "blocked_on": [b.as_dict() for b in self.blocked_on],
            "conflicts": [b.as_dict() for b in self.conflicts],
        }
        if not events:
            del d["events"]
        return d


@dataclass(frozen=True)
class StuckOrder:
    """A saga that is not terminal and has made no progress for a while."""

    order_id: uuid.UUID
    status: str
    cancel_reason: str | None
    waiting_for: tuple[str, ...]
    waiting_s: float
    blocked_on: tuple[ParkedMessage, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_id": str(self.order_id),
            "status": self.status,
            "cancel_reason": self.cancel_reason,
            "waiting_for": list(self.waiting_for),
            "waiting_s": self.waiting_s,
            "blocked_on": [b.as_dict() for b in self.blocked_on],
        }


def _blocked_on(
    cfg: Settings,
    order_id: uuid.UUID,
    conns: dict[str, psycopg.Connection[Any]] | None = None,
) -> list[ParkedMessage]:
    """The order's parked messages in every service (an unreachable service is skipped)."""
    found = []
    for service in SERVICES:
        try:
            if conns is not None:
                if service not in conns:
                    continue  # unreachable when the caller connected: do not wait again
                rows = queries.parked_for_order(conns[service], order_id)
            else:
                with psycopg.connect(cfg.dsn(service), autocommit=True, connect_timeout=3) as c:
                    rows = queries.parked_for_order(c, order_id)
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            continue
        # A service holds an order's later messages behind its first parked one (a poison
        # message, without an event type, holds nothing back).
        head: str | None = None
        for r in rows:
            parked = ParkedMessage(
                service=service,
                dlq_id=f"{service}:{r['seq']}",
                state=r["state"],
                event_type=r["event_type"],
                attempts=r["attempts"],
                error_kind=r["error_kind"],
                last_error=r["last_error"],
                next_attempt_at=r["next_attempt_at"] if r["state"] == "retrying" else None,
                parked_at=r["parked_at"],
                queued_behind=head,
            )
            found.append(parked)
            if head is None and parked.event_type is not None and not parked.conflict:
                head = parked.dlq_id
    return found


def build_trace(
    conn: psycopg.Connection[Any],
    cfg: Settings,
    order_id: uuid.UUID,
    runtime_conns: dict[str, psycopg.Connection[Any]] | None = None,
) -> Trace | None:
    """One order's story; `runtime_conns` (service -> connection) saves reconnecting."""
    order = orders.get_order(conn, order_id)
    if order is None:
        return None
    steps = orders.steps_of(conn, order_id)
    events = []
    prev: datetime | None = None
    start: datetime | None = steps[0]["occurred_at"] if steps else None
    for s in steps:
        occurred: datetime = s["occurred_at"]
        events.append(
            TraceEvent(
                event_type=s["event_type"],
                producer=s["producer"],
                occurred_at=occurred,
                event_id=s["event_id"],
                causation_id=s["causation_id"],
                compensation=s["compensation"],
                since_previous_ms=_ms(prev, occurred) if prev else None,
                since_start_ms=_ms(start, occurred) if start else 0.0,
                facts=key_facts(s["event_type"], s["payload"], order["currency"]),
                payload=s["payload"],
                traceparent=s["traceparent"],
            )
        )
        prev = occurred
    facts = Facts.of((s["event_type"], s["payload"].get("reason")) for s in steps)
    terminal = is_terminal(order["status"])
    last = prev or order["created_at"]
    parked = _blocked_on(cfg, order_id, runtime_conns)
    return Trace(
        order_id=order_id,
        # From the saga's first step that carries one.
        trace_id=next((tid for st in steps if (tid := tracing.trace_id(st["traceparent"]))), None),
        status=order["status"],
        cancel_reason=order["cancel_reason"],
        customer_id=order["customer_id"],
        total_minor=order["total_minor"],
        created_at=order["created_at"],
        terminal_at=order["terminal_at"],
        archived_at=order["archived_at"],
        duration_ms=_ms(start, prev) if terminal and start and prev else None,
        events=tuple(events),
        waiting_for=tuple(awaiting(facts)),
        waiting_s=None if terminal else round((utcnow() - last).total_seconds(), 1),
        blocked_on=tuple(b for b in parked if not b.conflict),
        conflicts=tuple(b for b in parked if b.conflict),
    )


def _conflict_line(b: ParkedMessage) -> str:
    return (
        f"    x {b.service} set aside a conflicting {b.event_type} as {b.dlq_id}: "
        f"{b.last_error}\n"
        f"      the first one stands; once its producer is checked: saga dlq redrive {b.dlq_id}"
    )


def _blocker_line(b: ParkedMessage) -> str:
    if b.state == "dead":
        return (
            f"    ! blocked on DLQ entry {b.dlq_id} ({b.event_type or 'poison message'}, "
            f"{b.attempts} attempts): {b.last_error}\n"
            f"      fix the cause, then: saga dlq redrive {b.dlq_id}"
        )
    if b.queued_behind and not b.last_error:
        return f"    ~ {b.service} holds {b.event_type} back behind {b.queued_behind}"
    next_at = f"{clock(b.next_attempt_at)}Z" if b.next_attempt_at else "?"
    return (
        f"    ~ {b.service} is retrying {b.event_type} "
        f"(attempt {b.attempts}, next at {next_at})" + (f": {b.last_error}" if b.last_error else "")
    )


def render_status(t: Trace) -> str:
    reason = f" ({t.cancel_reason})" if t.cancel_reason else ""
    line = f"order {t.order_id}  {t.status}{reason}"
    line += f"  in {t.duration_ms:.0f} ms" if t.duration_ms is not None else ""
    return line + (f"  trace {t.trace_id}" if t.trace_id else "")


COLUMNS = f"  {'TIME (UTC)':<15} {'+STEP':>9}  {'PRODUCER':<12} {'EVENT':<19} FACTS"


def render_event(e: TraceEvent) -> str:
    delta = f"+{e.since_previous_ms:.0f} ms" if e.since_previous_ms is not None else ""
    mark = "↩ " if e.compensation else "  "
    return (
        f"  {clock_ms(e.occurred_at):<15} {delta:>9}  {e.producer:<12} "
        f"{mark}{e.event_type:<17} {e.facts}"
    )


def render_trace(t: Trace) -> str:
    out = [render_status(t), COLUMNS, *(render_event(e) for e in t.events)]
    if not t.terminal:
        out.append(f"  waiting {t.waiting_s or 0.0:.1f}s for:")
        out.extend(f"    - {w}" for w in t.waiting_for)
    elif t.blocked_on:
        out.append("  ended, but messages of this order are still parked downstream:")
    out.extend(_blocker_line(b) for b in t.blocked_on)
    out.extend(_conflict_line(b) for b in t.conflicts)
    return "\n".join(out)


def stuck_orders(
    conn: psycopg.Connection[Any], cfg: Settings, older_than_s: float, limit: int = 200
) -> list[StuckOrder]:
    """Non-terminal sagas whose last step is at least `older_than_s` old, oldest first."""
    rows = orders.orders_not_terminal(conn, older_than_s, limit)
    out = []
    with ExitStack() as stack:
        # One connection per service for the whole listing, not four per order.
        runtime: dict[str, psycopg.Connection[Any]] = {}
        for service in SERVICES:
            try:
                runtime[service] = stack.enter_context(
                    psycopg.connect(cfg.dsn(service), autocommit=True, connect_timeout=3)
                )
            except psycopg.OperationalError:
                continue
        for r in rows:
            t = build_trace(conn, cfg, r["order_id"], runtime)
            # orders.updated_at moves on status changes only: a step without one is
            # progress too, and waiting_s counts from the last step.
            if t is None or t.waiting_s is None or t.waiting_s < older_than_s:
                continue
            out.append(
                StuckOrder(
                    order_id=t.order_id,
                    status=t.status,
                    cancel_reason=t.cancel_reason,
                    waiting_for=t.waiting_for,
                    waiting_s=t.waiting_s,
                    blocked_on=t.blocked_on,
                )
            )
    return out
