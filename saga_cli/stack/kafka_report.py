"""The Kafka part of `saga stack status`: each broker's health, and each topic's leaders and
in-sync replicas.

Health is judged two ways, because a broker killed a moment ago is still listed as alive and
as a leader until the controller fences it: a local broker is healthy when its process runs,
it answers requests itself (it has caught up) and the cluster counts it alive (unfenced); the
topics are available when every partition has a leader on a healthy broker and enough
healthy in-sync replicas for an acks=all write.
"""

from __future__ import annotations

from typing import Any

from eventing.kafka.admin import (
    ClusterState,
    KafkaAdminError,
    TopicLayout,
    broker_answers,
    cluster_state,
)
from eventing.settings import Settings
from saga_cli.stack.kafka import running_broker
from saga_cli.stack.paths import stack_paths
from saga_cli.stack.topology import (
    bootstrap_servers,
    kafka_is_local,
    replication_for,
    stack_cluster,
)
from shared_events.topics import ALL_TOPICS

__all__ = ["kafka_report", "low_replication_message"]


def _topic(layout: TopicLayout) -> dict[str, Any]:
    return {
        "replication_factor": layout.replication_factor,
        "min_insync_replicas": layout.min_insync_replicas,
        "partitions": [
            {
                "partition": p.partition,
                "leader": p.leader,
                "replicas": list(p.replicas),
                "isr": list(p.isr),
            }
            for p in layout.partitions
        ],
    }


def _writable(layout: TopicLayout, healthy: set[int]) -> bool:
    need = layout.min_insync_replicas or 1
    return bool(layout.partitions) and all(
        p.leader in healthy and len(healthy.intersection(p.isr)) >= need for p in layout.partitions
    )


def _low_replication(topics: dict[str, TopicLayout], replicas: int) -> list[str]:
    """Topics with fewer replicas (or a lower min.insync.replicas) than the cluster's size
    calls for: created on a smaller cluster, or by hand."""
    _, min_isr = replication_for(replicas)
    return sorted(
        name
        for name, t in topics.items()
        if t.replication_factor < replicas
        or (t.min_insync_replicas is not None and t.min_insync_replicas < min_isr)
    )


def low_replication_message(report: dict[str, Any]) -> str | None:
    """What to tell a user whose topics are thinner than the cluster, or None."""
    names = report.get("low_replication_topics") or []
    if not names:
        return None
    topics = report["topics"]
    listed = ", ".join(
        f"{n} (replication factor {topics[n]['replication_factor']}, "
        f"min.insync.replicas {topics[n]['min_insync_replicas']}"
        + (
            ": no acks=all write can succeed"
            if (topics[n]["min_insync_replicas"] or 0) > topics[n]["replication_factor"]
            else ""
        )
        + ")"
        for n in names
    )
    replicas = report["expected_replication_factor"]
    _, min_isr = replication_for(replicas)
    return (
        f"kafka: WARNING: these topics have fewer replicas than this {len(report['brokers'])}-"
        f"broker cluster gives new topics (replication factor {replicas}, "
        f"min.insync.replicas {min_isr}): {listed}. Losing one broker can make them "
        "unavailable or lose their data. Kafka does not raise a topic's replication in "
        "place: on a local stack, `saga stack down --wipe` and `saga stack up --brokers 3` "
        "recreate everything; otherwise raise it with kafka-reassign-partitions and set "
        "min.insync.replicas with kafka-configs."
    )


def kafka_report(settings: Settings) -> dict[str, Any]:
    """The "kafka" object of `saga stack status --json` (see the README for its keys)."""
    paths = stack_paths(settings)
    managed = kafka_is_local(settings)
    brokers = stack_cluster(settings, paths) if managed else ()
    bootstrap = bootstrap_servers(brokers) if managed else settings.kafka_bootstrap_servers
    state: ClusterState | None = None
    error: str | None = None
    try:
        state = cluster_state(bootstrap, ALL_TOPICS, timeout=5.0)
    except KafkaAdminError as exc:
        error = str(exc)
    live = state.brokers if state is not None else {}
    entries: list[dict[str, Any]]
    if managed:
        entries = []
        for b in brokers:
            pid = running_broker(b)
            entries.append(
                {
                    "id": b.id,
                    "address": b.address,
                    "pid": pid,
                    "healthy": pid is not None and b.id in live and broker_answers(b.address),
                    "log": str(b.files.log),
                }
            )
        running = sum(e["pid"] is not None for e in entries)
        quorum: bool | None = running > len(brokers) // 2
        expected = replication_for(len(brokers))[0]
    else:
        entries = [
            {"id": i, "address": a, "pid": None, "healthy": True, "log": None}
            for i, a in sorted(live.items())
        ]
        quorum = None  # not visible from a client; the cluster answered or it did not
        expected = min(3, len(live))
    healthy_ids = {e["id"] for e in entries if e["healthy"]}
    topics = state.topics if state is not None else {}
    missing = [t for t in ALL_TOPICS if t not in topics] if state is not None else None
    return {
        "bootstrap_servers": bootstrap,
        "managed": managed,
        "brokers": entries,
        # Every broker of the stack answers; degraded (False) when some are down.
        "healthy": state is not None and bool(entries) and all(e["healthy"] for e in entries),
        # A majority of the controllers run (None for a Kafka this stack does not run).
        "quorum": quorum,
        # Every partition of the saga topics can take an acks=all write right now.
        "available": state is not None
        and not missing
        and all(_writable(t, healthy_ids) for t in topics.values()),
        # Broker 1's, as before clusters: kept for callers that knew only one broker.
        "pid": entries[0]["pid"] if managed else None,
        "log": str(brokers[0].files.log) if managed else str(paths.kafka_log),
        "error": error,
        "missing_topics": missing,
        "topics": {name: _topic(t) for name, t in topics.items()},
        "under_replicated_partitions": sum(
            len(p.isr) < len(p.replicas) for t in topics.values() for p in t.partitions
        ),
        "expected_replication_factor": expected,
        "low_replication_topics": _low_replication(topics, expected),
    }
