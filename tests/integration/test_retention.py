"""Bounded storage on a real database: partitions made and dropped, the inbox's window, the
archive and its way back, rollups that outlive dropped rows, and no second charge for a
message redriven after the dedupe window."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from eventing import db
from eventing.archive import move_settled, restore
from eventing.kafka.clients import Record
from eventing.maintenance import RUNTIME_PARTITIONS, prepare_database, run_maintenance
from eventing.migrations import apply_migrations
from eventing.outbox import OutboxRow, insert_outbox
from eventing.parking import Parking
from eventing.partitions import list_partitions, maintain
from eventing.processing import Processor
from eventing.queries import Queries
from eventing.retrier import Retrier
from eventing.settings import Settings
from eventing.tx import Tx
from order_svc.domain import TERMINAL
from order_svc.repository import placement_lookup
from shared_events.codec import encode
from shared_events.common import Address, LineItem, StockLine
from shared_events.envelope import Event, utcnow
from shared_events.fulfillment import ShipmentScheduled, ShipmentScheduledPayload
from shared_events.inventory import InventoryReserved, InventoryReservedPayload
from shared_events.order import OrderPlaced, OrderPlacedPayload
from tests.e2e.harness import wait_for
from tests.integration.service_db import scratch_database

pytestmark = pytest.mark.integration
RUNTIME_Q = Queries.load("eventing")
_offsets = iter(range(10**9))


def record(event: Event) -> Record:
    rec = encode(event)
    return Record("t", 0, next(_offsets), rec.key, rec.value, rec.headers, 0)


def aged(event: Event, seconds: float) -> Event:
    return event.model_copy(update={"occurred_at": utcnow() - timedelta(seconds=seconds)})


def order_placed(order_id: uuid.UUID | None = None) -> OrderPlaced:
    return OrderPlaced.create(
        order_id=order_id or uuid.uuid4(),
        producer="order",
        payload=OrderPlacedPayload(
            customer_id="c",
            items=(LineItem(sku="A", qty=1, unit_price_minor=5),),
            total_minor=5,
            card_token="tok_ok",
            ship_to=Address(country="US"),
        ),
    )


@pytest.fixture
def runtime_db(settings: Settings, stack: dict[str, Any]) -> Iterator[psycopg.Connection[Any]]:
    with scratch_database(settings.pg_admin_dsn) as dsn:
        apply_migrations(dsn, ["eventing"])
        with db.connect(dsn) as conn:
            yield conn


def count(conn: psycopg.Connection[Any], query: str, *args: Any) -> int:
    row = conn.execute(query, args or None).fetchone()
    assert row is not None
    return int(row[0])


# -- partitions ---------------------------------------------------------------------------


def test_outbox_partitions_are_made_ahead_and_go_only_once_sent_and_expired(
    runtime_db: psycopg.Connection[Any], settings: Settings
) -> None:
    cfg = dataclasses.replace(settings, outbox_partition_s=1.0, outbox_retention_s=1.0)
    outbox = RUNTIME_PARTITIONS[1]
    maintain(runtime_db, [outbox], cfg)
    parts = list_partitions(runtime_db, "outbox")
    assert parts[-1].upper >= utcnow() + timedelta(seconds=2), "partitions are made ahead"
    assert all(b.lower == a.upper for a, b in itertools.pairwise(parts))

    rows = [OutboxRow("t", None, b"v", [], None, None, None) for _ in range(3)]
    insert_outbox(runtime_db, rows)
    part = runtime_db.execute("SELECT DISTINCT tableoid::regclass::text FROM outbox").fetchall()
    assert len(part) == 1
    name = part[0][0]
    runtime_db.execute(
        "UPDATE outbox SET sent_at = now() WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 2)"
    )

    # Past its retention, the partition stays while it holds a row not yet published ...
    wait_for(
        "the expired partition to be kept for its unsent row",
        lambda: name in maintain(runtime_db, [outbox], cfg).kept,
        timeout=15,
    )
    assert count(runtime_db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 1
    # ... and goes, whole, once that row is sent.
    runtime_db.execute("UPDATE outbox SET sent_at = now()")
    assert name in maintain(runtime_db, [outbox], cfg).dropped
    assert count(runtime_db, "SELECT count(*) FROM outbox") == 0
    assert name not in {p.name for p in list_partitions(runtime_db, "outbox")}


def test_expired_inbox_partitions_are_dropped_and_new_ones_made(
    runtime_db: psycopg.Connection[Any], settings: Settings
) -> None:
    cfg = dataclasses.replace(settings, inbox_partition_s=1.0, inbox_retention_s=2.0)
    inbox = RUNTIME_PARTITIONS[0]
    maintain(runtime_db, [inbox], cfg)
    first = {p.name for p in list_partitions(runtime_db, "inbox")}
    assert len(first) >= 4  # two seconds back, and ahead

    def rolled() -> bool:
        maintain(runtime_db, [inbox], cfg)
        return not first & {p.name for p in list_partitions(runtime_db, "inbox")}

    wait_for("every first partition to be replaced by newer ones", rolled, timeout=30)


# -- the inbox's window -------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.handled: list[uuid.UUID] = []
        self.unguarded: set[uuid.UUID] = set()

    def handle(self, tx: Tx, events: list[Event]) -> None:
        self.handled += [e.event_id for e in events]
        self.unguarded |= tx.unguarded


def test_inbox_knows_a_repeat_inside_its_window_and_vouches_for_nothing_outside(
    runtime_db: psycopg.Connection[Any], settings: Settings
) -> None:
    cfg = dataclasses.replace(settings, inbox_retention_s=5.0, inbox_partition_s=1.0)
    maintain(runtime_db, RUNTIME_PARTITIONS, cfg)
    rec = Recorder()
    processor = Processor("inventory", frozenset({OrderPlaced}), rec.handle, cfg)
    recent, old = order_placed(), aged(order_placed(), 60)

    out = processor.process(runtime_db, [record(recent), record(old)])
    assert out.handled == 2
    assert rec.unguarded == {old.event_id}, "the handler is told which it must check itself"
    out = processor.process(runtime_db, [record(recent), record(old)])
    assert (out.duplicates, out.handled) == (1, 1)
    assert rec.handled == [recent.event_id, old.event_id, old.event_id]
    assert count(runtime_db, "SELECT count(*) FROM inbox") == 1


def test_the_inbox_from_before_partitioning_still_counts_until_it_ages_out(
    runtime_db: psycopg.Connection[Any], settings: Settings
) -> None:
    maintain(runtime_db, RUNTIME_PARTITIONS, settings)
    seen_before = order_placed()
    runtime_db.execute(
        "CREATE TABLE inbox_legacy (event_id uuid PRIMARY KEY,"
        " consumed_at timestamptz NOT NULL DEFAULT now())"
    )
    runtime_db.execute("INSERT INTO inbox_legacy (event_id) VALUES (%s)", (seen_before.event_id,))
    rec = Recorder()
    processor = Processor("inventory", frozenset({OrderPlaced}), rec.handle, settings)
    assert processor.process(runtime_db, [record(seen_before)]).duplicates == 1
    assert rec.handled == []

    from eventing.spec import ServiceSpec

    spec = ServiceSpec("t", "eventing", frozenset(), rec.handle)
    run_maintenance(runtime_db, spec, settings)
    assert count(runtime_db, "SELECT count(*) FROM inbox_legacy") == 1, "still within retention"
    runtime_db.execute("UPDATE inbox_legacy SET consumed_at = now() - interval '2 hours'")
    report = run_maintenance(runtime_db, spec, settings)
    assert report is not None and "inbox_legacy" in report.dropped
    assert count(runtime_db, "SELECT count(to_regclass('inbox_legacy'))") == 0


# -- the archive --------------------------------------------------------------------------


@pytest.fixture
def order_db(settings: Settings, stack: dict[str, Any]) -> Iterator[tuple[str, Settings]]:
    from order_svc.service import SPEC

    with scratch_database(settings.pg_admin_dsn) as dsn:
        cfg = dataclasses.replace(settings, db_dsns={**settings.db_dsns, "order": dsn})
        prepare_database(dsn, SPEC, cfg)
        yield dsn, cfg


def _order(conn: psycopg.Connection[Any], status: str, idle_s: float) -> uuid.UUID:
    order_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO orders (order_id, status, origin, customer_id, idempotency_key, seen,"
        " updated_at, terminal_at) VALUES (%s, %s, 'api', 'c', %s, '{OrderPlaced}',"
        " now() - make_interval(secs => %s), now() - make_interval(secs => %s))",
        # An ended order ended when it was last changed; a running one has no end (NULL).
        (order_id, status, f"k-{order_id}", idle_s, idle_s if status in TERMINAL else None),
    )
    return order_id


def test_ended_orders_move_to_the_archive_and_an_event_brings_them_back(
    order_db: tuple[str, Settings],
) -> None:
    from order_svc.handlers import CONSUMES, handle
    from order_svc.service import SPEC
    from shared_events.inventory import InventoryReleased, InventoryReleasedPayload

    dsn, cfg = order_db
    (orders,) = SPEC.archives
    with db.connect(dsn) as conn:
        done = _order(conn, "COMPLETED", idle_s=600)
        recent = _order(conn, "CANCELLED", idle_s=0)
        running = _order(conn, "PENDING", idle_s=600)
        parked = _order(conn, "CANCELLED", idle_s=600)
        conn.execute(
            "INSERT INTO parked (event_id, order_id, state, source_topic, source_partition,"
            " source_offset) VALUES (%s, %s, 'dead', 't', 0, 0)",
            (uuid.uuid4(), parked),
        )
        with conn.transaction():
            assert move_settled(conn, orders, after_s=300) == 1

        def where(order_id: uuid.UUID) -> str:
            row = conn.execute(
                "SELECT CASE WHEN archived_at IS NULL THEN 'active' ELSE 'archive' END"
                " FROM orders_all WHERE order_id = %s",
                (order_id,),
            ).fetchone()
            return row[0] if row else "gone"

        assert [where(o) for o in (done, recent, running, parked)] == [
            "archive",
            "active",
            "active",
            "active",  # its dead letter may be redriven: its record stays at hand
        ]
        # The idempotency key of an archived order still finds it.
        found, _ = placement_lookup(conn, keys=[f"k-{done}"], skus=[])
        assert [r["order_id"] for r in found.values()] == [done]

        # An event about an archived order: back to the active table before the handler.
        processor = Processor("order", CONSUMES, handle, cfg, archives=SPEC.archives)
        late = InventoryReleased.create(
            order_id=done,
            producer="inventory",
            payload=InventoryReleasedPayload(
                reservation_id=uuid.uuid4(),
                items=(StockLine(sku="A", qty=1),),
                reason="fulfillment_failed",
            ),
        )
        assert processor.process(conn, [record(late)]).handled == 1
        assert where(done) == "active"
        status = conn.execute("SELECT status FROM orders WHERE order_id = %s", (done,)).fetchone()
        assert status == ("COMPLETED",), "an ended order keeps its status"
        assert restore(conn, SPEC.archives, [done]) == 0, "nothing is left in the archive"


def test_dropping_archived_reservations_keeps_what_they_committed(
    settings: Settings, stack: dict[str, Any]
) -> None:
    from inventory_svc.service import SPEC

    cfg = dataclasses.replace(
        settings, archive_after_s=0.5, archive_partition_s=1.0, archive_retention_s=1.0
    )
    with scratch_database(settings.pg_admin_dsn) as dsn:
        prepare_database(dsn, SPEC, cfg)
        with db.connect(dsn) as conn:
            for status, qty in (("committed", 3), ("committed", 2), ("released", 7)):
                conn.execute(
                    "INSERT INTO reservations (reservation_id, order_id, status, items,"
                    " expires_at, updated_at) VALUES (%s, %s, %s, %s, now(), now() - interval"
                    " '1 minute')",
                    (uuid.uuid4(), uuid.uuid4(), status, f'[{{"sku": "S", "qty": {qty}}}]'),
                )
            with conn.transaction():
                assert move_settled(conn, SPEC.archives[0], cfg.archive_after_s) == 3

            def rolled_up() -> bool:
                run_maintenance(conn, SPEC, cfg)
                return count(conn, "SELECT count(*) FROM reservations_archive") == 0

            wait_for("the archive partition to be dropped", rolled_up, timeout=30)
            assert conn.execute("SELECT sku, qty FROM committed_dropped").fetchall() == [("S", 5)]


# -- no second charge, however late the message ---------------------------------------------


@pytest.fixture
def payment_db(settings: Settings, stack: dict[str, Any]) -> Iterator[tuple[str, Settings]]:
    from payment_svc.service import SPEC

    with scratch_database(settings.pg_admin_dsn) as dsn:
        cfg = dataclasses.replace(
            settings,
            db_dsns={**settings.db_dsns, "payment": dsn},
            inbox_retention_s=2.0,
            inbox_partition_s=1.0,
            archive_after_s=0.2,
        )
        prepare_database(dsn, SPEC, cfg)
        yield dsn, cfg


def _reserved(order_id: uuid.UUID) -> InventoryReserved:
    return InventoryReserved.create(
        order_id=order_id,
        producer="inventory",
        payload=InventoryReservedPayload(
            reservation_id=uuid.uuid4(),
            items=(StockLine(sku="A", qty=1),),
            expires_at=utcnow() + timedelta(minutes=10),
            amount_minor=500,
            currency="USD",
            card_token="tok_ok",
            customer_id="c",
            ship_to=Address(country="US"),
        ),
    )


def _charges(conn: psycopg.Connection[Any], order_id: uuid.UUID) -> int:
    return count(
        conn,
        "SELECT count(*) FROM gateway_ledger WHERE order_id = %s AND kind = 'charge'",
        order_id,
    )


def test_a_redrive_after_the_dedupe_window_and_the_archive_does_not_charge_twice(
    payment_db: tuple[str, Settings],
) -> None:
    from payment_svc.handlers import CONSUMES, handle
    from payment_svc.service import SPEC

    dsn, cfg = payment_db
    processor = Processor("payment", CONSUMES, handle, cfg, archives=SPEC.archives)
    order_id = uuid.uuid4()
    # Older than the inbox's window from the start: only payment's own record can tell.
    reserved = aged(_reserved(order_id), 30)
    with db.connect(dsn) as conn:
        assert processor.process(conn, [record(reserved)]).handled == 1
        assert _charges(conn, order_id) == 1
        shipped = ShipmentScheduled.create(
            order_id=order_id,
            producer="fulfillment",
            payload=ShipmentScheduledPayload(
                shipment_id=uuid.uuid4(),
                carrier="UPS",
                country="US",
                items=(StockLine(sku="A", qty=1),),
                estimated_delivery=utcnow().date(),
            ),
        )
        processor.process(conn, [record(shipped)])
        wait_for(
            "the settled payment to be archived",
            lambda: move_settled(conn, SPEC.archives[0], cfg.archive_after_s) == 1,
            timeout=10,
        )

        # The same InventoryReserved, dead-lettered somewhere along the way, is redriven.
        Parking("payment").park(
            conn,
            record(reserved),
            event_id=reserved.event_id,
            order_id=order_id,
            event_type=reserved.event_type,
            state="dead",
            blocks=True,
            error_kind="transient",
            error="gateway unavailable",
            delay_s=0,
            now=utcnow(),
        )
        RUNTIME_Q.execute(conn, "dlq_redrive", {"seq": None, "all": True})
        assert Retrier(processor).run_once(conn) == 1
        assert _charges(conn, order_id) == 1, "charged once, ever"
        status = conn.execute(
            "SELECT status FROM payments WHERE order_id = %s", (order_id,)
        ).fetchone()
        assert status == ("settled",), "brought back from the archive, unchanged"
        assert count(conn, "SELECT count(*) FROM parked") == 0


def test_a_message_older_than_everything_kept_is_dead_lettered_not_applied(
    payment_db: tuple[str, Settings],
) -> None:
    from payment_svc.handlers import CONSUMES, handle
    from payment_svc.service import SPEC

    dsn, cfg = payment_db
    cfg = dataclasses.replace(cfg, archive_after_s=1.0, archive_retention_s=5.0)
    processor = Processor("payment", CONSUMES, handle, cfg, archives=SPEC.archives)
    order_id = uuid.uuid4()
    ancient = aged(_reserved(order_id), 60)
    with db.connect(dsn) as conn:
        assert processor.process(conn, [record(ancient)]).dead == 1
        row = conn.execute("SELECT state, error_kind, last_error FROM parked").fetchone()
        assert row is not None and row[:2] == ("dead", "stale")
        assert "SAGA_ARCHIVE_RETENTION_S" in row[2]
        # A redrive checks again, and the answer is the same.
        RUNTIME_Q.execute(conn, "dlq_redrive", {"seq": None, "all": True})
        Retrier(processor).run_once(conn)
        assert conn.execute("SELECT state, error_kind FROM parked").fetchone() == (
            "dead",
            "stale",
        )
        assert _charges(conn, order_id) == 0
