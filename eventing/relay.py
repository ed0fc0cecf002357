"""Outbox relay: publishes committed outbox rows in id order, then marks them sent.

Order per order_id holds because rows are read in id order and handed to one idempotent
producer; if a delivery fails, nothing from that row on is marked sent, so the next round
re-sends the tail in order (consumers dedupe the repeats). Sent rows stay for
SAGA_OUTBOX_RETENTION_S and go with their partition (eventing/partitions.py): publishing
never waits for clean-up.

While commits keep coming, the rows of several rounds are marked sent by one statement, at
most MARK_WITHIN_S after the first of them went out; the reads in between leave them out.
The reads stay read-only, so no commit's WAL flush delays a round's publishing. A mark lost
in a crash only means those rows are sent again, and consumers drop repeats.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from eventing import db, metrics
from eventing.crashpoints import maybe_crash
from eventing.kafka.clients import EventProducer
from eventing.logging import get_logger
from eventing.outbox import decode_headers
from eventing.queries import Queries
from eventing.reconnect import Reconnect
from shared_events.codec import header_value

__all__ = ["Relay"]

log = get_logger(__name__)
Q = Queries.load("eventing")
_LEADER_LOCK = "SELECT pg_try_advisory_lock(hashtext('checkout-saga-outbox-relay'))"
# How long published rows may wait for their mark: under load, rounds come faster than
# this and share one; when idle, the mark follows its round after this.
MARK_WITHIN_S = 0.05


def _types(records: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]) -> set[str]:
    return {t for _, _, _, headers in records if (t := header_value(headers, "event_type"))}


class Relay:
    def __init__(
        self,
        dsn: str,
        producer: EventProducer,
        batch: int = 2000,
        idle_poll_s: float = 1.0,
        service: str = "",
    ) -> None:
        self.dsn = dsn
        self.service = service
        self.producer = producer
        self.batch = batch
        self.idle_poll_s = idle_poll_s
        self.published = 0
        # Published, not yet marked sent: partition -> ids, and since when.
        self._unmarked: dict[str, list[int]] = defaultdict(list)
        self._unmarked_since = 0.0
        # One line when publishing starts to fail (e.g. fewer in-sync replicas than
        # min.insync.replicas), not one per retry: the rows wait in the outbox meanwhile.
        self._kafka_down = Reconnect(
            "cannot publish to Kafka; the outbox keeps the rows and the relay retries "
            "until Kafka accepts them (see `saga stack status` for brokers and replicas)",
            resumed="publishing to Kafka again",
            base_s=0.1,
            cap_s=5.0,
            log=log,
        )

    def publish_once(self, conn: psycopg.Connection[Any], *, defer_mark: bool = False) -> int:
        """Publish up to one batch; returns how many rows went out (-1: a failure). They are
        marked sent before it returns, unless `defer_mark`: then `mark_pending` marks them,
        and later calls leave them out. A failure marks what went out at once."""
        published = [i for ids in self._unmarked.values() for i in ids]
        if published:
            rows = Q.rows(
                conn, "outbox_unsent_except", {"published": published, "limit": self.batch}
            )
        else:
            rows = Q.rows(conn, "outbox_unsent", {"limit": self.batch})
        if not rows:
            return 0
        records = [
            (topic, bytes(key) if key is not None else None, bytes(value), decode_headers(headers))
            for _id, topic, key, value, headers, _part in rows
        ]
        errors = self.producer.produce_all(records)
        maybe_crash("after_produce", event_types=_types(records))
        if not self._unmarked:
            self._unmarked_since = time.monotonic()
        count = 0
        for row, err in zip(rows, errors, strict=True):
            if err is not None:
                self._kafka_down.note(err, topic=row[1])
                break
            self._unmarked[row[5]].append(row[0])
            count += 1
        if count == len(rows):
            self._kafka_down.succeeded()
        if not defer_mark or count < len(rows):
            self.mark_pending(conn)
        self.published += count
        for topic, n in Counter(r[1] for r in rows[:count]).items():
            metrics.EVENTS_PUBLISHED.labels(self.service, topic).inc(n)
        return count if count == len(rows) else -1

    def mark_pending(self, conn: psycopg.Connection[Any]) -> None:
        """Mark sent every row published and not yet marked."""
        # One statement per partition, each its own transaction (the connection is in
        # autocommit): no BEGIN and COMMIT round trips.
        for partition, ids in self._unmarked.items():
            conn.execute(
                # `sent_at IS NULL` lets it use the partition's only index (the partial one
                # on unsent ids) instead of scanning the partition.
                sql.SQL(
                    "UPDATE {} SET sent_at = now() WHERE id = ANY(%s) AND sent_at IS NULL"
                ).format(sql.Identifier(partition)),
                (ids,),
                prepare=True,
            )
        self._unmarked.clear()

    def _mark_due_in(self) -> float:
        """Seconds until the unmarked rows are due for their mark (<= 0: now)."""
        return self._unmarked_since + MARK_WITHIN_S - time.monotonic()

    def run(self, stop: threading.Event, connected: Callable[[], None] = lambda: None) -> None:
        """Publish until `stop`. A database error ends the run; the runtime supervises it
        (`_supervised`), reconnecting with backoff; `connected` is called once connected."""
        with db.connect(self.dsn) as conn:
            leader = conn.execute(_LEADER_LOCK).fetchone()[0]  # type: ignore[index]
            connected()
            if not leader:
                # Another instance relays this database; one publisher keeps order.
                stop.wait(2.0)
                return
            conn.execute("LISTEN outbox")
            self._loop(conn, stop)
            self.mark_pending(conn)

    def _loop(self, conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        while not stop.is_set():
            # Notifications received so far are of commits the next read sees; dropping
            # them means a wake-up comes only from a commit after this read, and a partial
            # batch is not followed by a read that finds nothing (a statement per wake-up).
            for _ in conn.notifies(timeout=0):
                pass
            n = self.publish_once(conn, defer_mark=True)
            if n < 0:
                self._kafka_down.wait(stop)  # the broker refused: back off, re-send the tail
                continue
            if n >= self.batch:
                if self._mark_due_in() <= 0:
                    self.mark_pending(conn)
                continue  # more waiting: keep going without waiting for a notification
            if self._unmarked:
                # A commit before the mark is due: publish it first, and mark both together.
                due_in = self._mark_due_in()
                if due_in > 0 and any(True for _ in conn.notifies(timeout=due_in, stop_after=1)):
                    continue
                self.mark_pending(conn)
            # Sleep until a commit notifies us (trigger on outbox) or the idle poll.
            for _ in conn.notifies(timeout=self.idle_poll_s, stop_after=1):
                pass
