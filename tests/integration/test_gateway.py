"""The simulated payment gateway's one call: once per key however many callers race, in
whatever order their batches name the keys; a fault injected into it holds."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from eventing import db
from eventing.maintenance import prepare_database
from eventing.settings import Settings
from payment_svc.gateway import Gateway, GatewayResult, GatewayUnavailable, set_fault
from saga_cli.services import spec_for
from tests.integration.service_db import scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture
def dsn(settings: Settings, stack: dict[str, Any]) -> Iterator[str]:
    with scratch_database(settings.pg_admin_dsn) as dsn:
        cfg = dataclasses.replace(settings, db_dsns={**settings.db_dsns, "payment": dsn})
        prepare_database(dsn, spec_for("payment"), cfg)
        yield dsn


def test_racing_callers_charge_each_order_once(dsn: str) -> None:
    orders = [uuid.uuid4() for _ in range(40)]
    answers: list[dict[uuid.UUID, GatewayResult]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def caller(seed: int) -> None:
        gateway = Gateway(dsn)
        mine = list(orders)
        random.Random(seed).shuffle(mine)  # each batch names the keys in its own order
        try:
            start.wait(timeout=10)
            for chunk in (mine[:25], mine[15:]):
                answers.append(gateway.charge_many([(o, "tok_ok", 700, "EUR") for o in chunk]))
        except BaseException as exc:  # a deadlock would end up here
            errors.append(exc)
        finally:
            gateway.close()

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(answers) == 12
    refs: dict[uuid.UUID, set[str]] = {}
    for answer in answers:
        for order_id, result in answer.items():
            assert result.approved
            refs.setdefault(order_id, set()).add(result.reference)
    assert set(refs) == set(orders)
    assert all(len(r) == 1 for r in refs.values()), "one order answered with two charges"
    with db.connect(dsn) as conn:
        per_key = conn.execute(
            "SELECT count(*), count(DISTINCT idempotency_key) FROM gateway_ledger"
        ).fetchone()
    assert per_key == (40, 40)


def test_a_declined_card_is_declined_once_and_a_refund_is_its_own_key(dsn: str) -> None:
    gateway = Gateway(dsn)
    order = uuid.uuid4()
    try:
        first = gateway.charge_many([(order, "tok_declined", 300, "USD")])[order]
        again = gateway.charge_many([(order, "tok_ok", 300, "USD")])[order]
        refund = gateway.refund_many([(order, 300, "USD")])[order]
    finally:
        gateway.close()
    assert not first.approved
    assert again == first  # the key's first answer stands
    assert refund.approved and refund.reference != first.reference


def test_down_refuses_and_records_nothing(dsn: str) -> None:
    with db.connect(dsn) as conn:
        set_fault(conn, "down", for_s=60)
        gateway = Gateway(dsn)
        try:
            with pytest.raises(GatewayUnavailable, match=r"unavailable \(fault injected until"):
                gateway.charge_many([(uuid.uuid4(), "tok_ok", 100, "USD")])
        finally:
            gateway.close()
        assert conn.execute("SELECT count(*) FROM gateway_ledger").fetchone() == (0,)


def test_slow_delays_the_call_and_still_answers(dsn: str) -> None:
    order = uuid.uuid4()
    with db.connect(dsn) as conn:
        set_fault(conn, "slow", for_s=60, latency_ms=300)
    gateway = Gateway(dsn)
    try:
        started = time.monotonic()
        result = gateway.charge_many([(order, "tok_ok", 100, "USD")])[order]
        took = time.monotonic() - started
    finally:
        gateway.close()
    assert result.approved
    assert took >= 0.3  # the injected latency is served (a lower bound, not a speed target)
