"""Tables kept by time: range partitions made ahead of need and dropped whole once expired.

Why partitions and not DELETE: dropping a partition costs the same whether it holds a
thousand rows or ten million, leaves no dead tuples for autovacuum, and needs nothing from
the hot path (the relay, the consumer). A table is declared once as a `TimePartitioned`
and `maintain` keeps it: partitions exist from now to `ahead` intervals beyond it, and those
that ended more than the retention ago are detached (CONCURRENTLY: writers are never
blocked) and dropped.

Locks: a partition is created as a plain table and then ATTACHed, which takes SHARE UPDATE
EXCLUSIVE on the parent (CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE and
stall every writer behind it). Each step runs under a short lock_timeout and is simply
retried at the next pass when it cannot get its lock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from eventing.logging import get_logger
from eventing.settings import Settings

__all__ = [
    "Partition",
    "TimePartitioned",
    "covered",
    "expired",
    "list_partitions",
    "maintain",
    "missing_ranges",
]

log = get_logger(__name__)

NEVER = datetime.min.replace(tzinfo=UTC)
_BOUND = re.compile(r"FROM \((MINVALUE|'[^']+')\) TO \((MAXVALUE|'[^']+')\)")
_LOCK_TIMEOUT = "2s"


@dataclass(frozen=True)
class TimePartitioned:
    """A table partitioned BY RANGE on a timestamptz column, kept by `maintain`."""

    table: str
    interval_s: Callable[[Settings], float]
    retention_s: Callable[[Settings], float]
    # Partitions kept ready beyond the current one, at least this far ahead (seconds), so a
    # maintenance pass that is late or fails for a while never leaves a write without one.
    ahead_s: float = 600.0
    # Also make partitions back to now - retention: for tables keyed by a time that comes
    # with the data (the inbox is keyed by each event's occurred_at), not by now().
    cover_past: bool = False
    # A partition holding any row that matches is kept past its retention (the outbox keeps
    # what it has not published yet).
    keep_if: str | None = None
    # Statement run on a detached partition just before it is dropped ({partition} is its
    # name), in the same transaction: e.g. totals that must outlive the rows.
    before_drop: str | None = None
    # Fill new partitions' pages only this full (percent): an update that cannot be HOT
    # (it changes a column an index reads) then still finds room on the row's own page,
    # and PostgreSQL logs only the changed bytes instead of the whole new row.
    fillfactor: int | None = None

    def interval(self, settings: Settings) -> timedelta:
        return timedelta(seconds=self.interval_s(settings))

    def retention(self, settings: Settings) -> timedelta:
        return timedelta(seconds=self.retention_s(settings))


@dataclass(frozen=True, order=True)
class Partition:
    lower: datetime  # NEVER for a FROM (MINVALUE) partition
    upper: datetime
    name: str = field(compare=False)
    detach_pending: bool = field(default=False, compare=False)


def _parse(bound: str) -> tuple[datetime, datetime] | None:
    m = _BOUND.search(bound)
    if m is None:
        return None

    def at(text: str) -> datetime:
        return NEVER if text == "MINVALUE" else datetime.fromisoformat(text.strip("'"))

    if m.group(2) == "MAXVALUE":
        return None  # never made by us; left alone
    return at(m.group(1)), at(m.group(2))


def list_partitions(conn: psycopg.Connection[Any], table: str) -> list[Partition]:
    """The table's range partitions, oldest first (bounds read in UTC)."""
    conn.execute("SET TimeZone TO 'UTC'")
    rows = conn.execute(
        """
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), i.inhdetachpending
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = %s::regclass
        """,
        (table,),
    ).fetchall()
    found = []
    for name, bound, pending in rows:
        parsed = _parse(bound or "")
        if parsed is not None:
            found.append(Partition(parsed[0], parsed[1], name, bool(pending)))
    return sorted(found)


def _floor(at: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    return datetime.fromtimestamp(math.floor(at.timestamp() / seconds) * seconds, UTC)


def missing_ranges(
    existing: Sequence[Partition], start: datetime, end: datetime, step: timedelta
) -> list[tuple[datetime, datetime]]:
    """Ranges of [start, end), cut at multiples of `step`, that no partition covers yet.

    A partition made with another interval (the setting changed) or a legacy one leaves
    part of a step covered: only the uncovered part is returned, so ranges never overlap.
    """
    out: list[tuple[datetime, datetime]] = []
    lo = _floor(start, step)
    while lo < end:
        hi = lo + step
        cursor = lo
        for p in sorted(existing):
            if p.upper <= cursor or p.lower >= hi:
                continue
            if p.lower > cursor:
                out.append((cursor, p.lower))
            cursor = max(cursor, p.upper)
            if cursor >= hi:
                break
        if cursor < hi:
            out.append((cursor, hi))
        lo = hi
    return out


def expired(existing: Iterable[Partition], now: datetime, retention: timedelta) -> list[Partition]:
    """Partitions whose every row is older than the retention."""
    return [p for p in existing if p.upper <= now - retention]


def covered(existing: Sequence[Partition], at: datetime) -> tuple[datetime, datetime] | None:
    """The contiguous range of partitions around `at`, or None if `at` has no partition."""
    parts = sorted(existing)
    for i, p in enumerate(parts):
        if p.lower <= at < p.upper:
            lo_i, hi_i = i, i
            while lo_i > 0 and parts[lo_i - 1].upper == parts[lo_i].lower:
                lo_i -= 1
            while hi_i + 1 < len(parts) and parts[hi_i].upper == parts[hi_i + 1].lower:
                hi_i += 1
            return parts[lo_i].lower, parts[hi_i].upper
    return None


def _name(table: str, lower: datetime) -> str:
    return f"{table}_p{lower:%Y%m%d_%H%M%S}"


def _db_now(conn: psycopg.Connection[Any]) -> datetime:
    value = conn.execute("SELECT now()").fetchone()
    assert value is not None
    return value[0]  # type: ignore[no-any-return]


def _create(
    conn: psycopg.Connection[Any], spec: TimePartitioned, lo: datetime, hi: datetime
) -> str:
    table = spec.table
    name = _name(table, lo)
    storage: sql.Composable = sql.SQL("")
    if spec.fillfactor is not None:
        storage = sql.SQL(" WITH (fillfactor = {})").format(sql.Literal(spec.fillfactor))
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS){}"
            ).format(sql.Identifier(name), sql.Identifier(table), storage)
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(table), sql.Identifier(name), sql.Literal(lo), sql.Literal(hi)
            )
        )
    return name


def _holds(conn: psycopg.Connection[Any], name: str, condition: str) -> bool:
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(
            sql.Identifier(name),
            sql.SQL(condition),
        )
    ).fetchone()
    return bool(row and row[0])


def _drop(conn: psycopg.Connection[Any], spec: TimePartitioned, p: Partition) -> bool:
    """Detach without blocking writers, then drop; False if it must be kept after all."""
    parent, part = sql.Identifier(spec.table), sql.Identifier(p.name)
    if spec.keep_if and _holds(conn, p.name, spec.keep_if):
        return False
    conn.execute(f"SET lock_timeout = '{_LOCK_TIMEOUT}'")
    try:
        if p.detach_pending:  # a DETACH CONCURRENTLY that was interrupted: finish it
            conn.execute(
                sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(parent, part)
            )
        else:
            conn.execute(
                sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(parent, part)
            )
    finally:
        conn.execute("RESET lock_timeout")
    with conn.transaction():
        if spec.keep_if and _holds(conn, p.name, spec.keep_if):
            # A row arrived between the check and the detach: put the partition back.
            conn.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    parent,
                    part,
                    sql.SQL("MINVALUE") if p.lower == NEVER else sql.Literal(p.lower),
                    sql.Literal(p.upper),
                )
            )
            return False
        if spec.before_drop:
            conn.execute(sql.SQL(spec.before_drop).format(partition=part))
        conn.execute(sql.SQL("DROP TABLE {}").format(part))
    return True


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def maintain(
    conn: psycopg.Connection[Any], specs: Iterable[TimePartitioned], settings: Settings
) -> Report:
    """One pass over `specs` on an autocommit connection: create what is due, drop what expired.

    Safe to run from several processes at once (each step checks the catalog first and a
    lost race only fails that step), and after any interruption.
    """
    report = Report()
    now = _db_now(conn)
    for spec in specs:
        step, keep = spec.interval(settings), spec.retention(settings)
        parts = list_partitions(conn, spec.table)
        start = now - keep if spec.cover_past else now
        # Never fewer than two partitions ahead, nor more than ten (short test intervals).
        end = now + min(max(step * 2, timedelta(seconds=spec.ahead_s)), step * 10)
        for lo, hi in missing_ranges(parts, start, end, step):
            try:
                report.created.append(_create(conn, spec, lo, hi))
            except psycopg.Error as exc:
                report.failed.append(f"create {spec.table} [{lo}, {hi}): {exc}".strip())
        for p in expired(parts, now, keep):
            try:
                (report.dropped if _drop(conn, spec, p) else report.kept).append(p.name)
            except psycopg.Error as exc:
                report.failed.append(f"drop {p.name}: {exc}".strip())
    return report


__all__ += ["Report"]
