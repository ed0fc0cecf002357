"""The shared runtime against a real database: batches, duplicates, parking, dead letters."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from eventing.errors import PermanentError, TransientError
from eventing.inbox import Inbox
from eventing.kafka.clients import Record
from eventing.processing import Processor
from eventing.retrier import Retrier
from eventing.retry import RetryPolicy
from eventing.settings import Settings
from eventing.tx import Tx
from shared_events.codec import encode
from shared_events.common import Address, LineItem
from shared_events.inventory import InventoryRejected, InventoryRejectedPayload
from shared_events.order import OrderPlaced, OrderPlacedPayload
from tests.integration.runtime_db import fresh_database

pytestmark = pytest.mark.integration


class Script:
    """What the fake handler does: fail for some orders, count what it did."""

    def __init__(self) -> None:
        self.failures: dict[uuid.UUID, BaseException] = {}

    def handle(self, tx: Tx, events: list[OrderPlaced]) -> None:
        for event in events:
            if (exc := self.failures.get(event.order_id)) is not None:
                raise exc
            tx.conn.execute(
                "INSERT INTO effects (event_id, order_id) VALUES (%s, %s)",
                (event.event_id, event.order_id),
            )
            tx.emit(
                InventoryRejected,
                InventoryRejectedPayload(reason="unknown_sku", skus=("X",)),
                cause=event,
            )


@pytest.fixture
def db(settings: Settings, stack: dict[str, Any]) -> Iterator[psycopg.Connection[Any]]:
    with fresh_database(settings.pg_admin_dsn) as dsn, psycopg.connect(dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def processor(settings: Settings, script: Script) -> Processor:
    quick = RetryPolicy(max_attempts=3, max_age_s=60, base_delay_s=0.0, max_delay_s=0.0)
    return Processor(
        "inventory", frozenset({OrderPlaced}), script.handle, settings, {OrderPlaced: quick}
    )


_offsets = iter(range(10**9))


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


def record(
    event: OrderPlaced | None = None, *, value: bytes | None = None, key: bytes | None = None
) -> Record:
    if event is not None:
        rec = encode(event)
        key, value = rec.key, rec.value
        headers = rec.headers
    else:
        headers = []
    return Record("orders.events", 0, next(_offsets), key, value, headers, 0)


def effects(db: psycopg.Connection[Any]) -> list[uuid.UUID]:
    return [r[0] for r in db.execute("SELECT event_id FROM effects ORDER BY seq").fetchall()]


def parked(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT event_id, state, attempts, error_kind FROM parked ORDER BY seq"
    ).fetchall()


def outbox_topics(db: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in db.execute("SELECT topic FROM outbox ORDER BY id").fetchall()]


def test_batch_commits_every_effect_with_its_outbox_row(db: Any, processor: Processor) -> None:
    events = [order_placed() for _ in range(50)]
    out = processor.process(db, [record(e) for e in events])
    assert out.handled == 50
    assert effects(db) == [e.event_id for e in events]
    assert outbox_topics(db) == ["inventory.events"] * 50
    inbox = db.execute("SELECT count(*) FROM inbox").fetchone()
    assert inbox == (50,)


def test_duplicates_in_a_batch_and_across_batches_are_no_ops(db: Any, processor: Processor) -> None:
    e1, e2 = order_placed(), order_placed()
    out = processor.process(db, [record(e1), record(e1), record(e2)])
    assert (out.handled, out.duplicates) == (2, 1)
    out = processor.process(db, [record(e2), record(e1)])
    assert (out.handled, out.duplicates) == (0, 2)
    assert effects(db) == [e1.event_id, e2.event_id]
    assert len(outbox_topics(db)) == 2


def test_transient_failure_parks_one_order_and_the_rest_of_the_batch_commits(
    db: Any, processor: Processor, script: Script
) -> None:
    stuck_order = uuid.uuid4()
    script.failures[stuck_order] = TransientError("gateway unavailable")
    first, later = order_placed(stuck_order), order_placed(stuck_order)
    others = [order_placed() for _ in range(5)]
    out = processor.process(
        db, [record(others[0]), record(first), *map(record, others[1:]), record(later)]
    )
    assert (out.handled, out.parked) == (5, 2)
    assert effects(db) == [e.event_id for e in others]
    # the failed one waits for a retry; the later one of the same order queues behind it
    assert parked(db) == [
        (first.event_id, "retrying", 1, "transient"),
        (later.event_id, "retrying", 0, None),
    ]
    # a message of that order in a later batch queues behind too: per-order ordering
    third = order_placed(stuck_order)
    assert processor.process(db, [record(third)]).parked == 1

    retrier = Retrier(processor)
    retrier.run_once(db)  # still failing: attempt 2
    assert parked(db)[0][1:3] == ("retrying", 2)
    del script.failures[stuck_order]
    while retrier.run_once(db):
        pass
    assert effects(db)[-3:] == [first.event_id, later.event_id, third.event_id]
    assert parked(db) == []


def test_retries_exhausted_dead_letters_with_the_original_message(
    db: Any, processor: Processor, script: Script
) -> None:
    order_id = uuid.uuid4()
    script.failures[order_id] = TransientError("still down")
    event = order_placed(order_id)
    rec = record(event)
    processor.process(db, [rec])
    retrier = Retrier(processor)
    while retrier.run_once(db):
        pass
    assert parked(db) == [(event.event_id, "dead", 3, "transient")]
    topic, value, headers = db.execute("SELECT topic, value, headers FROM outbox").fetchone()
    assert topic == "inventory.dlq"
    assert bytes(value) == rec.value  # untouched
    assert "dlq.error" in {h[0] for h in headers}

    # redrive: a fresh budget, processed once the cause is fixed; twice is harmless
    del script.failures[order_id]
    redriven = db.execute(
        "UPDATE parked SET state = 'retrying', attempts = 0, "
        "next_attempt_at = now() WHERE state = 'dead' RETURNING seq"
    ).fetchall()
    assert len(redriven) == 1
    retrier.run_once(db)
    assert effects(db) == [event.event_id]
    processor.process(db, [rec])  # the original delivered again: a duplicate
    assert effects(db) == [event.event_id]


def test_permanent_error_dead_letters_at_once(
    db: Any, processor: Processor, script: Script
) -> None:
    order_id = uuid.uuid4()
    script.failures[order_id] = PermanentError("cannot ever work")
    event = order_placed(order_id)
    out = processor.process(db, [record(event), record(order_placed())])
    assert (out.dead, out.handled) == (1, 1)
    assert parked(db) == [(event.event_id, "dead", 1, "permanent")]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"\xff not json", "not_json"),
        (b'{"event_type": "OrderShipped", "schema_version": 1}', "unknown_type"),
        (b'{"event_type": "OrderPlaced", "schema_version": 7}', "unknown_type"),
        (b'{"event_type": "OrderPlaced", "schema_version": 1, "payload": {}}', "invalid"),
    ],
)
def test_poison_is_dead_lettered_and_does_not_block_its_order(
    db: Any, processor: Processor, value: bytes, kind: str
) -> None:
    order_id = uuid.uuid4()
    poison = record(value=value, key=str(order_id).encode())
    good = order_placed(order_id)
    out = processor.process(db, [poison, record(good)])
    assert (out.dead, out.handled) == (1, 1)
    rows = db.execute("SELECT order_id, state, blocks, error_kind, value FROM parked").fetchall()
    assert [(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows] == [
        (order_id, "dead", False, kind, value)
    ]
    # the same poison delivered again is not parked twice
    assert processor.process(db, [dataclasses.replace(poison)]).dead == 1
    assert len(parked(db)) == 1


@pytest.mark.parametrize("legacy", [False, True], ids=["inbox", "with-legacy-inbox"])
def test_events_of_blocked_orders_are_not_claimed(
    db: Any, processor: Processor, script: Script, settings: Settings, legacy: bool
) -> None:
    if legacy:  # the inbox from before partitioning: the claim takes its other path
        db.execute(
            "CREATE TABLE inbox_legacy (event_id uuid PRIMARY KEY,"
            " consumed_at timestamptz NOT NULL DEFAULT now())"
        )
    stuck = uuid.uuid4()
    script.failures[stuck] = TransientError("gateway unavailable")
    assert processor.process(db, [record(order_placed(stuck))]).parked == 1
    later, other = order_placed(stuck), order_placed()
    inbox = Inbox(settings)
    with db.transaction():
        claim = inbox.claim_unblocked(db, [later, other])
    assert claim.blocked == {stuck}
    assert claim.fresh == {other.event_id}
    # Left unclaimed, the blocked order's event is still new when its turn comes.
    with db.transaction():
        assert inbox.claim(db, [later, other]).fresh == {later.event_id}
