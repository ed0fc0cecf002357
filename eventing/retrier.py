"""Retries parked messages when due, head of each order's queue first.

A transient failure gets another attempt after an exponential, fully jittered delay; when
the message kind's budget (attempts or age) runs out it is dead-lettered: kept in the
parked table as 'dead', copied untouched to `<service>.dlq`, and never dropped.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from eventing.errors import reraise_missing_partition
from eventing.logging import bound_event, get_logger
from eventing.parking import Verdict, record_of
from eventing.processing import Processor, decode_record
from eventing.queries import Queries

__all__ = ["Retrier"]

log = get_logger(__name__)
Q = Queries.load("eventing")


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
        d = decode_record(record_of(row))
        order_id = row["order_id"]
        parking = self.processor.parking
        with bound_event(order_id, row["event_id"], row["event_type"]):
            if d.poison is not None:
                parking.failed_again(conn, row, Verdict(True, d.poison.kind, d.poison.reason, 0))
                return
            event = d.event
            assert event is not None
            # Only what was set aside as stale is checked again: any other parked message
            # kept its order's records from being archived, so it is safe at any age.
            stale = self.processor.stale(event) if row["error_kind"] == "stale" else None
            if stale is not None:
                parking.failed_again(conn, row, Verdict(True, "stale", stale, 0))
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
                verdict = parking.verdict(
                    exc,
                    self.processor.policy_for(type(event)),
                    attempts=row["attempts"] + 1,
                    first_failed_at=row["first_failed_at"],
                )
                parking.failed_again(conn, row, verdict)
