"""Lists passed to named queries arrive as the same arrays as when psycopg dumps them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from eventing import db
from eventing.array_params import array_literal, with_array_literals
from eventing.queries import Queries
from eventing.settings import Settings

pytestmark = pytest.mark.integration

Q = Queries.parse(
    """
-- name: texts
SELECT %(a)s::text[]
-- name: uuids
SELECT %(a)s::uuid[]
-- name: times
SELECT %(a)s::timestamptz[]
-- name: ints
SELECT %(a)s::bigint[]
-- name: any_text
SELECT 'b' = ANY(%(a)s)
-- name: unnest_pairs
SELECT array_agg(u.i ORDER BY u.i), array_agg(u.t ORDER BY u.i)
FROM unnest(%(i)s::int[], %(t)s::text[]) AS u (i, t)
"""
)


@pytest.fixture(scope="module")
def conn(settings: Settings, stack: dict[str, Any]) -> Any:
    with db.connect(settings.pg_admin_dsn) as c:
        yield c


_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


@hsettings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.one_of(st.none(), _TEXT), max_size=8))
def test_any_text_comes_back_as_it_went(conn: psycopg.Connection[Any], values: list[Any]) -> None:
    assert Q.scalar(conn, "texts", {"a": values}) == values


def test_plain_values_round_trip(conn: psycopg.Connection[Any]) -> None:
    ids = [uuid.uuid4(), None, uuid.uuid4()]
    times = [
        datetime(2026, 12, 2, 15, 54, 30, 122982, tzinfo=UTC),
        datetime(1, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=1, minutes=30))),
        None,
    ]
    ints = [0, -1, 2**62, None]
    assert Q.scalar(conn, "uuids", {"a": ids}) == ids
    assert Q.scalar(conn, "times", {"a": times}) == times
    assert Q.scalar(conn, "ints", {"a": ints}) == ints
    assert Q.scalar(conn, "texts", {"a": []}) == []
    assert Q.scalar(conn, "any_text", {"a": ["a", "b"]}) is True
    assert Q.scalar(conn, "any_text", {"a": ["a", "c"]}) is False
    rows = Q.rows(conn, "unnest_pairs", {"i": [2, 1], "t": ['x,"y"', "{z}"]})
    assert rows == [([1, 2], ["{z}", 'x,"y"'])]


def test_what_it_does_not_write_is_left_to_psycopg() -> None:
    assert array_literal([b"\x01"]) is None
    assert array_literal([{"a": 1}]) is None
    assert array_literal([[1, 2]]) is None
    assert array_literal([True, False, None, Decimal("1.5"), date(2026, 1, 2), 1.5]) == (
        '{t,f,NULL,1.5,"2026-01-02",1.5}'
    )
    params = {"a": [b"x"], "b": [1], "c": (1, 2), "d": "s"}
    assert with_array_literals(params) == {"a": [b"x"], "b": "{1}", "c": (1, 2), "d": "s"}
    assert with_array_literals([[1, 2], 3]) == ["{1,2}", 3]
