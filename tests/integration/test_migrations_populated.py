"""The migrations to time partitions and archives, run on databases an older release filled.

Each database is migrated up to what the release before partitioning had, filled with the
kinds of rows a running system leaves (unsent and sent outbox rows, recent inbox ids, a
dead letter, orders in flight and ended with their steps, reservations, payments with a
refund, the gateway's ledger, shipments), then migrated to now: nothing may be lost, and
each service must carry on from there.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from eventing import db
from eventing.archive import move_settled
from eventing.maintenance import prepare_database
from eventing.queries import Queries
from eventing.settings import Settings
from saga_cli.services import spec_for
from tests.integration.service_db import migrate_to, scratch_database

pytestmark = pytest.mark.integration
RUNTIME_Q = Queries.load("eventing")
BEFORE = {"order": 2, "inventory": 1, "payment": 1, "fulfillment": 1}


@pytest.fixture
def old_db(
    request: pytest.FixtureRequest, settings: Settings, stack: dict[str, Any]
) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    service: str = request.param
    with scratch_database(settings.pg_admin_dsn) as dsn, db.connect(dsn) as conn:
        migrate_to(conn, {"eventing": 2, f"{service}_svc": BEFORE[service]})
        _fill_runtime(conn)
        yield dsn, conn


def _fill_runtime(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO inbox (event_id) VALUES (%s), (%s)", (_SEEN, uuid.uuid4()))
    conn.execute(
        "INSERT INTO outbox (topic, key, value, order_id, event_type, sent_at) VALUES"
        " ('t', 'k', 'sent-1', %s, 'E', now()), ('t', 'k', 'sent-2', %s, 'E', now()),"
        " ('t', 'k', 'unsent', %s, 'E', NULL)",
        (_ORDER, _ORDER, _ORDER),
    )
    conn.execute(
        "INSERT INTO parked (event_id, order_id, event_type, state, source_topic,"
        " source_partition, source_offset, value) VALUES (%s, %s, 'E', 'dead', 't', 0, 7, 'x')",
        (uuid.uuid4(), _ORDER),
    )


_SEEN = uuid.uuid4()
_ORDER = uuid.uuid4()


def _migrate(dsn: str, settings: Settings, service: str) -> Settings:
    cfg = dataclasses.replace(settings, db_dsns={**settings.db_dsns, service: dsn})
    applied = prepare_database(dsn, spec_for(service), cfg)
    assert applied >= 1
    return cfg


def _runtime_carries_on(conn: psycopg.Connection[Any]) -> None:
    unsent = RUNTIME_Q.rows(conn, "outbox_unsent", {"limit": 10})
    assert [bytes(r[3]) for r in unsent] == [b"unsent"], "the unpublished row is still due"
    assert unsent[0][5] == "outbox_legacy"
    rows = conn.execute("SELECT count(*), count(sent_at) FROM outbox").fetchone()
    assert rows == (3, 2), "sent rows are kept until their partition ages out"
    legacy = conn.execute("SELECT count(*) FROM inbox_legacy WHERE event_id = %s", (_SEEN,))
    assert legacy.fetchone() == (1,), "ids consumed before are still remembered"
    assert conn.execute("SELECT state FROM parked").fetchall() == [("dead",)]


@pytest.mark.parametrize("old_db", ["order"], indirect=True)
def test_order_database(old_db: tuple[str, psycopg.Connection[Any]], settings: Settings) -> None:
    dsn, conn = old_db
    done, running, cancelling = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for order_id, status, steps in (
        (done, "COMPLETED", ["OrderPlaced", "InventoryReserved", "PaymentCharged",
                             "ShipmentScheduled"]),
        (running, "PENDING", ["OrderPlaced", "InventoryReserved"]),
        (cancelling, "CANCELLING", ["OrderPlaced", "InventoryReserved", "PaymentFailed"]),
    ):  # fmt: skip
        conn.execute(
            "INSERT INTO orders (order_id, status, origin, customer_id, idempotency_key,"
            " updated_at, terminal_at) VALUES (%s, %s, 'api', 'c', %s,"
            " now() - interval '1 hour', CASE WHEN %s THEN now() - interval '1 hour' END)",
            (order_id, status, f"key-{order_id}", status == "COMPLETED"),
        )
        for event_type in steps:
            payload = {"reason": "declined"} if event_type == "PaymentFailed" else {}
            conn.execute(
                "INSERT INTO saga_steps (event_id, order_id, event_type, producer, occurred_at,"
                " payload) VALUES (%s, %s, %s, 'x', now(), %s)",
                (uuid.uuid4(), order_id, event_type, json.dumps(payload)),
            )

    cfg = _migrate(dsn, settings, "order")

    _runtime_carries_on(conn)
    facts = dict(
        (r[0], r[1:])
        for r in conn.execute("SELECT order_id, seen, payment_failure FROM orders").fetchall()
    )
    assert "ShipmentScheduled" in facts[done][0]
    assert sorted(facts[running][0]) == ["InventoryReserved", "OrderPlaced"]
    assert facts[cancelling][1] == "declined"
    assert conn.execute("SELECT count(*) FROM saga_steps").fetchone() == (9,)

    from saga_cli.trace import build_trace

    trace = build_trace(conn, cfg, done)
    assert trace is not None and len(trace.events) == 4
    # The ended order moves to the archive, and reads the same from there.
    from order_svc.service import SPEC

    with conn.transaction():
        assert move_settled(conn, SPEC.archives[0], cfg.archive_after_s) == 1
    archived = build_trace(conn, cfg, done)
    assert archived is not None and archived.archived_at is not None
    assert archived.status == "COMPLETED" and len(archived.events) == 4
    # And the service carries on: a new step goes to a new partition.
    from order_svc.repository import record_steps
    from shared_events.inventory import InventoryReleased, InventoryReleasedPayload

    released = InventoryReleased.create(
        order_id=cancelling,
        producer="inventory",
        payload=InventoryReleasedPayload(
            reservation_id=uuid.uuid4(), items=({"sku": "A", "qty": 1},), reason="payment_failed"
        ),
    )
    record_steps(conn, [released])
    part = conn.execute(
        "SELECT tableoid::regclass::text FROM saga_steps WHERE event_id = %s", (released.event_id,)
    ).fetchone()
    assert part is not None and part[0].startswith("saga_steps_p")


@pytest.mark.parametrize("old_db", ["inventory"], indirect=True)
def test_inventory_database(
    old_db: tuple[str, psycopg.Connection[Any]], settings: Settings
) -> None:
    dsn, conn = old_db
    conn.execute("INSERT INTO stock (sku, on_hand, received) VALUES ('S', 10, 10)")
    for status in ("committed", "reserved"):
        conn.execute(
            "INSERT INTO reservations (reservation_id, order_id, status, items, expires_at,"
            ' updated_at) VALUES (%s, %s, %s, \'[{"sku": "S", "qty": 1}]\', now(),'
            " now() - interval '1 hour')",
            (uuid.uuid4(), uuid.uuid4(), status),
        )
    cfg = _migrate(dsn, settings, "inventory")
    _runtime_carries_on(conn)
    assert sorted(r[0] for r in conn.execute("SELECT status FROM reservations").fetchall()) == [
        "committed",
        "reserved",
    ]
    with conn.transaction():
        moved = move_settled(conn, spec_for("inventory").archives[0], cfg.archive_after_s)
    assert moved == 1, "the committed one is settled; the held one stays"


@pytest.mark.parametrize("old_db", ["payment"], indirect=True)
def test_payment_database(old_db: tuple[str, psycopg.Connection[Any]], settings: Settings) -> None:
    dsn, conn = old_db
    refunded = uuid.uuid4()
    conn.execute(
        "INSERT INTO payments (order_id, payment_id, status, amount_minor, currency, updated_at)"
        " VALUES (%s, %s, 'refunded', 500, 'USD', now() - interval '1 hour')",
        (refunded, uuid.uuid4()),
    )
    conn.execute(
        "INSERT INTO refunds (order_id, refund_id, amount_minor, reason) VALUES"
        " (%s, %s, 500, 'fulfillment_failed')",
        (refunded, uuid.uuid4()),
    )
    conn.execute(
        "INSERT INTO gateway_ledger (kind, order_id, idempotency_key, amount_minor, currency,"
        " outcome) VALUES ('charge', %s, %s, 500, 'USD', 'approved'),"
        " ('refund', %s, %s, 500, 'USD', 'approved')",
        (refunded, f"charge:{refunded}", refunded, f"refund:{refunded}"),
    )
    cfg = _migrate(dsn, settings, "payment")
    _runtime_carries_on(conn)
    # The gateway still knows its keys: charging that order again charges nothing.
    from payment_svc.gateway import Gateway

    gateway = Gateway(dsn)
    try:
        result = gateway.charge_many([(refunded, "tok_ok", 500, "USD")])
    finally:
        gateway.close()
    assert result[refunded].approved
    assert conn.execute("SELECT count(*) FROM gateway_ledger").fetchone() == (2,)
    with conn.transaction():
        moved = move_settled(conn, spec_for("payment").archives[0], cfg.archive_after_s)
    assert moved == 1
    assert conn.execute("SELECT count(*) FROM refunds_archive").fetchone() == (1,)


@pytest.mark.parametrize("old_db", ["fulfillment"], indirect=True)
def test_fulfillment_database(
    old_db: tuple[str, psycopg.Connection[Any]], settings: Settings
) -> None:
    dsn, conn = old_db
    conn.execute(
        "INSERT INTO shipments (order_id, shipment_id, status, country, items, created_at)"
        " VALUES (%s, %s, 'scheduled', 'US', '[]', now() - interval '1 hour')",
        (uuid.uuid4(), uuid.uuid4()),
    )
    cfg = _migrate(dsn, settings, "fulfillment")
    _runtime_carries_on(conn)
    with conn.transaction():
        moved = move_settled(conn, spec_for("fulfillment").archives[0], cfg.archive_after_s)
    assert moved == 1
