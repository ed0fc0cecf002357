"""Parked messages: retries that must not block a partition, and the dead-letter queue.

Why parking in the database rather than retry topics or pause/resume: a failing message is
moved aside in the same transaction that advances the consumer, so the partition keeps
flowing for every other order at once (bounded by one batch), while the order's own later
messages queue behind it in the same table and keep their order. Retry topics would need
a topic per delay and lose per-order ordering; pausing a partition would stall every order
that hashes to it.
"""

from __future__ import annotations

import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from eventing.kafka.clients import Record
from eventing.outbox import OutboxRow, encode_headers, insert_outbox
from eventing.queries import Queries
from shared_events.topics import dlq_topic

__all__ = ["Parking", "error_text", "poison_event_id"]

Q = Queries.load("eventing")


def poison_event_id(rec: Record) -> uuid.UUID:
    """A stable id for a message we cannot read: redelivery of it dedupes."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"kafka://{rec.topic}/{rec.partition}/{rec.offset}")


def error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


@dataclass(frozen=True)
class Parking:
    service: str

    def blocking_orders(
        self, conn: psycopg.Connection[Any], order_ids: set[uuid.UUID]
    ) -> set[uuid.UUID]:
        if not order_ids:
            return set()
        rows = Q.all(conn, "parked_blocking_orders", {"order_ids": list(order_ids)})
        return {r["order_id"] for r in rows}

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
        now: datetime,
    ) -> bool:
        """Set `rec` aside; returns False when it was already parked (a redelivery)."""
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
        if seq is not None and state == "dead":
            self.copy_to_dlq_topic(conn, rec, error_kind, error, attempts=1)
        return seq is not None

    def copy_to_dlq_topic(
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
