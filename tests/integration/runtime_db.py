"""A fresh database per test, cloned from a template holding the runtime's schema."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eventing import db
from eventing.maintenance import RUNTIME_PARTITIONS
from eventing.migrations import apply_migrations, load_migrations
from eventing.partitions import maintain
from eventing.settings import load_settings

# Named after the runtime's migrations, so a changed schema gets a template of its own.
TEMPLATE = (
    "saga_test_runtime_"
    + hashlib.sha256("".join(m.sql for m in load_migrations("eventing")).encode()).hexdigest()[:12]
)
TEST_TABLE = """
CREATE TABLE effects (
    event_id uuid PRIMARY KEY,
    order_id uuid NOT NULL,
    seq      bigserial
)
"""


def _dsn_for(admin_dsn: str, dbname: str) -> str:
    return make_conninfo(**{**conninfo_to_dict(admin_dsn), "dbname": dbname})


def ensure_template(admin_dsn: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(4242)")
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,)
            ).fetchone()
            if exists:
                return
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
            dsn = _dsn_for(admin_dsn, TEMPLATE)
            apply_migrations(dsn, ["eventing"])
            with psycopg.connect(dsn, autocommit=True) as tconn:
                tconn.execute(TEST_TABLE)
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242)")


@contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    ensure_template(admin_dsn)
    name = f"saga_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        dsn = _dsn_for(admin_dsn, name)
        # The template's partitions were made when it was: make today's.
        with db.connect(dsn) as conn:
            maintain(conn, RUNTIME_PARTITIONS, load_settings())
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
