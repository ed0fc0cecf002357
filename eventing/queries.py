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


class Queries:
    def __init__(self, sql: dict[str, str]) -> None:
        self._sql = sql

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
        """Rows into a `COPY ... FROM STDIN` query: the cheapest way to insert a batch."""
        with conn.cursor() as cur, cur.copy(self[name]) as copy:
            for row in rows:
                copy.write_row(row)

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
