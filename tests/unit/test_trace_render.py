"""The trace's records and its text, built by hand: times formatted from datetimes (in UTC,
milliseconds always), amounts in the data's own currency, and `as_dict()` the JSON shape of
`saga trace --json` and `saga audit --json`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from saga_cli.audit import AuditReport, IdleOrder
from saga_cli.audit_rules import Blocker, Unsent
from saga_cli.trace import (
    COLUMNS,
    ParkedMessage,
    StuckOrder,
    Trace,
    TraceEvent,
    clock_ms,
    key_facts,
    render_event,
    render_trace,
)

OID = uuid.UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2026, 12, 1, 15, 22, 59, tzinfo=UTC)  # a whole second: microsecond=0
PLACED = {
    "items": [{"sku": "GADGET-2", "qty": 1, "unit_price_minor": 4999}],
    "total_minor": 4999,
    "currency": "USD",
    "card_token": "tok_ok",
    "ship_to": {"country": "ZZ"},
}


def event(
    occurred_at: datetime = T0,
    event_type: str = "OrderPlaced",
    payload: dict[str, Any] | None = None,
    since_previous_ms: float | None = None,
    compensation: bool = False,
) -> TraceEvent:
    payload = payload if payload is not None else PLACED
    return TraceEvent(
        event_type=event_type,
        producer="order",
        occurred_at=occurred_at,
        event_id=uuid.UUID("00000000-0000-4000-8000-0000000000e1"),
        causation_id=None,
        compensation=compensation,
        since_previous_ms=since_previous_ms,
        since_start_ms=0.0,
        facts=key_facts(event_type, payload, "EUR"),
        payload=payload,
        traceparent=None,
    )


def parked(state: str = "retrying", **kw: Any) -> ParkedMessage:
    fields: dict[str, Any] = {
        "service": "payment",
        "dlq_id": "payment:7",
        "state": state,
        "event_type": "InventoryReserved",
        "attempts": 3,
        "error_kind": "transient",
        "last_error": "gateway down",
        "next_attempt_at": T0 + timedelta(seconds=5) if state == "retrying" else None,
        "parked_at": T0,
        "queued_behind": None,
    }
    return ParkedMessage(**(fields | kw))


def trace(**kw: Any) -> Trace:
    fields: dict[str, Any] = {
        "order_id": OID,
        "trace_id": None,
        "status": "PENDING",
        "cancel_reason": None,
        "customer_id": "c-1",
        "total_minor": 4999,
        "created_at": T0,
        "terminal_at": None,
        "archived_at": None,
        "duration_ms": None,
        "events": (event(),),
        "waiting_for": ("payment: charge the card (PaymentCharged or PaymentFailed)",),
        "waiting_s": 12.5,
    }
    return Trace(**(fields | kw))


def time_column(line: str) -> str:
    width = len("  ") + 15
    return line[:width].strip()


def test_an_event_on_a_whole_second_shows_its_milliseconds() -> None:
    line = render_event(event(T0))
    assert time_column(line) == "15:22:59.000"
    # the same column as the header, and as an event with a fraction of a second
    other = render_event(event(T0.replace(microsecond=468_123)))
    assert time_column(other) == "15:22:59.468"
    assert line.index("order") == other.index("order") == COLUMNS.index("PRODUCER")


def test_times_are_shown_in_utc_whatever_zone_they_come_in() -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    assert time_column(render_event(event(local))) == "15:22:59.000"
    assert clock_ms("2026-12-01T15:22:59Z") == "15:22:59.000"


def test_an_expiry_in_a_payload_is_parsed_before_it_is_shown() -> None:
    items = [{"sku": "A-1", "qty": 2}]
    for at in ("2026-12-01T15:32:59Z", "2026-12-01T10:32:59-05:00", "2026-12-01T15:32:59.5"):
        facts = key_facts("InventoryReserved", {"items": items, "expires_at": at}, None)
        assert facts == "held A-1x2 until 15:32:59Z"
    assert key_facts("InventoryReserved", {"items": items}, None) == "held A-1x2 until ?"
    assert key_facts("InventoryReserved", {"items": items, "expires_at": "soon"}, None) == (
        "held A-1x2 until soon"
    )


def test_amounts_are_in_the_payloads_currency_else_the_orders() -> None:
    assert key_facts("PaymentCharged", {"amount_minor": 4999, "currency": "GBP"}, "EUR") == (
        "charged 49.99 GBP"
    )
    assert key_facts("PaymentCharged", {"amount_minor": 4999}, "EUR") == "charged 49.99 EUR"
    # no currency anywhere: none is made up
    assert key_facts("PaymentRefunded", {"amount_minor": 100, "reason": "r"}, None) == (
        "refunded 1.00 (reason: r)"
    )


def test_a_retry_shows_its_next_attempt_in_utc_seconds() -> None:
    text = render_trace(trace(blocked_on=(parked(),)))
    assert "~ payment is retrying InventoryReserved (attempt 3, next at 15:23:04Z)" in text
    assert "waiting 12.5s for:" in text


def test_the_trace_json_is_the_shape_of_saga_trace_json() -> None:
    second = event(
        T0 + timedelta(milliseconds=71), "PaymentRefunded", {"amount_minor": 1}, 71.0, True
    )
    dead = parked("dead", dlq_id="payment:8")
    conflict = parked("dead", dlq_id="order:9", service="order", error_kind="conflict")
    t = trace(events=(event(), second), blocked_on=(dead,), conflicts=(conflict,))
    d = json.loads(json.dumps(t.as_dict()))
    assert list(d) == [
        "order_id",
        "trace_id",
        "status",
        "cancel_reason",
        "customer_id",
        "total_minor",
        "created_at",
        "terminal_at",
        "archived_at",
        "duration_ms",
        "events",
        "compensations",
        "waiting_for",
        "waiting_s",
        "blocked_on",
        "conflicts",
    ]
    assert d["order_id"] == str(OID) and d["created_at"] == "2026-12-01T15:22:59+00:00"
    assert [e["event_type"] for e in d["compensations"]] == ["PaymentRefunded"]
    assert d["events"][0] == {
        "event_type": "OrderPlaced",
        "producer": "order",
        "occurred_at": "2026-12-01T15:22:59+00:00",
        "event_id": "00000000-0000-4000-8000-0000000000e1",
        "causation_id": None,
        "compensation": False,
        "since_previous_ms": None,
        "since_start_ms": 0.0,
        "facts": "GADGET-2x1; total 49.99 USD; card tok_ok; ship to ZZ",
        "payload": PLACED,
        "traceparent": None,
    }
    assert d["blocked_on"] == [
        {
            "service": "payment",
            "dlq_id": "payment:8",
            "state": "dead",
            "event_type": "InventoryReserved",
            "attempts": 3,
            "error_kind": "transient",
            "last_error": "gateway down",
            "next_attempt_at": None,
            "parked_at": "2026-12-01T15:22:59+00:00",
            "queued_behind": None,
        }
    ]
    assert [c["dlq_id"] for c in d["conflicts"]] == ["order:9"]
    assert "events" not in t.as_dict(events=False)
    assert parked().as_dict()["next_attempt_at"] == "2026-12-01T15:23:04+00:00"


def test_stuck_listings_keep_their_json_shapes() -> None:
    stuck = StuckOrder(OID, "PENDING", None, ("w",), 31.0, (parked(),))
    assert list(stuck.as_dict()) == [
        "order_id",
        "status",
        "cancel_reason",
        "waiting_for",
        "waiting_s",
        "blocked_on",
    ]
    assert stuck.as_dict()["order_id"] == str(OID)
    blocker = Blocker("payment:7", "payment", "dead", "InventoryReserved", 3, None, "e", 0.0)
    idle = IdleOrder(
        str(OID), "PENDING", 31.0, ("w",), (blocker,), (Unsent("payment", 2, 4.04),), "v"
    )
    report = AuditReport(1, 0, [], [idle], 30.0)
    assert json.loads(json.dumps(report.as_dict()))["stuck"] == [
        {
            "order_id": str(OID),
            "status": "PENDING",
            "idle_s": 31.0,
            "waiting_for": ["w"],
            "blocked_on": [blocker.as_dict()],
            "unsent_outbox": [{"service": "payment", "count": 2, "age_s": 4.0}],
            "verdict": "v",
        }
    ]
