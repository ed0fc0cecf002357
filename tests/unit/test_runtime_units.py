"""Pure parts of the shared runtime: backoff, budgets, named queries, migrations."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from eventing.errors import PermanentError, TransientError, classify
from eventing.migrations import load_migrations
from eventing.queries import Queries
from eventing.retry import COMPENSATION, FORWARD, RetryPolicy, backoff_s


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    rng = random.Random(1)
    for attempt in range(1, 12):
        cap = min(10.0, 0.1 * 2 ** (attempt - 1))
        delays = [backoff_s(attempt, 0.1, 10.0, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # spread over the whole range, not fixed
        assert min(delays) < cap * 0.2


def test_budget_by_attempts_or_age() -> None:
    p = RetryPolicy(max_attempts=3, max_age_s=60, base_delay_s=0.1, max_delay_s=1)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert not p.exhausted(2, t0, t0 + timedelta(seconds=1))
    assert p.exhausted(3, t0, t0)
    assert p.exhausted(1, t0, t0 + timedelta(seconds=60))


def test_compensations_get_a_longer_budget() -> None:
    assert COMPENSATION.max_attempts > FORWARD.max_attempts
    assert COMPENSATION.max_age_s > FORWARD.max_age_s


def test_errors_are_classified() -> None:
    assert classify(TransientError("x")) == "transient"
    assert classify(PermanentError("x")) == "permanent"
    assert classify(KeyError("bug")) == "permanent"


def test_named_queries_parse_and_refuse_duplicates() -> None:
    q = Queries.parse("-- name: a\nSELECT 1\n\n-- name: b\nSELECT %(x)s\n")
    assert q.names() == ["a", "b"] and q["b"] == "SELECT %(x)s"
    with pytest.raises(ValueError, match="twice"):
        Queries.parse("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n")
    with pytest.raises(KeyError, match="no query named"):
        q["c"]


@pytest.mark.parametrize(
    "package", ["eventing", "order_svc", "inventory_svc", "payment_svc", "fulfillment_svc"]
)
def test_every_package_ships_numbered_migrations_and_queries(package: str) -> None:
    migrations = load_migrations(package)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert Queries.load(package).names()


def test_outbox_headers_round_trip_text_binary_and_legacy_base64() -> None:
    import base64
    import json

    from eventing.outbox import decode_headers, encode_headers

    headers = [("event_type", b"OrderPlaced"), ("raw", b"\xff\x00\x01"), ("empty", b"")]
    assert decode_headers(encode_headers(headers)) == headers
    assert json.loads(encode_headers(headers))[0] == ["event_type", "t:OrderPlaced"]
    legacy = json.dumps([["k", base64.b64encode(b"v:1").decode()]])
    assert decode_headers(legacy) == [("k", b"v:1")]


class _FakeConsumer:
    def __init__(self, unsettled_s: float) -> None:
        self.unsettled = unsettled_s
        self.abandoned = False

    def unsettled_s(self) -> float:
        return self.unsettled

    def assigned(self) -> int:
        return 0

    def abandon(self) -> None:
        self.abandoned = True


def test_a_consumer_that_cannot_settle_into_its_group_is_replaced() -> None:
    from eventing import runtime
    from eventing.settings import load_settings
    from saga_cli.services import spec_for

    made = [_FakeConsumer(unsettled_s=5.0), _FakeConsumer(unsettled_s=0.0)]
    queue = iter(made)
    loop = runtime._ConsumerLoop(
        spec_for("fulfillment"),
        load_settings(),
        processor=None,  # type: ignore[arg-type]
        new_consumer=lambda: next(queue),  # type: ignore[arg-type,return-value]
        retrier=None,  # type: ignore[arg-type]
        relay=None,  # type: ignore[arg-type]
    )
    loop._replace_if_wedged()
    assert loop.consumer is made[0], "a group still settling is left alone"
    made[0].unsettled = runtime._WEDGED_AFTER_S + 1
    loop._replace_if_wedged()
    assert loop.consumer is made[1] and made[0].abandoned
    assert loop.health.partitions() == 0  # readiness asks the new one
