"""One order's story across the four services, as data (for --json) and as text.

The order service's saga record has every event of the order; what a stuck order waits
on (a retry, a dead letter) lives in each service's parked table, so we read all four.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import psycopg

from eventing import tracing
from eventing.queries import Queries
from eventing.settings import SERVICES, Settings
from order_svc.domain import Facts, awaiting, is_terminal
from order_svc.repository import Q as ORDER_Q
from shared_events.envelope import utcnow

__all__ = ["build_trace", "key_facts", "render_trace", "stuck_orders"]

RUNTIME_Q = Queries.load("eventing")
_CONFLICT = "conflict"  # error kind of an event set aside for contradicting the record


def _money(minor: int | None, currency: str | None = "USD") -> str:
    return f"{(minor or 0) / 100:.2f} {currency or ''}".strip()


def key_facts(event_type: str, p: dict[str, Any]) -> str:
    """The one line about an event a person wants to read."""
    items = p.get("items") or []
    lines = ", ".join(f"{i['sku']}x{i['qty']}" for i in items)
    match event_type:
        case "OrderPlaced":
            return (
                f"{lines}; total {_money(p.get('total_minor'), p.get('currency'))}; "
                f"card {p.get('card_token')}; ship to {p.get('ship_to', {}).get('country')}"
            )
        case "InventoryReserved":
            return f"held {lines} until {str(p.get('expires_at'))[11:19]}Z"
        case "InventoryRejected":
            return f"{p.get('reason')}: {', '.join(p.get('skus') or [])}"
        case "InventoryReleased":
            return f"released {lines} (reason: {p.get('reason')})"
        case "PaymentCharged":
            return f"charged {_money(p.get('amount_minor'), p.get('currency'))}"
        case "PaymentFailed":
            return f"{p.get('reason')}: {p.get('detail')}"
        case "PaymentRefunded":
            amount = _money(p.get("amount_minor"), p.get("currency"))
            return f"refunded {amount} (reason: {p.get('reason')})"
        case "ShipmentScheduled":
            eta = p.get("estimated_delivery")
            return f"{p.get('carrier')} to {p.get('country')}, delivery by {eta}"
        case "FulfillmentFailed":
            return f"{p.get('reason')}: {p.get('detail')}"
    return ""


def _ms(a: datetime, b: datetime) -> float:
    return round((b - a).total_seconds() * 1000, 1)


def _blocked_on(
    cfg: Settings,
    order_id: uuid.UUID,
    conns: dict[str, psycopg.Connection[Any]] | None = None,
) -> list[dict[str, Any]]:
    """The order's parked messages in every service (an unreachable service is skipped)."""
    found = []
    for service in SERVICES:
        try:
            if conns is not None:
                if service not in conns:
                    continue  # unreachable when the caller connected: do not wait again
                rows = RUNTIME_Q.all(conns[service], "parked_for_order", {"order_id": order_id})
            else:
                with psycopg.connect(cfg.dsn(service), autocommit=True, connect_timeout=3) as c:
                    rows = RUNTIME_Q.all(c, "parked_for_order", {"order_id": order_id})
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            continue
        # A service holds an order's later messages behind its first parked one (a poison
        # message, without an event type, holds nothing back).
        head: str | None = None
        for r in rows:
            dlq_id = f"{service}:{r['seq']}"
            found.append(
                {
                    "service": service,
                    "dlq_id": dlq_id,
                    "state": r["state"],
                    "event_type": r["event_type"],
                    "attempts": r["attempts"],
                    "error_kind": r["error_kind"],
                    "last_error": r["last_error"],
                    "next_attempt_at": r["next_attempt_at"].isoformat()
                    if r["state"] == "retrying"
                    else None,
                    "parked_at": r["parked_at"].isoformat(),
                    "queued_behind": head,
                }
            )
            if head is None and r["event_type"] is not None and r["error_kind"] != _CONFLICT:
                head = dlq_id
    return found


def build_trace(
    conn: psycopg.Connection[Any],
    cfg: Settings,
    order_id: uuid.UUID,
    runtime_conns: dict[str, psycopg.Connection[Any]] | None = None,
) -> dict[str, Any] | None:
    """One order's story; `runtime_conns` (service -> connection) saves reconnecting."""
    order = ORDER_Q.one(conn, "get_order", {"order_id": order_id})
    if order is None:
        return None
    steps = ORDER_Q.all(conn, "steps_of", {"order_id": order_id})
    events = []
    prev: datetime | None = None
    start: datetime | None = steps[0]["occurred_at"] if steps else None
    for s in steps:
        occurred: datetime = s["occurred_at"]
        events.append(
            {
                "event_type": s["event_type"],
                "producer": s["producer"],
                "occurred_at": occurred.isoformat(),
                "event_id": str(s["event_id"]),
                "causation_id": str(s["causation_id"]) if s["causation_id"] else None,
                "compensation": s["compensation"],
                "since_previous_ms": _ms(prev, occurred) if prev else None,
                "since_start_ms": _ms(start, occurred) if start else 0.0,
                "facts": key_facts(s["event_type"], s["payload"]),
                "payload": s["payload"],
                "traceparent": s["traceparent"],
            }
        )
        prev = occurred
    facts = Facts.of((s["event_type"], s["payload"].get("reason")) for s in steps)
    waiting = awaiting(facts)
    terminal = is_terminal(order["status"])
    last = prev or order["created_at"]
    trace: dict[str, Any] = {
        "order_id": str(order_id),
        # The saga's trace in a tracing backend (OpenTelemetry), from its first step.
        "trace_id": next(
            (tid for st in steps if (tid := tracing.trace_id(st["traceparent"]))), None
        ),
        "status": order["status"],
        "cancel_reason": order["cancel_reason"],
        "customer_id": order["customer_id"],
        "total_minor": order["total_minor"],
        "created_at": order["created_at"].isoformat(),
        "terminal_at": order["terminal_at"].isoformat() if order["terminal_at"] else None,
        "archived_at": order["archived_at"].isoformat() if order["archived_at"] else None,
        "duration_ms": _ms(start, prev) if terminal and start and prev else None,
        "events": events,
        "compensations": [e for e in events if e["compensation"]],
        "waiting_for": waiting,
        "waiting_s": None if terminal else round((utcnow() - last).total_seconds(), 1),
        # Terminal orders too: a message can still be parked downstream (e.g. inventory
        # failed to commit the stock of a COMPLETED order) and the trace must show it.
        "blocked_on": [],
        # Events set aside because they contradict the record (the first fact stands): they
        # hold nothing back, and stay listed until an operator acknowledges them.
        "conflicts": [],
    }
    for b in _blocked_on(cfg, order_id, runtime_conns):
        trace["conflicts" if b["error_kind"] == _CONFLICT else "blocked_on"].append(b)
    return trace


def _conflict_line(b: dict[str, Any]) -> str:
    return (
        f"    x {b['service']} set aside a conflicting {b['event_type']} as {b['dlq_id']}: "
        f"{b['last_error']}\n"
        f"      the first one stands; once its producer is checked: saga dlq redrive {b['dlq_id']}"
    )


def _blocker_line(b: dict[str, Any]) -> str:
    if b["state"] == "dead":
        return (
            f"    ! blocked on DLQ entry {b['dlq_id']} ({b['event_type'] or 'poison message'}, "
            f"{b['attempts']} attempts): {b['last_error']}\n"
            f"      fix the cause, then: saga dlq redrive {b['dlq_id']}"
        )
    if b["queued_behind"] and not b["last_error"]:
        return f"    ~ {b['service']} holds {b['event_type']} back behind {b['queued_behind']}"
    return (
        f"    ~ {b['service']} is retrying {b['event_type']} "
        f"(attempt {b['attempts']}, next at {str(b['next_attempt_at'])[11:19]}Z)"
        + (f": {b['last_error']}" if b["last_error"] else "")
    )


def render_status(t: dict[str, Any]) -> str:
    reason = f" ({t['cancel_reason']})" if t["cancel_reason"] else ""
    line = f"order {t['order_id']}  {t['status']}{reason}"
    line += f"  in {t['duration_ms']:.0f} ms" if t["duration_ms"] is not None else ""
    return line + (f"  trace {t['trace_id']}" if t.get("trace_id") else "")


COLUMNS = f"  {'TIME (UTC)':<15} {'+STEP':>9}  {'PRODUCER':<12} {'EVENT':<19} FACTS"


def render_event(e: dict[str, Any]) -> str:
    delta = f"+{e['since_previous_ms']:.0f} ms" if e["since_previous_ms"] is not None else ""
    mark = "↩ " if e["compensation"] else "  "
    return (
        f"  {e['occurred_at'][11:23]:<15} {delta:>9}  {e['producer']:<12} "
        f"{mark}{e['event_type']:<17} {e['facts']}"
    )


def render_trace(t: dict[str, Any]) -> str:
    out = [render_status(t), COLUMNS, *(render_event(e) for e in t["events"])]
    if not is_terminal(t["status"]):
        out.append(f"  waiting {t['waiting_s']:.1f}s for:")
        out.extend(f"    - {w}" for w in t["waiting_for"])
    elif t["blocked_on"]:
        out.append("  ended, but messages of this order are still parked downstream:")
    out.extend(_blocker_line(b) for b in t["blocked_on"])
    out.extend(_conflict_line(b) for b in t.get("conflicts", []))
    return "\n".join(out)


def stuck_orders(
    conn: psycopg.Connection[Any], cfg: Settings, older_than_s: float, limit: int = 200
) -> list[dict[str, Any]]:
    """Non-terminal sagas whose last step is at least `older_than_s` old, oldest first."""
    rows = ORDER_Q.all(conn, "orders_not_terminal", {"older_than_s": older_than_s, "limit": limit})
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
            if t is None or t["waiting_s"] is None or t["waiting_s"] < older_than_s:
                continue
            out.append(
                {
                    k: t[k]
                    for k in (
                        "order_id",
                        "status",
                        "cancel_reason",
                        "waiting_for",
                        "waiting_s",
                        "blocked_on",
                    )
                }
            )
    return out
