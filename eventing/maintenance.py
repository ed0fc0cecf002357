"""Keeping a service database in shape while it runs: partitions, archive, legacy tables.

One thread per service process does it, off the hot path: the consumer, the relay and the
API never wait for clean-up, and clean-up never depends on them being idle. With several
instances of a service, one pass at a time runs per database (an advisory lock); the
others skip that round.

`prepare_database` is what runs before anything writes: migrations, then one maintenance
pass, so that every partition a write needs exists from the first event on.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from eventing import db
from eventing.archive import archive_partitions, move_settled
from eventing.logging import get_logger
from eventing.migrations import apply_migrations
from eventing.partitions import Report, TimePartitioned, maintain
from eventing.queries import Queries
from eventing.settings import Settings
from eventing.spec import ServiceSpec

__all__ = ["maintenance_loop", "partition_specs", "prepare_database", "run_maintenance"]

log = get_logger(__name__)
Q = Queries.load("eventing")
_LOCK = "checkout-saga-maintenance"
# One pass moves at most this many orders per table before the partitions get their turn.
_ARCHIVE_CHUNK = 5000
_ARCHIVE_BUDGET_S = 2.0

RUNTIME_PARTITIONS = (
    # Events are remembered under their own occurred_at, which may lie in the past: the
    # window is made whole from the start.
    TimePartitioned(
        "inbox",
        interval_s=lambda s: s.inbox_partition_s,
        retention_s=lambda s: s.inbox_retention_s,
        cover_past=True,
        ahead_s=900.0,
    ),
    # What the relay has not published yet is never dropped, however old. Half-full pages
    # leave each row room for its sent mark beside it: the mark then logs about 80 bytes of
    # WAL instead of the whole row again (about 880 bytes for a typical event), about a
    # fifth of a saga's WAL (measured in docs/performance-history.md, "Before and after").
    TimePartitioned(
        "outbox",
        interval_s=lambda s: s.outbox_partition_s,
        retention_s=lambda s: s.outbox_retention_s,
        keep_if="sent_at IS NULL",
        ahead_s=600.0,
        fillfactor=50,
    ),
)


def partition_specs(spec: ServiceSpec) -> list[TimePartitioned]:
    return [*RUNTIME_PARTITIONS, *spec.partitioned, *archive_partitions(spec.archives)]


def _drop_legacy_inbox(conn: psycopg.Connection[Any], settings: Settings) -> bool:
    if not Q.scalar(conn, "inbox_legacy_present"):
        return False
    if not Q.scalar(conn, "inbox_legacy_expired", {"retention_s": settings.inbox_retention_s}):
        return False
    Q.execute(conn, "inbox_legacy_drop")
    return True


def run_maintenance(
    conn: psycopg.Connection[Any], spec: ServiceSpec, settings: Settings
) -> Report | None:
    """One pass of partition upkeep, or None if another process holds this database's turn."""
    got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (_LOCK,)).fetchone()
    if not got or not got[0]:
        return None
    try:
        report = maintain(conn, partition_specs(spec), settings)
        if _drop_legacy_inbox(conn, settings):
            report.dropped.append("inbox_legacy")
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_LOCK,))
    for name in report.created:
        log.debug("partition created", partition=name)
    if report.dropped:
        log.info("expired partitions dropped", partitions=report.dropped)
    for failure in report.failed:
        log.warning("partition upkeep failed; will retry at the next pass", error=failure)
    return report


def archive_settled(conn: psycopg.Connection[Any], spec: ServiceSpec, settings: Settings) -> int:
    """Move settled records out of the active tables, chunk by chunk, within a time budget."""
    moved = 0
    deadline = time.monotonic() + _ARCHIVE_BUDGET_S
    for archive in spec.archives:
        while True:
            with conn.transaction():
                n = move_settled(conn, archive, settings.archive_after_s, _ARCHIVE_CHUNK)
            moved += n
            if n < _ARCHIVE_CHUNK or time.monotonic() > deadline:
                break
    return moved


def prepare_database(dsn: str, spec: ServiceSpec, settings: Settings) -> int:
    """Migrate, then make every partition a write needs now; returns migrations applied."""
    applied = apply_migrations(dsn, ["eventing", spec.package])
    with db.connect(dsn) as conn:
        deadline = time.monotonic() + 60
        while run_maintenance(conn, spec, settings) is None:  # another instance's pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.name}: maintenance lock held for over 60 s")
            time.sleep(0.2)
    return len(applied)


def _tick_s(spec: ServiceSpec, settings: Settings) -> float:
    shortest = min(p.interval_s(settings) for p in partition_specs(spec))
    if spec.archives:
        shortest = min(shortest, settings.archive_after_s)
    return min(5.0, max(0.2, shortest / 4))


def maintenance_loop(spec: ServiceSpec, settings: Settings, stop: threading.Event) -> None:
    """Until `stop`: partitions made and dropped, settled records archived. Database errors
    end the loop; the runtime supervises it and starts it again with backoff."""
    tick = _tick_s(spec, settings)
    with db.connect(settings.dsn(spec.name)) as conn:
        while not stop.is_set():
            run_maintenance(conn, spec, settings)
            if spec.archives:
                moved = archive_settled(conn, spec, settings)
                if moved:
                    log.debug("settled records archived", rows=moved)
            stop.wait(tick)
