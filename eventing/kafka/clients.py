"""The only module that talks to confluent-kafka for producing and consuming.

Everything above it sees `Record` (a plain message) and the two small wrappers here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from eventing.logging import get_logger

__all__ = ["EventConsumer", "EventProducer", "Record"]

log = get_logger(__name__)


class _ToStructlog(logging.Handler):
    """librdkafka's own log lines (via confluent-kafka's `logger`) as structured logs; a line
    that only repeats itself (a broker refusing connections, every second) is logged once a
    half minute."""

    def __init__(self) -> None:
        super().__init__()
        self._said: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            key = _DIGITS.sub("#", message)
            now = time.monotonic()
            if now - self._said.get(key, -_REPEAT_QUIET_S) < _REPEAT_QUIET_S:
                return
            if len(self._said) > 1000:  # many distinct lines: start afresh
                self._said.clear()
            self._said[key] = now
            log.warning("librdkafka", message=message)
        else:
            log.debug("librdkafka", message=message)


_DIGITS = re.compile(r"\d+")
_KAFKA_LOGGER = logging.getLogger("checkout_saga.librdkafka")
_KAFKA_LOGGER.addHandler(_ToStructlog())
_KAFKA_LOGGER.propagate = False


_DELIVERY_TIMEOUT_S = 30
# While Kafka is unreachable librdkafka reports the same error many times a second.
_REPEAT_QUIET_S = 30.0


def _quiet_repeat(said: dict[int, float], error: int) -> bool:
    """True if an error of this code was already logged within the last half minute."""
    now = time.monotonic()
    if now - said.get(error, -_REPEAT_QUIET_S) < _REPEAT_QUIET_S:
        return True
    said[error] = now
    return False


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    return [(k, v if v is not None else b"") for k, v in (raw or [])]


class EventProducer:
    """Idempotent producer (acks=all): no duplicates or reordering from its own retries."""

    def __init__(self, bootstrap: str, client_id: str, linger_ms: int = 2) -> None:
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 200000,
            # Every message gets its delivery report within this: produce_all waits for all
            # of them, so nothing is left queued when it returns and a retry of the outbox
            # tail never puts a second copy behind a first that is still waiting.
            "message.timeout.ms": _DELIVERY_TIMEOUT_S * 1000,
            "compression.type": "lz4",
            "error_cb": self._on_error,
            "logger": _KAFKA_LOGGER,
        }
        self._fatal: str | None = None
        self._said: dict[int, float] = {}
        self._producer = Producer(self._config)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = str(err)
        elif _quiet_repeat(self._said, err.code()):
            return
        log.warning("kafka producer error", error=str(err), fatal=err.fatal())

    def _renew_if_fatal(self) -> None:
        # An idempotent producer that hit a fatal error refuses every later message; the
        # outbox still holds them all, so a new producer (new producer id) re-sends safely.
        if self._fatal is None:
            return
        log.error("kafka producer hit a fatal error; replacing it", error=self._fatal)
        self._producer.purge()
        self._producer.flush(0)
        self._fatal = None
        self._producer = Producer(self._config)

    def produce_all(
        self,
        records: Sequence[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]],
        timeout_s: float = _DELIVERY_TIMEOUT_S + 15.0,
    ) -> list[str | None]:
        """Produce in order and wait for every delivery; returns an error (or None) per record."""
        self._renew_if_fatal()
        results: list[str | None] = ["not delivered"] * len(records)
        done = threading.Event()
        pending = [len(records)]

        def make_cb(i: int) -> Callable[[KafkaError | None, Any], None]:
            def cb(err: KafkaError | None, _msg: Any) -> None:
                results[i] = None if err is None else str(err)
                pending[0] -= 1
                if pending[0] == 0:
                    done.set()

            return cb

        for i, (topic, key, value, headers) in enumerate(records):
            while True:
                try:
                    self._producer.produce(
                        topic, value, key, headers=list(headers), on_delivery=make_cb(i)
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)  # queue full: serve callbacks, then retry
                except KafkaException as exc:
                    results[i] = str(exc)
                    pending[0] -= 1
                    break
        if not records:
            return results
        self._producer.flush(timeout_s)
        return results

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)


class EventConsumer:
    """A group consumer whose offsets are stored only after the database commit.

    Auto-commit only ever commits offsets we stored explicitly, so an offset never runs
    ahead of the work it stands for; a crash in between re-delivers and the inbox dedupes.
    """

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: list[str],
        client_id: str,
        on_stats: Callable[[str], None] | None = None,
    ) -> None:
        self._said: dict[int, float] = {}
        self._on_stats = on_stats
        # When the group membership was last seen settled (librdkafka's statistics).
        self._settled_at = time.monotonic()
        self._consumer = Consumer(
            {
                # librdkafka's statistics, every 5 s, served by poll: consumer lag per
                # partition, and whether the group membership is settled.
                "statistics.interval.ms": 5000,
                "stats_cb": self._stats,
                "bootstrap.servers": bootstrap,
                "group.id": group_id,
                "client.id": client_id,
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 500,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                # Also the rebalance timeout: how long a group may wait for a member that
                # joined and then went silent. A batch takes seconds; a database outage
                # longer than this makes us leave and rejoin, which only re-delivers.
                "max.poll.interval.ms": 60000,
                # Bounded prefetch: memory stays flat however large the backlog is.
                "queued.max.messages.kbytes": 16384,
                "fetch.max.bytes": 8388608,
                # The broker answers a fetch as soon as data arrives; this only bounds how
                # long an idle fetch waits, so a short value buys no latency, only churn.
                "fetch.wait.max.ms": 100,
                "error_cb": self._on_error,
                "logger": _KAFKA_LOGGER,
            }
        )
        self._topics = topics
        # What this member holds, kept by the rebalance callbacks (they run inside poll):
        # asking librdkafka for the assignment from another thread (the readiness probe)
        # blocks while the consumer thread polls.
        self._held: set[tuple[str, int]] = set()
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _stats(self, stats: str) -> None:
        group = json.loads(stats).get("cgrp") or {}
        if group.get("state") == "up" and group.get("join_state") == "steady":
            self._settled_at = time.monotonic()
        if self._on_stats is not None:
            self._on_stats(stats)

    def unsettled_s(self) -> float:
        """How long the group membership has not been settled (joined, assignment done)."""
        return time.monotonic() - self._settled_at

    def _on_error(self, err: KafkaError) -> None:
        if not err.fatal() and _quiet_repeat(self._said, err.code()):
            return
        log.warning("kafka consumer error", error=str(err), fatal=err.fatal())

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self._held |= {(p.topic, p.partition) for p in partitions}
        log.info("partitions assigned", partitions=len(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        # No commit here: auto-commit already commits the stored offsets of revoked
        # partitions, and a synchronous commit inside a rebalance callback is where
        # consumers have been seen to stall. Anything not yet committed is re-delivered
        # to the next owner, whose inbox drops it.
        self._held -= {(p.topic, p.partition) for p in partitions}
        log.info("partitions revoked", partitions=len(partitions))

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self._held -= {(p.topic, p.partition) for p in partitions}
        log.warning("partitions lost (the group moved on without us)", partitions=len(partitions))

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[Record]:
        # consume() waits out its whole timeout unless the batch fills up: block only for
        # the first message, then take whatever else is already fetched.
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        msgs = [first]
        if max_messages > 1:
            msgs += self._consumer.consume(num_messages=max_messages - 1, timeout=0)
        out: list[Record] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                log.warning("kafka consume error", error=str(err))
                continue
            out.append(
                Record(
                    topic=m.topic() or "",
                    partition=m.partition() or 0,
                    offset=m.offset() or 0,
                    key=m.key(),
                    value=m.value(),
                    headers=_headers(m.headers()),
                    timestamp_ms=m.timestamp()[1],
                )
            )
        return out

    def assigned(self) -> int:
        """How many partitions this consumer holds now (safe from any thread)."""
        return len(self._held)

    def store(self, records: Sequence[Record]) -> None:
        """Mark records as done: their offsets will be committed."""
        last: dict[tuple[str, int], int] = {}
        for r in records:
            key = (r.topic, r.partition)
            last[key] = max(last.get(key, -1), r.offset)
        if not last:
            return
        tps = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        try:
            self._consumer.store_offsets(offsets=tps)
        except KafkaException as exc:
            # Partition revoked meanwhile: the new owner re-delivers, the inbox dedupes.
            log.info("offset store skipped", error=str(exc))

    def close(self) -> None:
        with contextlib.suppress(KafkaException):
            self._consumer.commit(asynchronous=False)
        self._consumer.close()

    def abandon(self) -> None:
        """Close in the background: a wedged client may never finish closing, and the
        caller has a new one to carry on with (whatever it had not committed is
        re-delivered to the group and deduplicated)."""
        threading.Thread(
            target=self._consumer.close, name="consumer-abandoned", daemon=True
        ).start()
