"""How a service connects to its database: one place for the session settings.

A lock that is never released or a transaction left open by a stuck thread would otherwise
stall a consumer silently. With these bounds the wait ends in an error that the caller
already handles (the batch is retried, the warning names the cause).
"""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["GENERIC_PLANS", "SESSION", "connect"]

SESSION: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 5,
    "options": "-c lock_timeout=30s -c idle_in_transaction_session_timeout=60s",
}

# For a connection whose statements read partitioned tables by a column that is not the
# partition key (the checkout API's idempotency-key lookup spans every archive partition):
# PostgreSQL would otherwise plan each execution afresh, at several times its run time.
GENERIC_PLANS: dict[str, Any] = {
    **SESSION,
    "options": SESSION["options"] + " -c plan_cache_mode=force_generic_plan",
}


def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, **SESSION)
