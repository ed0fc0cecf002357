"""`saga stack up --brokers 3`: a real 3-broker KRaft cluster, replicated topics, a broker lost
and brought back, and what acks=all does with fewer in-sync replicas than it needs.

The cluster is a stack of its own (temp dir, free ports), started once for the module, so
that the main stack the other tests use stays as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from eventing.kafka.admin import ensure_topics, topic_layout, topic_partitions
from eventing.kafka.clients import EventProducer
from eventing.settings import Settings, load_settings
from saga_cli import stack
from shared_events.topics import ALL_TOPICS
from tests.conftest import SagaRunner
from tests.e2e.harness import wait_for
from tests.integration.test_stack import isolated_env
from tests.ports import free_block, free_ports

pytestmark = pytest.mark.integration

TOPIC = "orders.events"


def _settings(env: dict[str, str]) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("SAGA_")]:
            mp.delenv(name)
        for name, value in env.items():
            if name.startswith("SAGA_"):
                mp.setenv(name, value)
        return load_settings()


def _status(run_saga: SagaRunner, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = run_saga("stack", "status", "--json", env=env, timeout=60)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)["kafka"]


def _partitions(kafka: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for name in ALL_TOPICS for p in kafka["topics"][name]["partitions"]]


def _ok(done: Any) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return str(done.stdout)


@pytest.fixture(scope="module")
def cluster(run_saga: SagaRunner) -> Iterator[dict[str, str]]:
    # Under /tmp, not pytest's tmp_path: as root, PostgreSQL runs as the `postgres` user, who
    # cannot traverse pytest's 0700 temp root.
    scratch = Path(tempfile.mkdtemp(prefix="saga-it-cluster-", dir="/tmp"))
    scratch.chmod(0o755)
    base = free_block(6)
    pg = next(p for p in free_ports(8) if not base <= p < base + 6)
    env = isolated_env(scratch / "stack", base, base + 1, pg)
    try:
        started = time.monotonic()
        out = _ok(run_saga("stack", "up", "--brokers", "3", env=env, timeout=300))
        print(f"3-broker stack up in {time.monotonic() - started:.1f}s")
        assert out.count("formatting KRaft storage") == 3
        yield env
    finally:
        # Whatever the tests did, leave no broker or postmaster of this stack behind.
        run_saga("stack", "down", "--wipe", env=env, timeout=180)
        shutil.rmtree(scratch, ignore_errors=True)


def _all_in_sync(run_saga: SagaRunner, env: dict[str, str]) -> dict[str, Any] | None:
    code, kafka = _status(run_saga, env)
    parts = _partitions(kafka) if kafka["topics"] else []
    full = code == 0 and parts and all(sorted(p["isr"]) == [1, 2, 3] for p in parts)
    return kafka if full else None


def _read_values(bootstrap: str, topic: str) -> list[bytes]:
    """Every value in `topic` up to its end now (read from the leaders, no consumer group)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        count = topic_partitions(bootstrap)[topic]
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in range(count)
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in range(count)])
        got: list[bytes] = []
        position = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + 60
        while any(position[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"read {position} of {ends} in 60s"
            for msg in consumer.consume(500, 1.0):
                if msg.error() is None:
                    got.append(msg.value() or b"")
                    position[msg.partition() or 0] = (msg.offset() or 0) + 1
        return got
    finally:
        consumer.close()


def test_three_brokers_replicate_every_topic(run_saga: SagaRunner, cluster: dict[str, str]) -> None:
    env = cluster
    base = int(env["SAGA_KAFKA_PORT"])
    kafka = wait_for("every partition in sync on 3 brokers", lambda: _all_in_sync(run_saga, env))
    addresses = [f"127.0.0.1:{base + 2 * i}" for i in range(3)]
    assert [(b["id"], b["address"], b["healthy"]) for b in kafka["brokers"]] == [
        (1, addresses[0], True),
        (2, addresses[1], True),
        (3, addresses[2], True),
    ]
    assert all(b["pid"] for b in kafka["brokers"])
    assert kafka["pid"] == kafka["brokers"][0]["pid"]
    assert kafka["bootstrap_servers"] == ",".join(addresses)
    assert kafka["healthy"] and kafka["quorum"] and kafka["available"]
    assert kafka["missing_topics"] == [] and kafka["low_replication_topics"] == []
    for name in ALL_TOPICS:
        topic = kafka["topics"][name]
        assert (topic["replication_factor"], topic["min_insync_replicas"]) == (3, 2), name
        assert all(sorted(p["replicas"]) == [1, 2, 3] for p in topic["partitions"]), name

    # The internal offsets topic is replicated too: it appears with a group's first commit.
    consumer = Consumer({"bootstrap.servers": kafka["bootstrap_servers"], "group.id": "it-rf"})

    def committed() -> bool:
        try:
            consumer.commit(offsets=[TopicPartition(TOPIC, 0, 0)], asynchronous=False)
        except KafkaException:  # the new topic's coordinator is still loading
            return False
        return True

    try:
        wait_for("a first offset commit", committed, timeout=60, interval=0.5)
    finally:
        consumer.close()
    offsets = topic_layout(kafka["bootstrap_servers"], ["__consumer_offsets"])
    assert offsets["__consumer_offsets"].replication_factor == 3
    assert offsets["__consumer_offsets"].min_insync_replicas == 2

    state = json.loads((Path(env["SAGA_STACK_DIR"]) / "saga-stack.json").read_text())
    assert state["kafka_brokers"] == 3
    human = _ok(run_saga("stack", "status", env=env, timeout=60))
    assert "3 brokers" in human and f"broker 3    healthy  {addresses[2]}" in human
    assert "RF 3  min.isr 2" in human


def test_acks_all_survives_one_broker_and_refuses_with_two_gone(
    run_saga: SagaRunner, cluster: dict[str, str]
) -> None:
    env = cluster
    kafka = wait_for("every partition in sync", lambda: _all_in_sync(run_saga, env))
    bootstrap = kafka["bootstrap_servers"]
    leaders = Counter(p["leader"] for p in kafka["topics"][TOPIC]["partitions"])
    first = leaders.most_common(1)[0][0]

    _ok(run_saga("stack", "kill-broker", str(first), env=env))

    def moved() -> dict[str, Any] | None:
        code, now = _status(run_saga, env)
        down = next(b for b in now["brokers"] if b["id"] == first)
        parts = _partitions(now)
        ok = (
            code == 1
            and down["pid"] is None
            and not down["healthy"]
            and all(p["leader"] not in (first, -1) and first not in p["isr"] for p in parts)
        )
        return now if ok else None

    after_one = wait_for(f"leaders to leave broker {first}", moved, timeout=90, interval=0.5)
    assert after_one["healthy"] is False and after_one["quorum"] is True
    assert after_one["available"] is True
    assert sum(b["healthy"] for b in after_one["brokers"]) == 2

    producer = EventProducer(bootstrap, "it-cluster")
    acked = f"acked-{uuid.uuid4()}".encode()
    refused = f"refused-{uuid.uuid4()}".encode()
    key = b"order-it-cluster"
    assert producer.produce_all([(TOPIC, key, acked, [])], timeout_s=30) == [None]

    # Leaders of the second victim's partitions: a broker that now leads something.
    now_leaders = Counter(p["leader"] for p in after_one["topics"][TOPIC]["partitions"])
    second = now_leaders.most_common(1)[0][0]
    assert second != first
    _ok(run_saga("stack", "kill-broker", str(second), env=env))
    code, after_two = _status(run_saga, env)
    assert code == 1
    assert after_two["quorum"] is False and after_two["available"] is False
    assert sum(b["healthy"] for b in after_two["brokers"]) == 1

    # One in-sync replica of the two that min.insync.replicas asks for: no acknowledgement.
    started = time.monotonic()
    [error] = producer.produce_all([(TOPIC, key, refused, [])], timeout_s=5)
    assert error is not None
    assert time.monotonic() - started < 15

    for broker in (first, second):
        out = _ok(run_saga("stack", "start-broker", str(broker), env=env))
        assert f"broker {broker} serves" in out
    wait_for("ISR back to 3 everywhere", lambda: _all_in_sync(run_saga, env), timeout=120)

    # The producer kept the refused record and retried it: with the brokers back it is
    # delivered, once (idempotence), after the acknowledged one.
    later = f"later-{uuid.uuid4()}".encode()
    assert producer.produce_all([(TOPIC, key, later, [])], timeout_s=60) == [None]
    producer.close()
    values = _read_values(bootstrap, TOPIC)
    assert values.count(acked) == 1, "an acknowledged write was lost or duplicated"
    assert values.count(refused) == 1
    assert values.count(later) == 1
    assert values.index(acked) < values.index(refused) < values.index(later)


def test_up_restarts_a_dead_broker_and_keeps_the_cluster_size(
    run_saga: SagaRunner, cluster: dict[str, str]
) -> None:
    env = cluster
    settings = _settings(env)
    wait_for("every partition in sync", lambda: _all_in_sync(run_saga, env))
    before = {b["id"]: b["pid"] for b in stack.brokers(settings)}
    killed = stack.kill_broker(settings, 2)
    assert killed == before[2]
    listed = {b["id"]: b for b in stack.brokers(settings)}
    assert listed[2]["pid"] is None and listed[2]["healthy"] is False
    assert listed[1]["healthy"] and listed[3]["healthy"]

    out = _ok(run_saga("stack", "up", "--brokers", "3", env=env, timeout=300))
    assert "starting broker 2" in out
    assert f"broker 1 already running (pid {before[1]})" in out
    assert f"broker 3 already running (pid {before[3]})" in out
    after = {b["id"]: b for b in stack.brokers(settings)}
    assert all(b["healthy"] for b in after.values())
    assert (after[1]["pid"], after[3]["pid"]) == (before[1], before[3])
    assert after[2]["pid"] not in (None, killed)

    # Without --brokers, `up` keeps the recorded size; another size is refused, clearly.
    again = _ok(run_saga("stack", "up", env=env, timeout=300))
    assert "starting broker" not in again
    other = run_saga("stack", "up", "--brokers", "1", env=env, timeout=60)
    assert other.returncode != 0
    assert "3-broker" in other.stderr and "saga stack down --wipe" in other.stderr
    assert "Traceback" not in other.stderr

    unknown = run_saga("stack", "kill-broker", "4", env=env, timeout=60)
    assert unknown.returncode != 0 and "no broker 4" in unknown.stderr
    running = _ok(run_saga("stack", "start-broker", "1", env=env, timeout=60))
    assert "already running" in running
    elsewhere = {**env, "SAGA_KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092"}
    foreign = run_saga("stack", "kill-broker", "1", env=elsewhere, timeout=60)
    assert foreign.returncode != 0 and "not this stack's Kafka" in foreign.stderr
    assert all(b["healthy"] for b in stack.brokers(settings))

    # Pointing the services at every broker (or at localhost) is still this stack's Kafka.
    listing = (
        after[1]["address"].replace("127.0.0.1", "localhost")
        + ","
        + ",".join(after[i]["address"] for i in (2, 3))
    )
    code, listed_all = _status(run_saga, {**env, "SAGA_KAFKA_BOOTSTRAP_SERVERS": listing})
    assert code == 0 and listed_all["managed"] is True
    assert [b["pid"] for b in listed_all["brokers"]] == [after[i]["pid"] for i in (1, 2, 3)]


def test_topics_thinner_than_the_cluster_are_named(
    run_saga: SagaRunner, cluster: dict[str, str]
) -> None:
    env = cluster
    kafka = wait_for("every partition in sync", lambda: _all_in_sync(run_saga, env))
    bootstrap = kafka["bootstrap_servers"]
    thin = "fulfillment.dlq"

    def recreate(replicas: int, min_isr: int) -> None:
        with AdminClient({"bootstrap.servers": bootstrap}) as admin:
            for future in admin.delete_topics([thin], operation_timeout=30).values():
                future.result()
        wait_for(f"{thin} deleted", lambda: thin not in topic_partitions(bootstrap), timeout=30)
        ensure_topics(
            bootstrap, [thin], 2, replication_factor=replicas, min_insync_replicas=min_isr
        )

    # As if made on a one-broker stack, or by hand.
    recreate(1, 1)
    try:
        out = _ok(run_saga("stack", "up", env=env, timeout=300))
        assert "WARNING" in out and thin in out and "fewer replicas" in out
        assert "kafka-reassign-partitions" in out
        _, now = _status(run_saga, env)
        assert now["low_replication_topics"] == [thin]
        assert now["topics"][thin]["replication_factor"] == 1
    finally:
        recreate(3, 2)
    _, restored = _status(run_saga, env)
    assert restored["low_replication_topics"] == []


def test_clashing_cluster_ports_fail_before_anything_starts(run_saga: SagaRunner) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="saga-it-ports-", dir="/tmp"))
    scratch.chmod(0o755)
    try:
        base = free_block(6)
        pg = next(p for p in free_ports(8) if not base <= p < base + 6)
        # Broker 2's client port (base + 2) is broker 1's controller port.
        env = isolated_env(scratch / "stack", base, base + 2, pg)
        done = run_saga("stack", "up", "--brokers", "3", env=env, timeout=60)
        assert done.returncode != 0
        assert f"{base + 2}: " in done.stderr and "SAGA_KAFKA_CONTROLLER_PORT" in done.stderr
        assert "Traceback" not in done.stderr
        assert not list((scratch / "stack").glob("run/kafka*.pid"))
        # A port that something else holds is named with the variable that moves it.
        env = isolated_env(scratch / "stack", base, base + 1, pg)
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", base + 4))
            squatter.listen()
            done = run_saga("stack", "up", "--brokers", "3", env=env, timeout=60)
        assert done.returncode != 0
        assert f"port {base + 4}" in done.stderr and "SAGA_KAFKA_PORT + 4" in done.stderr
        assert not list((scratch / "stack").glob("run/kafka*.pid"))
    finally:
        run_saga("stack", "down", "--wipe", env=isolated_env(scratch / "stack", 1, 2, 3))
        shutil.rmtree(scratch, ignore_errors=True)
