"""The raw Kafka limit of this machine: produce and consume with our client settings.

Used by `saga bench` so that our throughput is quoted against what the same broker and
the same client library do, measured in the same run on the same (noisy) machine.
"""

from __future__ import annotations

import os
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

__all__ = ["kafka_produce_consume_rate"]


def kafka_produce_consume_rate(
    bootstrap: str, messages: int = 100_000, size: int = 700, partitions: int = 4
) -> dict[str, float]:
    """Messages/s for producing `messages` (idempotent, acks=all, like the relay) and for
    consuming them back with a group consumer; the topic is deleted afterwards."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    # Destroyed on this thread by the with block: see eventing.kafka.admin._admin.
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
        try:
            return _produce_consume(bootstrap, topic, messages, size)
        finally:
            admin.delete_topics([topic])[topic].result(30)


def _produce_consume(bootstrap: str, topic: str, messages: int, size: int) -> dict[str, float]:
    payload = os.urandom(size // 2).hex().encode()[:size]
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )
    start = time.perf_counter()
    for i in range(messages):
        key = str(i % 10_000).encode()
        while True:
            try:
                producer.produce(topic, payload, key)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    produced_s = time.perf_counter() - start

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": topic,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got, start = 0, time.perf_counter()
    deadline = start + 120
    while got < messages and time.perf_counter() < deadline:
        got += sum(1 for m in consumer.consume(1000, 0.5) if m.error() is None)
    consumed_s = time.perf_counter() - start
    consumer.close()
    return {
        "kafka_produce_msgs_per_s": round(messages / produced_s),
        "kafka_consume_msgs_per_s": round(got / consumed_s) if consumed_s else 0.0,
        "kafka_messages": messages,
    }
