"""The live view's numbers: throughput, latency and backlog, read from the databases.

Throughput and latency come from the saga record (sagas that ended in the last minute),
backlog from the order service (sagas in flight) and from each service's own runtime tables
(messages parked for a retry, dead letters, events its relay has not published yet): the
same queries the services' metrics sampler runs, so the page and Prometheus agree.
"""

from __future__ import annotations

from typing import Any

import psycopg

from eventing.queries import Queries
from eventing.settings import SERVICES, Settings
from order_svc.repository import Q as ORDER_Q
from saga_cli.console.queries import Q

__all__ = ["WINDOW_S", "live_stats", "window_s"]

RUNTIME_Q = Queries.load("eventing")
WINDOW_S = 60


def window_s(cfg: Settings) -> int:
    """The throughput window: a minute, or less if orders are archived sooner (the window
    query reads only orders not archived yet)."""
    return max(1, min(WINDOW_S, int(cfg.archive_after_s)))


def _backlog(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    try:
        retrying, dead = RUNTIME_Q.rows(conn, "metrics_parked")[0]
        unsent, oldest_s = RUNTIME_Q.rows(conn, "metrics_outbox")[0]
    except psycopg.errors.UndefinedTable:
        # The service never ran against this database: nothing parked, nothing to publish.
        retrying = dead = unsent = 0
        oldest_s = 0.0
    return {
        "retrying": retrying,
        "dead": dead,
        "outbox_unsent": unsent,
        "outbox_oldest_s": round(float(oldest_s), 1),
    }


def live_stats(
    conn: psycopg.Connection[Any],
    runtime: dict[str, psycopg.Connection[Any]],
    cfg: Settings,
) -> dict[str, Any]:
    """One sample of the live view; `runtime` holds the service databases that answered."""
    window = window_s(cfg)
    row = Q.one(conn, "live_window", {"window_s": window})
    assert row is not None  # an aggregate always has its one row
    p50, p99 = row["pcts_ms"] or (None, None)
    services: dict[str, Any] = {}
    unreachable: list[str] = []
    for service in SERVICES:
        if service not in runtime:
            unreachable.append(service)
            continue
        try:
            services[service] = _backlog(runtime[service])
        except psycopg.OperationalError:
            unreachable.append(service)
    return {
        "window_s": window,
        "ended": row["ended"],
        "completed": row["completed"],
        "cancelled": row["ended"] - row["completed"],
        "sagas_per_s": round(row["ended"] / window, 2),
        # Oldest second first, the way a chart reads left to right.
        "per_second": list(reversed(row["per_second"])),
        "latency_ms": {
            "p50": round(p50, 1) if p50 is not None else None,
            "p99": round(p99, 1) if p99 is not None else None,
        },
        "in_flight": ORDER_Q.scalar(conn, "count_in_flight"),
        "retrying": sum(s["retrying"] for s in services.values()),
        "dead_letters": sum(s["dead"] for s in services.values()),
        "outbox_unsent": sum(s["outbox_unsent"] for s in services.values()),
        "services": services,
        "unreachable": unreachable,
    }
