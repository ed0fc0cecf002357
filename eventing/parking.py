"""Parked messages: retries that must not block a partition, and the dead-letter queue.

Why parking in the database rather than retry topics or pause/resume: a failing message is
moved aside in the same transaction that advances the consumer, so the partition keeps
flowing for every other order at once (bounded by one batch), while the order's own later
messages queue behind it in the same table and keep their order. Retry topics would need
a topic per delay and lose per-order ordering; pausing a partition would stall every order
that hashes to it.

This module is the one owner of dead-lettering: the decision (retry or dead, `verdict`),
the row, the copy of the original message to `<service>.dlq`, the span mark and the one
ERROR line all happen here, whichever path set the message aside (the consumer, the
retrier, a handler that met a contradiction).
"""

from __future__ import annotations

import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from eventing import tracing
from eventing.errors import classify
from eventing.kafka.clients import Record
from eventing.logging import bound_event, get_logger
from eventing.outbox import OutboxRow, decode_headers, encode_headers, insert_outbox
from eventing.queries import Queries
from eventing.retry import RetryPolicy
from shared_events.codec import header_value
from shared_events.envelope import Event, utcnow
from shared_events.topics import dlq_topic

__all__ = ["Parking", "Verdict", "error_text", "poison_event_id", "record_of"]

log = get_logger(__name__)
Q = Queries.load("eventing")

_FIX = "fix the cause, then `saga dlq redrive`"


def poison_event_id(rec: Record) -> uuid.UUID:
    """A stable id for a message we cannot read: redelivery of it dedupes."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"kafka://{rec.topic}/{rec.partition}/{rec.offset}")


def error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


def record_of(row: dict[str, Any]) -> Record:
    """The original message of a parked row."""
    return Record(
        topic=row["source_topic"],
        partition=row["source_partition"],
        offset=row["source_offset"],
        key=bytes(row["key"]) if row["key"] is not None else None,
        value=bytes(row["value"]) if row["value"] is not None else None,
        headers=decode_headers(row["headers"]),
        timestamp_ms=0,
    )


@dataclass(frozen=True)
class Verdict:
    """What becomes of a message whose handling failed."""

    dead: bool
    kind: str  # transient | permanent
    error: str
    delay_s: float  # until the next attempt, when not dead


@dataclass(frozen=True)
class Parking:
    service: str

    def verdict(
        self,
        exc: BaseException,
        policy: RetryPolicy,
        attempts: int,
        first_failed_at: datetime | None = None,
        now: datetime | None = None,
    ) -> Verdict:
        """Dead or retry, after `attempts` failures: permanent errors die at once, transient
        ones when the policy's budget (attempts or age) is spent."""
        kind = classify(exc)
        now = now or utcnow()
        dead = kind == "permanent" or policy.exhausted(attempts, first_failed_at or now, now)
        return Verdict(dead, kind, error_text(exc), 0.0 if dead else policy.next_delay_s(attempts))

    @staticmethod
    def blocking_orders(conn: psycopg.Connection[Any], order_ids: set[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these orders wait behind a parked message that blocks them."""
        if not order_ids:
            return set()
        rows = Q.all(conn, "parked_blocking_orders", {"order_ids": list(order_ids)})
        return {r["order_id"] for r in rows}

    # -- setting a message aside -------------------------------------------------------

    def dead(
        self,
        conn: psycopg.Connection[Any],
        rec: Record,
        *,
        kind: str,
        reason: str,
        event: Event | None = None,
        blocks: bool = True,
        message: str = "message dead-lettered",
        action: str = _FIX,
    ) -> bool:
        """Dead-letter `rec` (its event, if it could be read); False if it was already parked.

        `blocks`: later messages of its order wait behind it (a poison message, a stale or a
        conflicting event hold nothing back)."""
        order_id = event.order_id if event is not None else _key_as_order_id(rec)
        fresh = self._insert(
            conn,
            rec,
            event_id=event.event_id if event is not None else poison_event_id(rec),
            order_id=order_id,
            event_type=event.event_type if event is not None else None,
            state="dead",
            blocks=blocks,
            error_kind=kind,
            error=reason,
            delay_s=0,
        )
        if fresh:
            self._copy_to_dlq_topic(conn, rec, kind, reason, attempts=1)
            self._said_dead(
                rec,
                order_id,
                event.event_id if event is not None else None,
                event.event_type if event is not None else None,
                event.traceparent if event is not None else None,
                kind,
                reason,
                message,
                action,
                attempts=1,
            )
        return fresh

    def retry_later(
        self, conn: psycopg.Connection[Any], rec: Record, event: Event, verdict: Verdict
    ) -> bool:
        """Park `event` for its first retry (its order's later messages queue behind it)."""
        fresh = self._insert(
            conn,
            rec,
            event_id=event.event_id,
            order_id=event.order_id,
            event_type=event.event_type,
            state="retrying",
            blocks=True,
            error_kind=verdict.kind,
            error=verdict.error,
            delay_s=verdict.delay_s,
        )
        tracing.mark(
            event.traceparent,
            "parked for a retry",
            error=verdict.error,
            **{"saga.event_type": event.event_type, "saga.order_id": str(event.order_id)},
        )
        log.warning("handler failed, will retry", error=verdict.error, attempt=1)
        return fresh

    def behind(self, conn: psycopg.Connection[Any], rec: Record, event: Event) -> bool:
        """Queue `event` behind an earlier parked message of its order (per-order order)."""
        fresh = self._insert(
            conn,
            rec,
            event_id=event.event_id,
            order_id=event.order_id,
            event_type=event.event_type,
            state="retrying",
            blocks=True,
            error_kind=None,
            error=None,
            delay_s=0,
        )
        log.info("parked behind an earlier message of the same order")
        return fresh

    def failed_again(
        self, conn: psycopg.Connection[Any], row: dict[str, Any], verdict: Verdict
    ) -> None:
        """A retry of a parked row failed: count it, and dead-letter it if the verdict says so."""
        Q.execute(
            conn,
            "parked_failed_again",
            {
                "seq": row["seq"],
                "state": "dead" if verdict.dead else "retrying",
                "error_kind": verdict.kind,
                "last_error": verdict.error,
                "delay_s": verdict.delay_s,
            },
        )
        attempts = row["attempts"] + 1
        rec = record_of(row)
        traceparent = header_value(rec.headers, "traceparent")
        if verdict.dead:
            self._copy_to_dlq_topic(conn, rec, verdict.kind, verdict.error, attempts)
            self._said_dead(
                rec,
                row["order_id"],
                row["event_id"],
                row["event_type"],
                traceparent,
                verdict.kind,
                verdict.error,
                "message dead-lettered after retries",
                _FIX,
                attempts,
            )
            return
        tracing.mark(
            traceparent,
            "retry failed",
            error=verdict.error,
            **{"saga.attempt": attempts, "saga.event_type": row["event_type"] or ""},
        )
        log.warning(
            "retry failed, will retry again",
            error=verdict.error,
            attempt=attempts,
            next_in_s=round(verdict.delay_s, 3),
        )

    # -- the parts -----------------------------------------------------------------------

    def _insert(
        self,
        conn: psycopg.Connection[Any],
        rec: Record,
        *,
        event_id: uuid.UUID,
        order_id: uuid.UUID | None,
        event_type: str | None,
        state: str,
        blocks: bool,
        error_kind: str | None,
        error: str | None,
        delay_s: float,
    ) -> bool:
        now = utcnow()
        failed = error is not None
        seq = Q.scalar(
            conn,
            "parked_insert",
            {
                "event_id": event_id,
                "order_id": order_id,
                "event_type": event_type,
                "state": state,
                "blocks": blocks,
                "source_topic": rec.topic,
                "source_partition": rec.partition,
                "source_offset": rec.offset,
                "key": rec.key,
                "value": rec.value,
                "headers": encode_headers(rec.headers),
                "attempts": 1 if failed else 0,
                "error_kind": error_kind,
                "last_error": error,
                "first_failed_at": now if failed else None,
                "last_failed_at": now if failed else None,
                "next_attempt_at": now + timedelta(seconds=delay_s),
            },
        )
        return seq is not None

    def _said_dead(
        self,
        rec: Record,
        order_id: uuid.UUID | None,
        event_id: uuid.UUID | None,
        event_type: str | None,
        traceparent: str | None,
        kind: str,
        reason: str,
        message: str,
        action: str,
        attempts: int,
    ) -> None:
        """The one ERROR line of a dead letter, and its mark in the saga's trace."""
        tracing.mark(
            traceparent,
            "dead-lettered",
            error=reason,
            **{"saga.event_type": event_type or "", "saga.order_id": str(order_id)},
        )
        # A message that could not be read is named by where it came from.
        where = (
            {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
            if event_type is None
            else {}
        )
        with bound_event(order_id, event_id, event_type, traceparent):
            log.error(
                message, reason=reason, error_kind=kind, attempts=attempts, action=action, **where
            )

    def _copy_to_dlq_topic(
        self,
        conn: psycopg.Connection[Any],
        rec: Record,
        error_kind: str | None,
        error: str | None,
        attempts: int,
    ) -> None:
        """The original message, untouched, plus why it died, on `<service>.dlq`."""
        headers = [
            *rec.headers,
            ("dlq.error_kind", (error_kind or "").encode()),
            ("dlq.error", (error or "").encode()),
            ("dlq.attempts", str(attempts).encode()),
            ("dlq.source", f"{rec.topic}/{rec.partition}/{rec.offset}".encode()),
        ]
        insert_outbox(
            conn,
            [
                OutboxRow(
                    dlq_topic(self.service), rec.key, rec.value or b"", headers, None, None, None
                )
            ],
        )

    def park(
        self,
        conn: psycopg.Connection[Any],
        rec: Record,
        *,
        event_id: uuid.UUID,
        order_id: uuid.UUID | None,
        event_type: str | None,
        state: str,
        blocks: bool,
        error_kind: str | None,
        error: str | None,
        delay_s: float,
        now: datetime | None = None,
    ) -> bool:
        """Low-level: set `rec` aside as given (tests build parked rows with it); a dead row
        is also copied to `<service>.dlq`. Code paths use `dead`, `retry_later`, `behind`."""
        fresh = self._insert(
            conn,
            rec,
            event_id=event_id,
            order_id=order_id,
            event_type=event_type,
            state=state,
            blocks=blocks,
            error_kind=error_kind,
            error=error,
            delay_s=delay_s,
        )
        if fresh and state == "dead":
            self._copy_to_dlq_topic(conn, rec, error_kind, error, attempts=1)
        return fresh


def _key_as_order_id(rec: Record) -> uuid.UUID | None:
    try:
        return uuid.UUID(rec.key.decode()) if rec.key else None
    except (ValueError, UnicodeDecodeError):
        return None
