"""On-disk size of a service database and of its largest tables.

A partitioned table is counted as the parent with every partition (and their indexes and
TOAST): what an operator means by "the inbox", and the only figure that stays comparable
while partitions are made and dropped under it. Partitions themselves are not listed.
"""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["database_bytes", "largest_tables"]

_LARGEST = """
SELECT name, bytes FROM (
    SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END
               AS name,
           CASE WHEN c.relkind = 'p'
                THEN (SELECT sum(pg_total_relation_size(t.relid))
                      FROM pg_partition_tree(c.oid) t)
                ELSE pg_total_relation_size(c.oid) END::bigint AS bytes
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%%'
) sized
-- A partition that maintenance detaches and drops while this runs is still in the catalog
-- snapshot but gone from disk: its size is NULL, and it is no table to report.
WHERE bytes IS NOT NULL
ORDER BY bytes DESC, 1
LIMIT %(top)s
"""


def database_bytes(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def largest_tables(conn: psycopg.Connection[Any], top: int = 5) -> dict[str, int]:
    """The `top` largest tables of the connection's database, largest first."""
    return {str(name): int(size) for name, size in conn.execute(_LARGEST, {"top": top})}
