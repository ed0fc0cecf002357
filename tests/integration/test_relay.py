"""The relay on a real database: committed rows go out in id order, it reads the outbox once
per wake-up (a commit's notification), not once more to find it empty, and the rows
of several rounds share one mark, or are marked at once when a delivery failed; a mark
leaves its row on the page it was written to."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast

import psycopg
import pytest

from eventing import db
from eventing.kafka.clients import EventProducer
from eventing.outbox import OutboxRow, insert_outbox
from eventing.relay import Relay
from eventing.settings import Settings
from tests.e2e.harness import wait_for
from tests.integration.runtime_db import fresh_database

pytestmark = pytest.mark.integration

_Rec = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]


class _Producer:
    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.changed = threading.Condition()

    def produce_all(self, records: Sequence[_Rec]) -> list[str | None]:
        with self.changed:
            self.values += [value for _topic, _key, value, _headers in records]
            self.changed.notify_all()
        return [None] * len(records)

    def wait_for(self, n: int, timeout: float = 20.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.values) >= n, timeout):
                raise AssertionError(f"relay published {len(self.values)} rows, expected {n}")


@pytest.fixture
def dsn(settings: Settings, stack: dict[str, Any]) -> Iterator[str]:
    with fresh_database(settings.pg_admin_dsn) as name:
        yield name


def _commit(dsn: str, *values: bytes) -> None:
    with db.connect(dsn) as conn, conn.transaction():
        insert_outbox(
            conn,
            [OutboxRow("t", b"k", v, [], uuid.uuid4(), uuid.uuid4(), "Test") for v in values],
        )


def _unsent(dsn: str) -> int:
    with db.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return int(row[0]) if row else -1


def test_relay_publishes_in_order_and_reads_once_per_commit(dsn: str) -> None:
    producer = _Producer()
    # A long idle poll: every read below must come from a commit's notification.
    relay = Relay(dsn, cast(EventProducer, producer), batch=100, idle_poll_s=120.0)
    reads = [0]
    publish_once = relay.publish_once

    def counted(conn: psycopg.Connection[Any], *, defer_mark: bool = False) -> int:
        reads[0] += 1
        return publish_once(conn, defer_mark=defer_mark)

    relay.publish_once = counted  # type: ignore[method-assign]
    _commit(dsn, b"a", b"b")  # before the relay starts: found by its first read
    stop = threading.Event()
    connected = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop, connected.set), daemon=True)
    thread.start()
    try:
        assert connected.wait(20)
        producer.wait_for(2)
        _commit(dsn, b"c")
        producer.wait_for(3)
        _commit(dsn, b"d", b"e")
        producer.wait_for(5)
        assert producer.values == [b"a", b"b", b"c", b"d", b"e"]
        # One read to start and one per commit; a wake-up that finds nothing would add one.
        assert reads[0] == 3
        wait_for("every published row marked sent", lambda: _unsent(dsn) == 0, timeout=20)
    finally:
        stop.set()
        _commit(dsn, b"wake")  # the relay waits for a notification: give it one to see stop
        thread.join(20)
    assert not thread.is_alive()


def test_rounds_share_one_mark_and_leave_out_what_they_published(dsn: str) -> None:
    producer = _Producer()
    relay = Relay(dsn, cast(EventProducer, producer), batch=100)
    with db.connect(dsn) as conn:
        _commit(dsn, b"a", b"b")
        assert relay.publish_once(conn, defer_mark=True) == 2
        assert _unsent(dsn) == 2  # published; the mark waits for the next rounds
        _commit(dsn, b"c")
        # The next read leaves a and b out: only c goes out.
        assert relay.publish_once(conn, defer_mark=True) == 1
        relay.mark_pending(conn)
        assert _unsent(dsn) == 0  # one mark for both rounds
        assert relay.publish_once(conn, defer_mark=True) == 0
    assert producer.values == [b"a", b"b", b"c"]


def test_a_failed_delivery_marks_what_went_out_at_once(dsn: str) -> None:
    class _Refusing(_Producer):
        def produce_all(self, records: Sequence[_Rec]) -> list[str | None]:
            super().produce_all(records[:1])
            return [None] + ["refused"] * (len(records) - 1)

    relay = Relay(dsn, cast(EventProducer, _Refusing()), batch=100)
    _commit(dsn, b"a", b"b", b"c")
    with db.connect(dsn) as conn:
        assert relay.publish_once(conn, defer_mark=True) == -1
    assert _unsent(dsn) == 2  # a is marked; b and c go again, in order, next round


def _pages(dsn: str) -> dict[int, int]:
    with db.connect(dsn) as conn:
        rows = conn.execute("SELECT id, (ctid::text::point)[0]::int FROM outbox").fetchall()
    return {int(i): int(page) for i, page in rows}


def test_a_mark_keeps_each_row_on_its_page(dsn: str) -> None:
    # Rows the size of a typical event fill pages as far as the fillfactor lets them; the
    # sent mark's new version then fits beside the old one, and its WAL record holds only
    # the changed bytes. On a full page it would move, and log the whole row again.
    relay = Relay(dsn, cast(EventProducer, _Producer()), batch=500)
    _commit(dsn, *[bytes([65 + i % 26]) * 600 for i in range(60)])
    before = _pages(dsn)
    assert len(set(before.values())) > 1  # several pages, each written as full as allowed
    with db.connect(dsn) as conn:
        assert relay.publish_once(conn) == 60
    assert _unsent(dsn) == 0
    assert _pages(dsn) == before
