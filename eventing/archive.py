"""Active tables stay small: settled records move to a time-partitioned archive, and come back
if an event about them ever arrives again.

A service declares, per table it keeps one row per order in, when a row is settled
(`archivable`: nothing its periodic work scans for, e.g. not a held reservation). The
runtime then:

- moves rows that have been settled and untouched for SAGA_ARCHIVE_AFTER_S into
  `<table>_archive` (partitioned by `archived_at`, dropped whole after
  SAGA_ARCHIVE_RETENTION_S), in chunks, skipping rows a handler holds and every order that
  has a parked message (its dead letter may still be redriven and needs its records);
- before a handler runs, moves the rows of the batch's orders back from the archive
  (`restore`), so handlers only ever read the active tables and stay as simple as they are.
  An order id that is a UUIDv7 younger than half the archive delay cannot have archived
  rows: for the sagas in flight, which are nearly all of them, this costs nothing.

The move is one statement per table set (DELETE ... RETURNING feeding an INSERT), so a row
is always in exactly one of the two tables for every reader.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from eventing.partitions import TimePartitioned
from shared_events.ids import created_at

__all__ = ["ArchivedTable", "archive_partitions", "maybe_archived", "move_settled", "restore"]

# Clocks of different hosts disagree a little: an id stamped up to this far in the future
# is still trusted to say how young its order is.
_SKEW = timedelta(seconds=60)


@dataclass(frozen=True)
class ArchivedTable:
    """One active table (one or more rows per order) and the tables that move with it."""

    table: str
    archivable: str  # SQL condition on the active row, alias `t`
    children: tuple[str, ...] = ()
    idle_column: str = "updated_at"
    # Run on an archive partition of `table` just before it is dropped ({partition}): totals
    # that must outlive the rows (eventing.partitions.TimePartitioned.before_drop).
    before_drop: str | None = None

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.table, *self.children)


def archive_name(table: str) -> str:
    return f"{table}_archive"


def archive_partitions(archives: Iterable[ArchivedTable]) -> list[TimePartitioned]:
    """The archive tables, as partitioned tables for `eventing.partitions.maintain`."""
    return [
        TimePartitioned(
            archive_name(t),
            interval_s=lambda s: s.archive_partition_s,
            retention_s=lambda s: s.archive_retention_s,
            ahead_s=3600.0,
            before_drop=a.before_drop if t == a.table else None,
        )
        for a in archives
        for t in a.tables
    ]


def maybe_archived(order_id: uuid.UUID, now: datetime, archive_after_s: float) -> bool:
    """False only when the id proves the order too young to have anything archived."""
    born = created_at(order_id)
    if born is None:
        return True
    return not (now - timedelta(seconds=archive_after_s / 2) < born <= now + _SKEW)


_columns_cache: dict[tuple[str, str], list[str]] = {}


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    key = (conn.info.dbname, table)
    if key not in _columns_cache:
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
            (table,),
        ).fetchall()
        _columns_cache[key] = [r[0] for r in rows]
    return _columns_cache[key]


def _column_list(names: Sequence[str], prefix: str = "") -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL(prefix) + sql.Identifier(n) if prefix else sql.Identifier(n) for n in names
    )


def move_settled(
    conn: psycopg.Connection[Any], spec: ArchivedTable, after_s: float, limit: int = 5000
) -> int:
    """Archive up to `limit` settled, idle orders of `spec` in one statement; returns how many."""
    ctes: list[sql.Composable] = [
        sql.SQL(
            "picked AS (SELECT t.order_id FROM {table} t WHERE ({cond})"
            " AND t.{idle} < now() - make_interval(secs => {after})"
            " AND NOT EXISTS (SELECT 1 FROM parked p WHERE p.order_id = t.order_id)"
            " ORDER BY t.{idle} LIMIT {limit} FOR UPDATE OF t SKIP LOCKED)"
        ).format(
            table=sql.Identifier(spec.table),
            cond=sql.SQL(spec.archivable),
            idle=sql.Identifier(spec.idle_column),
            after=sql.Literal(after_s),
            limit=sql.Literal(limit),
        )
    ]
    for i, table in enumerate(spec.tables):
        cols = _columns(conn, table)
        ctes.append(
            sql.SQL(
                "gone{i} AS (DELETE FROM {table} x USING picked WHERE x.order_id = picked.order_id"
                " RETURNING {xcols}), kept{i} AS (INSERT INTO {archive} ({cols}, archived_at)"
                " SELECT {cols}, now() FROM gone{i} RETURNING 1)"
            ).format(
                i=sql.SQL(str(i)),
                table=sql.Identifier(table),
                xcols=_column_list(cols, "x."),
                archive=sql.Identifier(archive_name(table)),
                cols=_column_list(cols),
            )
        )
    query = sql.SQL("WITH {} SELECT count(*) FROM kept0").format(sql.SQL(", ").join(ctes))
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def restore(
    conn: psycopg.Connection[Any], archives: Iterable[ArchivedTable], order_ids: Iterable[uuid.UUID]
) -> int:
    """Move the orders' archived rows back into the active tables; returns the rows moved."""
    ids = sorted(set(order_ids))
    if not ids:
        return 0
    moved = 0
    for spec in archives:
        for table in spec.tables:
            cols = _columns(conn, table)
            cur = conn.execute(
                sql.SQL(
                    "WITH back AS (DELETE FROM {archive} WHERE order_id = ANY(%s::uuid[])"
                    " RETURNING {cols}) INSERT INTO {table} ({cols}) SELECT {cols} FROM back"
                ).format(
                    archive=sql.Identifier(archive_name(table)),
                    table=sql.Identifier(table),
                    cols=_column_list(cols),
                ),
                (ids,),
            )
            moved += cur.rowcount
    return moved


__all__ += ["archive_name"]
