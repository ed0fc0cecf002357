"""A scratch database for one service: created, migrated (fully or up to a version), dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eventing.migrations import load_migrations

__all__ = ["migrate_to", "scratch_database"]


@contextmanager
def scratch_database(admin_dsn: str) -> Iterator[str]:
    name = f"saga_scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(**{**conninfo_to_dict(admin_dsn), "dbname": name})
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def migrate_to(conn: psycopg.Connection[Any], versions: Mapping[str, int]) -> None:
    """Apply each package's migrations up to its version, recorded as the runner would: the
    database then looks like one that an older release left behind."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (component text NOT NULL, version integer"
        " NOT NULL, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (component, version))"
    )
    for package, upto in versions.items():
        for m in load_migrations(package):
            if m.version <= upto:
                conn.execute(m.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (component, version, name) VALUES (%s, %s, %s)",
                    (m.component, m.version, m.name),
                )
