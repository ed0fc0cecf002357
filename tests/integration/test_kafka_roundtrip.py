"""The broker behaves as the saga relies on: keyed, idempotent, acks=all producing, and a
consumer group that resumes after its committed offset (at-least-once, offset after work)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from eventing.kafka.admin import ensure_topics
from eventing.kafka.clients import EventProducer
from eventing.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(settings: Settings, stack: dict[str, Any]) -> Iterator[str]:
    name = f"it.roundtrip.{uuid.uuid4().hex[:12]}"
    ensure_topics(settings.kafka_bootstrap_servers, [name], partitions=3)
    yield name
    with AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers}) as admin:
        for future in admin.delete_topics([name], operation_timeout=30).values():
            future.result()


def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def _poll(consumer: Consumer, count: int, timeout: float = 60.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"got {len(got)} of {count} messages in {timeout}s"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        error = msg.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            continue
        assert error is None, error
        got.append(msg)
    return got


def test_group_resumes_after_committed_offset(settings: Settings, topic: str) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    reports: list[tuple[Any, int, int]] = []

    def on_delivery(err: Any, msg: Message) -> None:
        reports.append((err, msg.partition(), msg.offset()))

    key = f"order-{uuid.uuid4()}".encode()
    for i in range(6):
        producer.produce(topic, key=key, value=f"event-{i}".encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert [err for err, _, _ in reports] == [None] * 6
    # One key, one partition, in order: what keeps one order's events ordered.
    partitions = {p for _, p, _ in reports}
    assert len(partitions) == 1
    partition = partitions.pop()
    assert [o for _, _, o in reports] == list(range(reports[0][2], reports[0][2] + 6))

    group = f"it-group-{uuid.uuid4().hex[:12]}"
    first = _consumer(settings, group)
    try:
        first.subscribe([topic])
        head = _poll(first, 3)
        assert [m.value() for m in head] == [b"event-0", b"event-1", b"event-2"]
        assert all(m.key() == key for m in head)
        first.commit(message=head[-1], asynchronous=False)
        committed = first.committed([TopicPartition(topic, partition)], timeout=10)
        assert committed[0].offset == head[-1].offset() + 1
    finally:
        first.close()

    second = _consumer(settings, group)
    try:
        second.subscribe([topic])
        tail = _poll(second, 3)
    finally:
        second.close()
    assert [m.value() for m in tail] == [b"event-3", b"event-4", b"event-5"]
    assert tail[0].offset() == committed[0].offset


def test_a_producer_with_a_fatal_error_is_replaced_and_delivers(
    settings: Settings, topic: str
) -> None:
    producer = EventProducer(settings.kafka_bootstrap_servers, "it-fatal")
    assert producer.produce_all([(topic, b"k", b"before", [])]) == [None]
    old = producer._producer
    # What librdkafka reports when an idempotent producer cannot go on (e.g. a fenced epoch).
    producer._on_error(KafkaError(KafkaError._FATAL, "injected fatal error", fatal=True))
    assert producer.produce_all([(topic, b"k", b"after", [])]) == [None]
    assert producer._producer is not old
    producer.close()

    consumer = _consumer(settings, f"it-fatal-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    try:
        assert [m.value() for m in _poll(consumer, 2)] == [b"before", b"after"]
    finally:
        consumer.close()


def test_admin_clients_are_destroyed_before_the_call_returns(
    settings: Settings, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An admin client left to the garbage collector can be freed on librdkafka's own thread,
    # which aborts the process (seen in `saga stack status`); each call must close its own.
    from eventing.kafka import admin as kafka_admin

    made: list[AdminClient] = []
    real = kafka_admin._admin

    def recording(bootstrap: str) -> AdminClient:
        made.append(real(bootstrap))
        return made[-1]

    monkeypatch.setattr(kafka_admin, "_admin", recording)
    bootstrap = settings.kafka_bootstrap_servers
    assert topic in kafka_admin.topic_partitions(bootstrap)
    assert topic in kafka_admin.cluster_state(bootstrap, [topic]).topics
    assert kafka_admin.fitting_replication(bootstrap) >= 1
    assert kafka_admin.ensure_topics(bootstrap, [topic], partitions=3) == {topic: 3}
    kafka_admin.group_members(bootstrap, ["no-such-group"])
    kafka_admin.groups_assigned(bootstrap, ["no-such-group"])
    assert len(made) >= 6
    for client in made:
        with pytest.raises(RuntimeError, match="closed"):
            client.list_topics(timeout=1)
