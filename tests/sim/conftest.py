"""The in-process harness for the saga's tests: the four services on scratch databases of
the stack's PostgreSQL (no Kafka, no processes), made once per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from eventing.settings import Settings
from eventing.testing import SagaHarness, checkout_harness


@pytest.fixture(scope="session")
def checkout(settings: Settings) -> Iterator[SagaHarness]:
    try:
        psycopg.connect(settings.pg_admin_dsn, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"the harness needs PostgreSQL at SAGA_PG_ADMIN_DSN: {str(exc).strip()}\n"
            "Start the local stack with `saga stack up`.",
            pytrace=False,
        )
    with checkout_harness(settings) as harness:
        yield harness


@pytest.fixture
def h(checkout: SagaHarness) -> SagaHarness:
    """The harness with empty databases, an empty bus, the clock at now, the gateway up."""
    checkout.reset(partitions=1)
    return checkout
