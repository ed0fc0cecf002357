"""Kafka administration for the stack tooling: topic creation, health probes, topic layout.

Kept apart from the producer/consumer runtime so that `saga stack` needs nothing else from
confluent_kafka; callers get plain Python values and `KafkaAdminError`, never client types.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports these without declaring them, which mypy --strict rejects.
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

__all__ = [
    "ClusterState",
    "KafkaAdminError",
    "PartitionLayout",
    "TopicLayout",
    "broker_answers",
    "cluster_state",
    "ensure_topics",
    "fitting_replication",
    "topic_layout",
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
    # Always used as a context manager: leaving it destroys the client on the calling thread.
    # A client left to the garbage collector can be freed on librdkafka's background thread
    # (a collection triggered by a future's callback there), which aborts the process with
    # "rd_kafka_destroy() called from librdkafka owned thread".
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
        with _admin(bootstrap) as admin:
            metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaAdminError(f"Kafka at {bootstrap} did not answer: {exc}") from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


@dataclass(frozen=True)
class PartitionLayout:
    partition: int
    leader: int  # -1 while the partition has no leader
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class TopicLayout:
    replication_factor: int
    # None when the topic's configuration could not be read (e.g. no broker answered it).
    min_insync_replicas: int | None
    partitions: tuple[PartitionLayout, ...]


@dataclass(frozen=True)
class ClusterState:
    """What the cluster's metadata says: the live brokers and the requested topics."""

    # Brokers the controller counts as alive (registered, not fenced): id -> "host:port".
    brokers: dict[int, str]
    topics: dict[str, TopicLayout]


def _layout(topic: Any, min_isr: int | None) -> TopicLayout:
    parts = tuple(
        PartitionLayout(p.id, p.leader, tuple(p.replicas), tuple(p.isrs))
        for p in sorted(topic.partitions.values(), key=lambda p: p.id)
    )
    # A partition whose replicas are unknown right now must not lower the figure.
    factor = max((len(p.replicas) for p in parts), default=0)
    return TopicLayout(factor, min_isr, parts)


def _min_isr(admin: AdminClient, topics: list[str], timeout: float) -> dict[str, int]:
    """Each topic's effective min.insync.replicas (its own, else the broker default)."""
    found: dict[str, int] = {}
    # Twice: the client may send the request to a broker that died a moment ago and that
    # the metadata still lists; the second try goes to another.
    for _ in range(2):
        missing = [t for t in topics if t not in found]
        if not missing:
            break
        resources = [ConfigResource("TOPIC", t) for t in missing]
        try:
            futures = admin.describe_configs(resources, request_timeout=timeout)
            for resource, future in futures.items():
                entry = future.result(timeout).get("min.insync.replicas")
                if entry is not None and entry.value is not None:
                    found[resource.name] = int(entry.value)
        except (KafkaException, TimeoutError, ValueError):
            continue  # reported as unknown if the second try fails too
    return found


def cluster_state(
    bootstrap: str, topics: Iterable[str] | None = None, timeout: float = 5.0
) -> ClusterState:
    """The live brokers, and the layout of `topics` (every topic if None) that exist.

    `KafkaAdminError` if no broker answers. Leaders and in-sync replicas are as the
    answering broker last learned them: a broker that died a moment ago is still listed as
    leader until the controller fences it (broker.session.timeout.ms, 9 s by default).
    """
    if not _any_port_open(bootstrap, min(timeout, 2.0)):
        raise KafkaAdminError(f"no Kafka broker accepts connections at {bootstrap}")
    with _admin(bootstrap) as admin:
        try:
            metadata = admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise KafkaAdminError(f"Kafka at {bootstrap} did not answer: {exc}") from None
        brokers = {b.id: f"{b.host}:{b.port}" for b in metadata.brokers.values()}
        present = {
            name: topic
            for name, topic in metadata.topics.items()
            if topic.error is None and (topics is not None or not name.startswith("__"))
        }
        wanted = [t for t in (present if topics is None else dict.fromkeys(topics)) if t in present]
        min_isr = _min_isr(admin, wanted, timeout)
    return ClusterState(brokers, {t: _layout(present[t], min_isr.get(t)) for t in wanted})


# ApiVersions v0 (api key 18): every broker answers it (with an error code if it prefers
# another version), and the reply's correlation id is all the probe reads. The request is a
# header only: api key, api version, correlation id, client id.
_API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 0x5A6A, 4) + b"saga"


def broker_answers(address: str, timeout: float = 2.0) -> bool:
    """Whether the broker process at `address` itself processes requests.

    A raw ApiVersions request over one socket, because a client library routes requests
    to whichever broker it likes once it knows the cluster. A broker binds its port early
    but processes requests only once it has caught up with the cluster's metadata, so a
    restarted broker answers when it is ready, not when its port opens.
    """
    host, _, port = address.strip().rpartition(":")
    request = struct.pack(">i", len(_API_VERSIONS_V0)) + _API_VERSIONS_V0
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout) as s:
            s.settimeout(timeout)
            s.sendall(request)
            head = b""
            while len(head) < 8:
                chunk = s.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
    except (OSError, ValueError):
        return False
    _size, correlation = struct.unpack(">ii", head)
    return bool(correlation == 0x5A6A)


def topic_layout(
    bootstrap: str, topics: Iterable[str] | None = None, timeout: float = 5.0
) -> dict[str, TopicLayout]:
    """Per topic: replication factor, min.insync.replicas, and each partition's leader,
    replicas and in-sync replicas (ISR). Topics that do not exist are left out."""
    return cluster_state(bootstrap, topics, timeout).topics


def fitting_replication(bootstrap: str, timeout: float = 10.0) -> int:
    """The replication factor that fits the cluster: its default.replication.factor, raised
    to min(3, live brokers).

    Counting only live brokers could make topics thinner than the cluster when a broker is
    down at that moment; the broker default (3 on the local 3-broker stack) keeps them at
    full size, and their creation then fails loudly until enough brokers run.
    """
    with _admin(bootstrap) as admin:
        try:
            metadata = admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise KafkaAdminError(f"Kafka at {bootstrap} did not answer: {exc}") from None
        live = sorted(metadata.brokers)
        default = 1
        if live:
            resource = ConfigResource("BROKER", str(live[0]))
            try:
                future = admin.describe_configs([resource], request_timeout=timeout)[resource]
                entry = future.result(timeout).get("default.replication.factor")
                default = int(entry.value) if entry is not None and entry.value else 1
            except (KafkaException, TimeoutError, ValueError):
                default = 1  # an older or locked-down cluster: live brokers decide alone
    return max(default, min(3, len(live)))


def _create(
    admin: AdminClient,
    topics: list[str],
    partitions: int,
    replication_factor: int,
    config: dict[str, str],
    timeout: float,
) -> None:
    """Ask for the topics; transient refusals are left for the caller's next round."""
    new = [
        NewTopic(t, num_partitions=partitions, replication_factor=replication_factor, config=config)
        for t in topics
    ]
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
            hint = ""
            if error.code() == KafkaError.INVALID_REPLICATION_FACTOR:
                hint = "; start the brokers that are down (`saga stack status` lists them)"
            raise KafkaAdminError(f"cannot create topic {topic}: {error.str()}{hint}") from None


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    timeout: float = 60.0,
    *,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
) -> dict[str, int]:
    """Create the missing topics with `partitions` partitions; existing topics are left alone.

    New topics get `replication_factor` replicas (default: `fitting_replication`) and, with
    three or more, min.insync.replicas=2 unless `min_insync_replicas` says otherwise.
    An existing topic keeps its partition count even when it differs: adding partitions
    would move keys to other partitions and break per-order ordering of events in flight;
    it keeps its replication too (`topic_layout` shows it, and `saga stack up` warns).
    Returns the partition count of each requested topic once every one is visible.
    """
    wanted = list(dict.fromkeys(topics))
    deadline = time.monotonic() + timeout
    with _admin(bootstrap) as admin:
        factor = replication_factor
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
                raise KafkaAdminError(
                    f"topics not ready after {timeout:.0f}s: {', '.join(missing)}"
                )
            if factor is None:  # asked once: only when something is to be created
                factor = fitting_replication(bootstrap, timeout=min(remaining, 10.0))
            min_isr = min_insync_replicas
            if min_isr is None:
                min_isr = 2 if factor >= 3 else None
            config = {} if min_isr is None else {"min.insync.replicas": str(min_isr)}
            # A broker that just started may refuse for a moment, and a created topic takes a
            # moment to show up with leaders in the metadata: look again shortly either way.
            _create(admin, missing, partitions, factor, config, min(remaining, 30.0))
            time.sleep(0.2)


def groups_assigned(bootstrap: str, groups: Iterable[str], timeout: float = 5.0) -> bool:
    """True when every group is stable and its members hold partitions: services are ready."""
    names = list(groups)
    with _admin(bootstrap) as admin:  # outlives the futures: they die with their client
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


def group_members(bootstrap: str, groups: Iterable[str], timeout: float = 5.0) -> dict[str, int]:
    """How many members each consumer group has now (0 when it cannot be described)."""
    names = list(groups)
    found: dict[str, int] = {}
    with _admin(bootstrap) as admin:
        try:
            described = admin.describe_consumer_groups(names, request_timeout=timeout)
            for name, future in described.items():
                try:
                    found[name] = len(future.result(timeout).members)
                except (KafkaException, TimeoutError):
                    found[name] = 0
        except KafkaException:
            return dict.fromkeys(names, 0)
    return found


__all__ += ["group_members", "groups_assigned"]
