"""Queries.copy: a few rows by INSERT, a batch by COPY, the same rows either way."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from eventing import db
from eventing.queries import SMALL_BATCH, Queries
from eventing.settings import Settings
from tests.sim.strategies import texts

pytestmark = pytest.mark.integration

Q = Queries.parse(
    """
-- name: copy_things
-- A comment before the statement, as the services' queries have.
COPY things (id, name, tags, doc, at, n, flag, raw)
FROM STDIN

-- name: copy_missing
COPY no_such_table (id) FROM STDIN
"""
)

_ROW = st.tuples(
    st.uuids(),
    texts(),
    st.lists(st.one_of(st.none(), texts()), max_size=3),
    st.dictionaries(texts(), st.integers(-(2**40), 2**40), max_size=3).map(json.dumps),
    st.one_of(
        st.none(),
        st.integers(0, 10**6).map(lambda s: datetime(2026, 12, 3, tzinfo=UTC) + timedelta(s)),
    ),
    st.one_of(st.none(), st.integers(-(2**62), 2**62)),
    st.booleans(),
    st.one_of(st.none(), st.binary(max_size=16)),
)


def _session(settings: Settings) -> psycopg.Connection[Any]:
    c = db.connect(settings.pg_admin_dsn)
    c.execute(
        "CREATE TEMP TABLE things (id uuid PRIMARY KEY, name text, tags text[], doc jsonb,"
        " at timestamptz, n bigint, flag boolean, raw bytea)"
    )
    return c


@pytest.fixture(scope="module")
def conn(settings: Settings, stack: dict[str, Any]) -> Any:
    with _session(settings) as c:
        yield c


def _stored(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    conn.execute("TRUNCATE things")
    Q.copy(conn, "copy_things", iter(rows))  # a generator, as the services pass
    got = conn.execute("SELECT * FROM things").fetchall()
    order = {r[0]: i for i, r in enumerate(rows)}
    return sorted(got, key=lambda r: order[r[0]])


def _expected(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(*r[:3], json.loads(r[3]), *r[4:]) for r in rows]  # jsonb comes back decoded


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_ROW, min_size=1, max_size=2 * SMALL_BATCH, unique_by=lambda r: r[0]))
def test_rows_arrive_as_they_were_given_by_either_path(
    conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]
) -> None:
    assert _stored(conn, rows) == _expected(rows)


def test_both_paths_are_taken_and_agree(settings: Settings, stack: dict[str, Any]) -> None:
    def rows(n: int) -> list[tuple[Any, ...]]:
        return [
            (uuid.uuid4(), f"n{i}", ["a", None], '{"k": 1}', None, i, i % 2 == 0, b"\x00\xff")
            for i in range(n)
        ]

    def inserts_prepared(conn: psycopg.Connection[Any]) -> int:
        # The INSERT path prepares a statement in the session; COPY cannot be prepared.
        row = conn.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO things%'"
        ).fetchone()
        assert row is not None
        return int(row[0])

    # A session of its own: none of the INSERTs is prepared in it yet.
    with _session(settings) as conn:
        for n, by_insert in ((1, True), (SMALL_BATCH, True), (SMALL_BATCH + 1, False), (12, False)):
            before = inserts_prepared(conn)
            batch = rows(n)
            assert _stored(conn, batch) == _expected(batch)
            assert inserts_prepared(conn) - before == (1 if by_insert else 0), n


def test_no_rows_send_no_statement(conn: psycopg.Connection[Any]) -> None:
    Q.copy(conn, "copy_missing", [])  # a COPY into the missing table would raise
    with pytest.raises(psycopg.errors.UndefinedTable):
        Q.copy(conn, "copy_missing", [(uuid.uuid4(),)])
    conn.rollback()


def test_a_copy_it_cannot_stand_in_for_is_refused_when_loaded() -> None:
    with pytest.raises(ValueError, match="COPY table \\(columns\\) FROM STDIN"):
        Queries.parse("-- name: bad\nCOPY things FROM STDIN WITH (FORMAT csv)\n")
