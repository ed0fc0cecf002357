"""The order service's first statement of a batch: stubs for orders not seen yet, locks on
all, in one statement, and an order that another transaction inserts meanwhile still
comes back (locked), though that statement's snapshot cannot see it."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest

from eventing import db
from eventing.settings import Settings
from order_svc import repository as repo
from tests.e2e.harness import wait_for
from tests.integration.service_db import migrate_to, scratch_database

pytestmark = pytest.mark.integration

ALL = {"eventing": 999, "order_svc": 999}


def _insert(conn: psycopg.Connection[Any], order_id: uuid.UUID, status: str) -> None:
    conn.execute(
        "INSERT INTO orders (order_id, status, origin) VALUES (%s, %s, 'api')",
        (order_id, status),
    )


def _waits_on_a_lock(conn: psycopg.Connection[Any], pid: int) -> bool:
    row = conn.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return bool(row and row[0] == "Lock")


def test_new_orders_get_stubs_and_known_ones_keep_their_state(
    settings: Settings, stack: dict[str, Any]
) -> None:
    with scratch_database(settings.pg_admin_dsn) as dsn, db.connect(dsn) as conn:
        migrate_to(conn, ALL)
        known, new = uuid.uuid4(), uuid.uuid4()
        _insert(conn, known, "COMPLETED")
        with conn.transaction():
            got = repo.lock_orders(conn, [new, known, new])
        assert {k: v.status.status for k, v in got.items()} == {
            known: "COMPLETED",
            new: "PENDING",
        }
        origin = conn.execute("SELECT origin FROM orders WHERE order_id = %s", (new,)).fetchone()
        assert origin == ("event",)


def test_an_order_inserted_meanwhile_comes_back_locked(
    settings: Settings, stack: dict[str, Any]
) -> None:
    with scratch_database(settings.pg_admin_dsn) as dsn:
        with db.connect(dsn) as setup:
            migrate_to(setup, ALL)
        racer, other = uuid.uuid4(), uuid.uuid4()
        with (
            psycopg.connect(dsn) as inserter,
            db.connect(dsn) as locker,
            db.connect(dsn) as prober,
            db.connect(dsn) as watch,
        ):
            _insert(inserter, racer, "CANCELLING")  # not autocommit: not committed yet
            result: dict[str, Any] = {}

            def lock() -> None:
                with locker.transaction():
                    result["got"] = repo.lock_orders(locker, [racer, other])
                    # Locked until the end of the transaction: another locker is refused (the
                    # stub is not even visible to it until then).
                    result["refused"] = set()
                    for order_id in (racer, other):
                        try:
                            prober.execute(
                                "SELECT 1 FROM orders WHERE order_id = %s FOR UPDATE NOWAIT",
                                (order_id,),
                            )
                        except psycopg.errors.LockNotAvailable:
                            result["refused"].add(order_id)

            worker = threading.Thread(target=lock)
            worker.start()
            pid = locker.info.backend_pid
            wait_for("the locker to wait on the insert", lambda: _waits_on_a_lock(watch, pid))
            inserter.commit()
            worker.join(timeout=10)
            assert not worker.is_alive()
        assert {k: v.status.status for k, v in result["got"].items()} == {
            racer: "CANCELLING",
            other: "PENDING",
        }
        assert result["refused"] == {racer}
