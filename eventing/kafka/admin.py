"""Kafka administration for the stack tooling: topic creation and a health probe.

Kept apart from the producer/consumer runtime so that `saga stack` needs nothing else from
confluent_kafka; callers get plain Python values and `KafkaAdminError`, never client types.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports NewTopic without declaring it, which mypy --strict rejects.
from confluent_kafka.cimpl import NewTopic

__all__ = [
    "KafkaAdminError",
    "ensure_topics",
    "topic_partitions",
]

# librdkafka prints every refused connection to stderr; a probe that expects refusals (status
# after `down`) must stay quiet, and failures are reported through return values instead.
_QUIET = {"log_level": 0}

_RETRIABLE = {
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_CONTROLLER,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.BROKER_NOT_AVAILABLE,
}


class KafkaAdminError(RuntimeError):
    """Kafka could not be reached or refused an administrative request."""


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **_QUIET})


def _any_port_open(bootstrap: str, timeout: float) -> bool:
    # A TCP connect answers "nothing listens" at once, where the client would wait out its
    # whole timeout: that keeps `saga stack status` instant when the stack is down.
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def topic_partitions(bootstrap: str, timeout: float = 5.0) -> dict[str, int]:
    """Partition count of every topic in the cluster; `KafkaAdminError` if unreachable."""
    if not _any_port_open(bootstrap, min(timeout, 2.0)):
        raise KafkaAdminError(f"no Kafka broker accepts connections at {bootstrap}")
    try:
        metadata = _admin(bootstrap).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaAdminError(f"Kafka at {bootstrap} did not answer: {exc}") from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _create(admin: AdminClient, topics: list[str], partitions: int, timeout: float) -> None:
    """Ask for the topics; transient refusals are left for the caller's next round."""
    # -1: the broker's default.replication.factor, so an external cluster keeps its own policy.
    new = [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in topics]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for topic, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if error.code() in _RETRIABLE or error.retriable():
                continue
            raise KafkaAdminError(f"cannot create topic {topic}: {error.str()}") from None


def ensure_topics(
    bootstrap: str, topics: Iterable[str], partitions: int, timeout: float = 60.0
) -> dict[str, int]:
    """Create the missing topics with `partitions` partitions; existing topics are left alone.

    An existing topic keeps its partition count even when it differs: adding partitions
    would move keys to other partitions and break per-order ordering of events in flight.
    Returns the partition count of each requested topic once every one is visible.
    """
    wanted = list(dict.fromkeys(topics))
    deadline = time.monotonic() + timeout
    admin = _admin(bootstrap)
    while True:
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            metadata = admin.list_topics(timeout=min(remaining, 10.0))
        except KafkaException as exc:
            if time.monotonic() >= deadline:
                raise KafkaAdminError(f"Kafka at {bootstrap} did not answer: {exc}") from None
            continue
        present = {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.error is None
            and topic.partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        }
        missing = [t for t in wanted if t not in present]
        if not missing:
            return {t: present[t] for t in wanted}
        if time.monotonic() >= deadline:
            raise KafkaAdminError(f"topics not ready after {timeout:.0f}s: {', '.join(missing)}")
        # A broker that just started may refuse for a moment, and a created topic takes a
        # moment to show up with leaders in the metadata: look again shortly either way.
        _create(admin, missing, partitions, min(remaining, 30.0))
        time.sleep(0.2)


def groups_assigned(bootstrap: str, groups: Iterable[str], timeout: float = 5.0) -> bool:
    """True when every group is stable and its members hold partitions: services are ready."""
    names = list(groups)
    admin = _admin(bootstrap)  # must outlive the futures: they die with their client
    try:
        found = admin.describe_consumer_groups(names, request_timeout=timeout)
        for future in found.values():
            group = future.result(timeout)
            if group.state.name != "STABLE" or not any(
                m.assignment.topic_partitions for m in group.members
            ):
                return False
    except (KafkaException, TimeoutError):
        return False
    return True


__all__ += ["groups_assigned"]
