"""Test-side Kafka helpers: produce raw messages, wait for consumer groups to catch up."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.e2e.harness import wait_for


def produce_raw(
    bootstrap: str, records: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]
) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for topic, key, value, headers in records:
        p.produce(topic, value, key, headers=headers)
    assert p.flush(30) == 0, "not every test message was delivered"


def lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Messages on `topics` the group has not committed (all, before its first commit)."""
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        meta = admin.list_topics(timeout=10)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in meta.topics[t].partitions]
        committed = c.committed(tps, timeout=10)
        lag = 0
        for tp in committed:
            low, high = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            pos = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - pos)
        return lag
    finally:
        c.close()


def wait_caught_up(bootstrap: str, groups: dict[str, list[str]], timeout: float = 60) -> None:
    """Every group has committed up to the end of its topics: all messages processed."""
    for group, topics in groups.items():
        wait_for(
            f"consumer group {group} to catch up",
            lambda g=group, t=topics: lag(bootstrap, g, t) == 0,
            timeout=timeout,
            interval=0.3,
        )


def member_holds_partitions(bootstrap: str, group: str, client_id: str) -> bool:
    """Whether the group's coordinator counts `client_id` as a member holding partitions."""
    with AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}) as admin:
        try:
            described = admin.describe_consumer_groups([group], request_timeout=5)[group].result(5)
        except Exception:  # the group does not exist yet, or Kafka is busy: not yet
            return False
    return any(
        m.client_id == client_id and m.assignment.topic_partitions for m in described.members
    )
