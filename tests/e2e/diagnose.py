"""What the system looked like when a test failed: CI keeps no logs, so the report must.

Reads only (pg_stat_activity, the outboxes, consumer group descriptions and lag); any
part that cannot be read says why instead of hiding the rest.
"""

from __future__ import annotations

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from eventing.settings import SERVICES, Settings
from eventing.spec import input_topics
from saga_cli.services import spec_for
from tests.e2e.kafka_tools import lag

__all__ = ["system_report"]

_ACTIVITY = """
SELECT pid, application_name, state, wait_event_type, wait_event,
       round(extract(epoch FROM now() - xact_start)::numeric, 1) AS xact_s,
       pg_blocking_pids(pid) AS blocked_by, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND (state <> 'idle' OR xact_start IS NOT NULL)
ORDER BY xact_start NULLS LAST
LIMIT 12
"""
_OUTBOX = """
SELECT count(*), round(extract(epoch FROM now() - min(created_at))::numeric, 1)
FROM outbox WHERE sent_at IS NULL
"""


def _database(settings: Settings, service: str) -> list[str]:
    try:
        with psycopg.connect(settings.dsn(service), autocommit=True, connect_timeout=5) as conn:
            unsent, oldest_s = conn.execute(_OUTBOX).fetchone() or (0, None)
            lines = [f"{service} db: {unsent} outbox rows unsent (oldest {oldest_s} s)"]
            lines += [f"  {row}" for row in conn.execute(_ACTIVITY).fetchall()]
            return lines
    except psycopg.Error as exc:
        return [f"{service} db: unreadable: {exc}"]


def _groups(settings: Settings) -> list[str]:
    bootstrap = settings.kafka_bootstrap_servers
    names = [f"{s}-svc" for s in SERVICES]
    try:
        lines = []
        with AdminClient({"bootstrap.servers": bootstrap}) as admin:
            described = admin.describe_consumer_groups(names, request_timeout=5)
            groups = {name: future.result(10) for name, future in described.items()}
        for name, g in groups.items():
            members = ", ".join(
                f"{m.client_id}:{len(m.assignment.topic_partitions)}p" for m in g.members
            )
            topics = input_topics(spec_for(name.removesuffix("-svc")))
            lines.append(
                f"group {name}: {g.state.name}, members [{members}], "
                f"lag {lag(bootstrap, name, topics)}"
            )
        return lines
    except (KafkaException, TimeoutError) as exc:
        return [f"consumer groups: unreadable: {exc}"]


def system_report(settings: Settings) -> str:
    lines: list[str] = []
    for service in SERVICES:
        lines += _database(settings, service)
    lines += _groups(settings)
    return "\n".join(lines)
