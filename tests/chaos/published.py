"""What actually went over Kafka: every event on the events topics, read raw from the start,
checked against the saga records (nothing missing, repeats counted, causes before effects)."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from shared_events.topics import EVENT_TOPICS

__all__ = ["Published", "PublishedCheck", "check_published", "read_published"]


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int
    event_id: uuid.UUID
    order_id: uuid.UUID
    causation_id: uuid.UUID | None


def read_published(
    bootstrap: str, orders: set[uuid.UUID], timeout_s: float = 120
) -> list[Published]:
    """Every copy of every event of `orders` on the events topics, up to their current end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-check-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        meta = consumer.list_topics(timeout=30)
        ends: dict[tuple[str, int], int] = {}
        tps = []
        for topic in EVENT_TOPICS.values():
            for p in meta.topics[topic].partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                if high > 0:
                    ends[(topic, p)] = high
                    tps.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        consumer.assign(tps)
        found: list[Published] = []
        done: set[tuple[str, int]] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends) and time.monotonic() < deadline:
            for m in consumer.consume(1000, 1.0):
                if m.error() is not None:
                    continue
                where = (m.topic(), m.partition())
                if m.offset() >= ends[where] - 1:
                    done.add(where)
                try:
                    body = json.loads(m.value())
                    order_id = uuid.UUID(body["order_id"])
                except (ValueError, KeyError, TypeError):
                    continue  # poison the chaos tests published on purpose
                if order_id not in orders:
                    continue
                cause = body.get("causation_id")
                found.append(
                    Published(
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        uuid.UUID(body["event_id"]),
                        order_id,
                        uuid.UUID(cause) if cause else None,
                    )
                )
        assert len(done) == len(ends), "the raw consumer could not read every topic to its end"
        return found
    finally:
        consumer.close()


@dataclass
class PublishedCheck:
    events: int = 0
    copies: int = 0
    published_more_than_once: int = 0
    missing: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "events": self.events,
            "copies": self.copies,
            "published_more_than_once": self.published_more_than_once,
            "missing": self.missing[:20],
            "out_of_order": self.out_of_order[:20],
        }


def _ancestors(event_id: uuid.UUID, cause: dict[uuid.UUID, uuid.UUID | None]) -> set[uuid.UUID]:
    seen: set[uuid.UUID] = set()
    c = cause.get(event_id)
    while c is not None and c not in seen:
        seen.add(c)
        c = cause.get(c)
    return seen


def check_published(
    published: Iterable[Published], sagas: dict[uuid.UUID, list[uuid.UUID]]
) -> PublishedCheck:
    """`sagas`: each order's event ids as its saga record lists them."""
    first: dict[uuid.UUID, Published] = {}
    copies: dict[uuid.UUID, int] = defaultdict(int)
    for p in sorted(published, key=lambda p: (p.topic, p.partition, p.offset)):
        copies[p.event_id] += 1
        first.setdefault(p.event_id, p)
    check = PublishedCheck(copies=sum(copies.values()))
    check.published_more_than_once = sum(1 for n in copies.values() if n > 1)
    for order_id, event_ids in sagas.items():
        check.events += len(event_ids)
        check.missing += [
            f"{order_id}: {e} is in the saga record, not on Kafka"
            for e in event_ids
            if e not in first
        ]
        mine = [first[e] for e in event_ids if e in first]
        cause = {p.event_id: p.causation_id for p in mine}

        for p in mine:
            for a in _ancestors(p.event_id, cause):
                q = first.get(a)
                if q is not None and q.topic == p.topic and q.offset > p.offset:
                    check.out_of_order.append(
                        f"{order_id}: on {p.topic} {p.event_id} (offset {p.offset}) came before "
                        f"its cause {a} (offset {q.offset})"
                    )
    return check
