"""Per-service schema migrations: numbered .sql files applied once each, in order.

A service's database gets the runtime's tables (inbox, outbox, parked messages) and then
the service's own; each set is tracked under its own component name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from eventing.logging import get_logger

__all__ = ["Migration", "apply_migrations", "load_migrations", "pending_migrations"]

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
log = get_logger(__name__)


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    folder = resources.files(package).joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(package, int(m.group(1)), m.group(2), entry.read_text()))
    versions = [m.version for m in sorted(found, key=lambda m: m.version)]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"{package} migrations must be numbered 0001.. without gaps: {versions}")
    return sorted(found, key=lambda m: m.version)


_TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  text NOT NULL,
    version    integer NOT NULL,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""


def _applied(conn: psycopg.Connection[Any]) -> set[tuple[str, int]]:
    rows = conn.execute("SELECT component, version FROM schema_migrations").fetchall()
    return {(r[0], r[1]) for r in rows}


def pending_migrations(conn: psycopg.Connection[Any], packages: list[str]) -> list[Migration]:
    conn.execute(_TRACKING)
    done = _applied(conn)
    return [m for p in packages for m in load_migrations(p) if (m.component, m.version) not in done]


def apply_migrations(dsn: str, packages: list[str]) -> list[Migration]:
    """Apply what is missing; safe to run from several processes at once."""
    applied: list[Migration] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        # One migrator at a time per database; the others wait and then find nothing to do.
        conn.execute("SELECT pg_advisory_lock(hashtext('checkout-saga-migrations'))")
        try:
            for m in pending_migrations(conn, packages):
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (component, version, name)"
                        " VALUES (%s, %s, %s)",
                        (m.component, m.version, m.name),
                    )
                log.info("migration applied", component=m.component, version=m.version, name=m.name)
                applied.append(m)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('checkout-saga-migrations'))")
    return applied
