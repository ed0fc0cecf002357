"""What a benchmark ran on: brokers, replication, partitions, instances per service."""

from __future__ import annotations

from typing import Any

from eventing.kafka.admin import KafkaAdminError, cluster_state, group_members
from eventing.settings import SERVICES, Settings
from shared_events.topics import ALL_TOPICS, events_topic

__all__ = ["topology"]


def topology(cfg: Settings) -> dict[str, Any]:
    """Read from the cluster itself (not from settings), so the report says what was true."""
    bootstrap = cfg.kafka_bootstrap_servers
    try:
        state = cluster_state(bootstrap, list(ALL_TOPICS))
    except KafkaAdminError as exc:
        return {"error": str(exc)}
    layout = state.topics.get(events_topic("order"))
    members = group_members(bootstrap, [f"{s}-svc" for s in SERVICES])
    return {
        "kafka_brokers": len(state.brokers),
        "replication_factor": layout.replication_factor if layout else None,
        "min_insync_replicas": layout.min_insync_replicas if layout else None,
        "partitions_per_topic": len(layout.partitions) if layout else None,
        "instances": {s: members.get(f"{s}-svc", 0) for s in SERVICES},
    }
