"""Retries parked messages when due, head of each order's queue first.

A transient failure gets another attempt after an exponential, fully jittered delay; when
the message kind's budget (attempts or age) runs out it is dead-lettered: kept in the
parked table as 'dead', copied untouched to `<service>.dlq`, and never dropped.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import psycopg

from eventing.errors import classify, reraise_missing_partition
from eventing.kafka.clients import Record
from eventing.logging import bound_event, get_logger
from eventing.outbox import decode_headers
from eventing.parking import error_text
from eventing.processing import Processor, decode_record
from eventing.queries import Queries
from shared_events.envelope import utcnow

__all__ = ["Retrier"]

log = get_logger(__name__)
Q = Queries.load("eventing")


def _record(row: dict[str, Any]) -> Record:
    return Record(
        topic=row["source_topic"],
        partition=row["source_partition"],
        offset=row["source_offset"],
        key=bytes(row["key"]) if row["key"] is not None else None,
        value=bytes(row["value"]) if row["value"] is not None else None,
        headers=decode_headers(row["headers"]),
        timestamp_ms=0,
    )


class Retrier:
    def __init__(self, processor: Processor, batch: int = 200) -> None:
        self.processor = processor
        self.batch = batch
        self.wakeup = threading.Event()

    def run_once(self, conn: psycopg.Connection[Any]) -> int:
        """One pass over due messages, in one transaction; returns how many were tried."""
        with conn.transaction():
            rows = Q.all(conn, "parked_due", {"limit": self.batch})
            for row in rows:
                self._retry(conn, row)
        return len(rows)

    def seconds_until_due(self, conn: psycopg.Connection[Any]) -> float | None:
        value = Q.scalar(conn, "parked_next_due_in")
        return None if value is None else float(value)

    def _retry(self, conn: psycopg.Connection[Any], row: dict[str, Any]) -> None:
        d = decode_record(_record(row))
        order_id = row["order_id"]
        with bound_event(order_id, row["event_id"], row["event_type"]):
            if d.poison is not None:
                self._failed(conn, row, d.poison.kind, d.poison.reason, dead=True)
                return
            event = d.event
            assert event is not None
            # Only what was set aside as stale is checked again: any other parked message
            # kept its order's records from being archived, so it is safe at any age.
            stale = self.processor.stale(event) if row["error_kind"] == "stale" else None
            if stale is not None:
                self._failed(conn, row, "stale", stale, dead=True)
                return
            try:
                with conn.transaction():
                    if type(event) in self.processor.consumes:
                        done = self.processor.apply_one(conn, event)
                    else:
                        done = False
                    Q.execute(conn, "parked_delete", {"seq": row["seq"]})
                if done:
                    log.info("parked message processed", attempts=row["attempts"] + 1)
            except psycopg.OperationalError:
                raise
            except Exception as exc:
                reraise_missing_partition(exc)
                kind = classify(exc)
                policy = self.processor.policy_for(type(event))
                now = utcnow()
                first: datetime = row["first_failed_at"] or now
                attempts = row["attempts"] + 1
                dead = kind == "permanent" or policy.exhausted(attempts, first, now)
                self._failed(
                    conn,
                    row,
                    kind,
                    error_text(exc),
                    dead=dead,
                    delay_s=policy.next_delay_s(attempts),
                )

    def _failed(
        self,
        conn: psycopg.Connection[Any],
        row: dict[str, Any],
        kind: str,
        error: str,
        *,
        dead: bool,
        delay_s: float = 0.0,
    ) -> None:
        Q.execute(
            conn,
            "parked_failed_again",
            {
                "seq": row["seq"],
                "state": "dead" if dead else "retrying",
                "error_kind": kind,
                "last_error": error,
                "delay_s": delay_s,
            },
        )
        attempts = row["attempts"] + 1
        if dead:
            self.processor.parking.copy_to_dlq_topic(conn, _record(row), kind, error, attempts)
            log.error(
                "message dead-lettered after retries",
                reason=error,
                error_kind=kind,
                attempts=attempts,
                action="fix the cause, then `saga dlq redrive`",
            )
        else:
            log.warning(
                "retry failed, will retry again",
                error=error,
                attempt=attempts,
                next_in_s=round(delay_s, 3),
            )
