"""`saga bench`: load through the real checkout API and services, measured against the raw
limits of the same machine in the same run.

Orders of one run share a customer id (`bench-<run>`), so progress and latency come from
the order service's own record (created_at -> terminal_at, both database clock).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg

from eventing.settings import Settings
from order_svc import repository as order_repo
from saga_cli.bench_client import Connection

__all__ = ["LoadResult", "Progress", "drive", "measure"]

# Events of a completed saga, each produced once; every service reads whole topics, so the
# four are delivered ten times (order x4, inventory x3, payment x2, fulfillment x1).
EVENTS_PER_SAGA = 4
DELIVERIES_PER_SAGA = 10
# State changes per saga across the four databases (placement, reserve, charge, ship,
# commit stock, and the order service's record of each step).
DB_CHANGES_PER_SAGA = 10


@dataclass
class LoadResult:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    # The accepted order ids; only counted (`n_accepted`) when `keep_ids` is off, so that a
    # soak of hours does not grow the client it measures.
    accepted: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    send_s: float = 0.0
    keep_ids: bool = True
    n_accepted: int = 0
    done: bool = False


Progress = Callable[[LoadResult], None]


async def _worker(
    conn: Connection, queue: asyncio.Queue[tuple[float, bytes, str] | None], result: LoadResult
) -> None:
    while (item := await queue.get()) is not None:
        due, body, key = item
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            reply = await conn.request("POST", "/orders", body, {"Idempotency-Key": key})
        except (OSError, asyncio.IncompleteReadError) as exc:
            result.errors[type(exc).__name__] += 1
            continue
        result.statuses[reply.status] += 1
        if reply.status == 202:
            result.n_accepted += 1
            if result.keep_ids:
                result.accepted.append(reply.json()["order_id"])
        elif reply.status != 429:
            result.errors[f"HTTP {reply.status}: {reply.body[:200]!r}"] += 1


async def _drive(
    host: str,
    port: int,
    bodies: Iterable[bytes],
    rate: float,
    concurrency: int,
    progress: Progress,
    result: LoadResult,
) -> LoadResult:
    queue: asyncio.Queue[tuple[float, bytes, str] | None] = asyncio.Queue(concurrency * 4)
    conns = [Connection(host, port) for _ in range(concurrency)]
    workers = [asyncio.create_task(_worker(c, queue, result)) for c in conns]
    start = time.monotonic()
    next_report = start + 1
    for i, body in enumerate(bodies):
        due = start + i / rate if rate > 0 else 0.0
        await queue.put((due, body, f"bench-{uuid.uuid4()}"))
        result.sent = i + 1
        if time.monotonic() >= next_report:
            progress(result)
            next_report += 1
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    result.send_s = time.monotonic() - start
    for c in conns:
        c.close()
    result.done = True
    return result


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """libuv's loop where there is one (as the API's uvicorn uses): the load client shares
    the cores with what it measures, and asyncio's own loop costs more per request."""
    try:
        import uvloop
    except ImportError:  # not on Windows
        return None
    return uvloop.new_event_loop


def drive(
    url: str,
    bodies: Iterable[bytes],
    rate: float,
    concurrency: int,
    progress: Progress,
    result: LoadResult | None = None,
) -> LoadResult:
    """POST every body to /orders, at `rate` per second (0: as fast as the API answers).

    `bodies` is read as it is sent (a generator keeps a long run's memory flat); `result`,
    when given, is filled in as the run goes, for a caller that watches from another thread.
    """
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    result = result if result is not None else LoadResult()
    load = _drive(host, int(port or 80), bodies, rate, concurrency, progress, result)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(load)


def body(customer_id: str, sku: str, card: str = "tok_ok", country: str = "US") -> bytes:
    return json.dumps(
        {
            "customer_id": customer_id,
            "items": [{"sku": sku, "qty": 1}],
            "card_token": card,
            "ship_to": {"country": country},
        }
    ).encode()


def progress_of(cfg: Settings, customer_id: str) -> tuple[int, int]:
    with psycopg.connect(cfg.dsn("order"), autocommit=True) as conn:
        row = order_repo.bench_progress(conn, customer_id)
    assert row is not None
    return int(row["placed"]), int(row["terminal"])


def measure(cfg: Settings, customer_id: str, accepted: int) -> dict[str, Any]:
    """Throughput and latency of one run, from the order service's saga record."""
    with psycopg.connect(cfg.dsn("order"), autocommit=True) as conn:
        row = order_repo.bench_latency_ms(conn, customer_id)
        assert row is not None and row["pcts"] is not None, "no order of this run finished"
        first, last_placed, last_done = (
            row["first_placed"],
            row["last_placed"],
            row["last_terminal"],
        )
        # Sustained: completions while load was being offered, after a warm-up of 10 %.
        span = last_placed - first
        window_start = first + span / 10
        sustained_s = (last_placed - window_start).total_seconds()
        if sustained_s >= 5:
            done = order_repo.bench_completions_between(
                conn, customer_id, window_start, last_placed
            )
            sustained = done / sustained_s
        else:  # too short a run for a steady window: the whole run
            sustained = accepted / max((last_done - first).total_seconds(), 1e-3)
        outcomes = order_repo.bench_outcomes(conn, customer_id)
    p50, p95, p99 = row["pcts"]
    return {
        "sagas_per_s": round(sustained, 1),
        "overall_sagas_per_s": round(accepted / max((last_done - first).total_seconds(), 1e-3), 1),
        "latency_ms": {
            "p50": round(p50, 1),
            "p95": round(p95, 1),
            "p99": round(p99, 1),
            "max": round(row["max_ms"], 1),
        },
        "drain_s": round((last_done - last_placed) / timedelta(seconds=1), 2),
        "outcomes": {
            f"{o['status']}({o['cancel_reason']})" if o["cancel_reason"] else o["status"]: o["n"]
            for o in outcomes
        },
    }


def ratios(sagas_per_s: float, limits: dict[str, Any]) -> dict[str, float]:
    """Our rate as a share of what the raw parts manage alone on this machine."""
    out: dict[str, float] = {}
    if limits.get("kafka_produce_msgs_per_s"):
        out["kafka_produce"] = sagas_per_s * EVENTS_PER_SAGA / limits["kafka_produce_msgs_per_s"]
    if limits.get("kafka_consume_msgs_per_s"):
        out["kafka_consume"] = (
            sagas_per_s * DELIVERIES_PER_SAGA / limits["kafka_consume_msgs_per_s"]
        )
    if limits.get("pg_commits_per_s"):
        out["pg_one_event_per_commit"] = (
            sagas_per_s * DB_CHANGES_PER_SAGA / limits["pg_commits_per_s"]
        )
    if limits.get("pg_batched_events_per_s"):
        out["pg_batched"] = sagas_per_s * DB_CHANGES_PER_SAGA / limits["pg_batched_events_per_s"]
    return {k: round(v, 3) for k, v in out.items()}


def wait_all_terminal(
    cfg: Settings,
    customer_id: str,
    accepted: int,
    timeout_s: float,
    report: Callable[[int, int], None],
) -> int:
    deadline = time.monotonic() + timeout_s
    terminal = 0
    while time.monotonic() < deadline:
        _, terminal = progress_of(cfg, customer_id)
        report(accepted, terminal)
        if terminal >= accepted:
            break
        time.sleep(1.0)
    return terminal


__all__ += ["body", "progress_of", "ratios", "wait_all_terminal"]
