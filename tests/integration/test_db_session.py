"""A service's sessions are bounded: a stuck lock or an abandoned transaction ends in an
error the runtime handles, instead of a consumer that waits forever without a word."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from eventing import db
from eventing.settings import Settings

pytestmark = pytest.mark.integration


def test_service_sessions_carry_lock_and_idle_transaction_timeouts(
    settings: Settings, stack: dict[str, Any]
) -> None:
    with db.connect(settings.dsn("order")) as conn:
        assert conn.autocommit
        assert conn.execute("SHOW lock_timeout").fetchone() == ("30s",)
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("1min",)


def test_a_lock_wait_ends_in_an_operational_error(
    settings: Settings, stack: dict[str, Any]
) -> None:
    """What the consumer loop relies on: the timeout surfaces as an OperationalError."""
    dsn = settings.dsn("order")
    with db.connect(dsn) as holder, db.connect(dsn) as waiter:
        key = 424242
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            waiter.execute("SET lock_timeout = '200ms'")  # the same setting, shortened
            with pytest.raises(psycopg.OperationalError, match="lock timeout"):
                waiter.execute("SELECT pg_advisory_lock(%s)", (key,))
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (key,))
