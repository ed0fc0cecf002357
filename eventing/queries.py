"""Named SQL queries, procrastinate style: `-- name: foo` blocks in a queries.sql file."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import dict_row

from eventing.array_params import with_array_literals

__all__ = ["Queries"]

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_COPY = re.compile(r"^COPY\s+(\w+)\s*\(([^)]*)\)\s*FROM\s+STDIN$", re.IGNORECASE)
# Batches of up to this many rows go in by a prepared INSERT rather than COPY. COPY costs
# two round trips (the statement, then the data) and is parsed anew each time; a prepared
# INSERT is one round trip, and every round trip gives up the GIL and waits to get it back
# behind the process's other threads. Measured on a scratch outbox (rows of ~600 B),
# client CPU per batch: 1 row 0.12-0.21 ms by INSERT against 0.30 by COPY, 4 rows
# 0.18-0.26 against 0.33-0.42, 8 rows even, 16 rows 1.1 against 0.6; with a second thread
# busy in the same process, INSERT got through 1.5-2x more batches at every size to 8.
SMALL_BATCH = 4


def _bare(sql: str) -> str:
    """The statement without its comments, on one line."""
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def _copy_target(name: str, sql: str) -> tuple[str, list[str]]:
    """The table and columns of a `COPY table (columns) FROM STDIN` query."""
    match = _COPY.match(_bare(sql))
    if match is None:
        raise ValueError(f"query {name!r} is not of the form COPY table (columns) FROM STDIN")
    table, columns = match.groups()
    return table, [c.strip() for c in columns.split(",")]


class Queries:
    def __init__(self, sql: dict[str, str]) -> None:
        self._sql = sql
        # The table and columns of each COPY query, read once: a COPY that copy() could not
        # stand in for is refused here, when the queries load.
        self._copies = {
            name: _copy_target(name, text)
            for name, text in sql.items()
            if _bare(text)[:5].upper() == "COPY "
        }
        # (name, rows) -> the INSERT of that many rows that stands in for a COPY query.
        self._inserts: dict[tuple[str, int], str] = {}

    @classmethod
    def parse(cls, text: str) -> Queries:
        parts = _NAME.split(text)
        sql: dict[str, str] = {}
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in sql:
                raise ValueError(f"query {name!r} is defined twice")
            sql[name] = body.strip()
        return cls(sql)

    @classmethod
    def load(cls, package: str, filename: str = "sql/queries.sql") -> Queries:
        return cls.parse(resources.files(package).joinpath(filename).read_text())

    def __getitem__(self, name: str) -> str:
        try:
            return self._sql[name]
        except KeyError:
            raise KeyError(f"no query named {name!r}; known: {sorted(self._sql)}") from None

    def names(self) -> list[str]:
        return sorted(self._sql)

    def execute(self, conn: psycopg.Connection[Any], name: str, params: Any = None) -> int:
        with conn.cursor() as cur:
            cur.execute(self[name], with_array_literals(params), prepare=True)
            return cur.rowcount

    def executemany(self, conn: psycopg.Connection[Any], name: str, params: list[Any]) -> None:
        if params:
            with conn.cursor() as cur:
                cur.executemany(self[name], [with_array_literals(p) for p in params])

    def copy(self, conn: psycopg.Connection[Any], name: str, rows: Iterable[Sequence[Any]]) -> None:
        """Rows into the table of a `COPY table (columns) FROM STDIN` query: by COPY, the
        cheapest way in for a batch; a few rows by the same columns' INSERT (SMALL_BATCH);
        no rows, no statement."""
        batch = rows if isinstance(rows, list) else list(rows)
        if not batch:
            return
        if len(batch) > SMALL_BATCH:
            with conn.cursor() as cur, cur.copy(self[name]) as copy:
                for row in batch:
                    copy.write_row(row)
            return
        with conn.cursor() as cur:
            cur.execute(
                self._insert(name, len(batch)),
                with_array_literals([v for row in batch for v in row]),
                prepare=True,
            )

    def _insert(self, name: str, n: int) -> str:
        found = self._inserts.get((name, n))
        if found is None:
            target = self._copies.get(name)
            if target is None:
                raise KeyError(f"no COPY query named {name!r}; known: {sorted(self._copies)}")
            table, columns = target
            row = "(" + ", ".join(["%s"] * len(columns)) + ")"
            found = f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * n)
            self._inserts[(name, n)] = found
        return found

    def rows(self, conn: psycopg.Connection[Any], name: str, params: Any = None) -> list[Any]:
        """Plain tuples: cheaper than dicts where a hot loop reads a few columns."""
        with conn.cursor() as cur:
            cur.execute(self[name], with_array_literals(params), prepare=True)
            return cur.fetchall()

    def one(
        self, conn: psycopg.Connection[Any], name: str, params: Any = None
    ) -> dict[str, Any] | None:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self[name], with_array_literals(params), prepare=True)
            return cur.fetchone()

    def all(
        self, conn: psycopg.Connection[Any], name: str, params: Any = None
    ) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self[name], with_array_literals(params), prepare=True)
            return cur.fetchall()

    def scalar(self, conn: psycopg.Connection[Any], name: str, params: Any = None) -> Any:
        with conn.cursor() as cur:
            cur.execute(self[name], with_array_literals(params), prepare=True)
            row = cur.fetchone()
            return row[0] if row else None
