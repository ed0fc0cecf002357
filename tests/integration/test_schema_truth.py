"""Each service's sql/schema.sql is the truth: its migrations must reach the same schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eventing.migrations import load_migrations
from eventing.settings import Settings

pytestmark = pytest.mark.integration

_DESCRIBE = """
SELECT 'column' AS kind, table_name || '.' || column_name || ' ' || data_type || ' '
       || is_nullable || ' ' || coalesce(column_default, '') AS what
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'function', pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = 'public'::regnamespace
ORDER BY 1, 2
"""


@contextmanager
def scratch_db(admin_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    name = f"saga_schema_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        dsn = make_conninfo(**{**conninfo_to_dict(admin_dsn), "dbname": name})
        with psycopg.connect(dsn, autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def describe(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(_DESCRIBE).fetchall()]


@pytest.mark.parametrize(
    "package", ["order_svc", "inventory_svc", "payment_svc", "fulfillment_svc"]
)
def test_migrations_reach_schema_sql(
    settings: Settings, stack: dict[str, Any], package: str
) -> None:
    truth = resources.files(package).joinpath("sql", "schema.sql").read_text()
    with scratch_db(settings.pg_admin_dsn) as a, scratch_db(settings.pg_admin_dsn) as b:
        for m in load_migrations(package):
            a.execute(m.sql.encode())
        b.execute(truth.encode())
        migrated, declared = describe(a), describe(b)
    assert migrated, "the migrations created nothing"
    assert migrated == declared
