"""The in-process floor: what a saga costs in the services' own Python and SQL, and nothing else.

The four services' real handlers and SQL run in one thread (`eventing.testing.SagaHarness`) on
scratch databases of the stack's PostgreSQL, with `synchronous_commit` on as the services run
it; only Kafka is replaced by the in-memory bus. Checkouts are placed `batch` at a time by the
order service's own placement, then each service's relay publishes and its consumer takes its
batches until the round is settled. No broker, no HTTP, no other process competes for the
cores, and every batch is as large as `batch` makes it: a running system can come close to
these figures at its peak, not below them.

CPU is read per service: the thread's CPU time around that service's placement, relay rounds
and batches (Python, psycopg and libpq on the client side), and the CPU of the PostgreSQL
backends connected to that service's database (its statements, the gateway's included for
payment). What the cluster's own processes do meanwhile (WAL writer, checkpointer, autovacuum)
is `postgres_background`.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from eventing.settings import Settings
from eventing.testing import SagaHarness, checkout_harness
from order_svc.placement import CheckoutRequest, PlacedOrder, place_orders
from saga_cli.background import child_pids
from saga_cli.cpu import process_cpu_s

__all__ = ["FloorResult", "run_floor"]

_SKU = "FLOOR-1"
_WARMUP_ROUNDS = 2


@dataclass
class FloorResult:
    sagas: int
    batch: int
    wall_s: float
    # All checkouts placed (the warm-up's too) and how many of them completed.
    placed: int
    completed: int
    # service -> CPU seconds of this thread around its work
    python_s: dict[str, float] = field(default_factory=dict)
    # service -> CPU seconds of the PostgreSQL backends on its database; None: not measured
    postgres_s: dict[str, float] | None = None
    postgres_background_s: float | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        per = 1000.0 / self.sagas
        python = {k: round(v * per, 3) for k, v in self.python_s.items()}
        out: dict[str, Any] = {
            "sagas": self.sagas,
            "batch": self.batch,
            "placed": self.placed,
            "completed": self.completed,
            "sagas_per_s": round(self.sagas / self.wall_s, 1) if self.wall_s else None,
            "python_ms_per_saga": {**python, "total": round(sum(self.python_s.values()) * per, 3)},
            "postgres_ms_per_saga": None,
        }
        if self.postgres_s is not None and self.postgres_background_s is not None:
            pg = {k: round(v * per, 3) for k, v in self.postgres_s.items()}
            total = sum(self.postgres_s.values()) + self.postgres_background_s
            out["postgres_ms_per_saga"] = {
                **pg,
                "background": round(self.postgres_background_s * per, 3),
                "total": round(total * per, 3),
            }
            out["total_ms_per_saga"] = round((sum(self.python_s.values()) + total) * per, 3)
        if self.note:
            out["note"] = self.note
        return out


class _Clocks:
    """Thread CPU time, summed per service."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def of(self, service: str) -> Iterator[None]:
        started = time.thread_time()
        try:
            yield
        finally:
            self.spent[service] += time.thread_time() - started


class _PostgresCpu:
    """CPU of the cluster's processes, by database for client backends (Linux /proc)."""

    def __init__(self, postmaster: int, admin_dsn: str, databases: dict[str, str]) -> None:
        self.postmaster = postmaster
        self.admin_dsn = admin_dsn
        self.service_of = {db: service for service, db in databases.items()}

    def sample(self) -> tuple[dict[str, float], float]:
        """(service -> CPU s of its backends, CPU s of everything else in the cluster)."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid, datname FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).fetchall()
        owner = {pid: self.service_of.get(db) for pid, db in rows}
        by_service: dict[str, float] = dict.fromkeys(self.service_of.values(), 0.0)
        rest = 0.0
        for pid in child_pids(self.postmaster):
            service = owner.get(pid)
            if service is None:
                rest += process_cpu_s(pid)
            else:
                by_service[service] += process_cpu_s(pid)
        return by_service, rest


def _settle(h: SagaHarness, limit: int, clocks: _Clocks) -> None:
    """Relays and consumers in turn until a whole pass moves nothing."""
    moved = True
    while moved:
        moved = False
        for name in h.names:
            with clocks.of(name):
                while h.relay(name) > 0:
                    moved = True
                while h.deliver(name, limit=limit) is not None:
                    moved = True


def _round(h: SagaHarness, req: CheckoutRequest, batch: int, limit: int, clocks: _Clocks) -> None:
    with clocks.of("order"):
        placed = place_orders(h.conn("order"), [(req, None)] * batch)
    failed = [r for r in placed if not isinstance(r, PlacedOrder)]
    if failed:
        raise RuntimeError(f"placement refused checkouts of the floor run: {failed[0]!r}")
    _settle(h, limit, clocks)


def run_floor(
    cfg: Settings,
    sagas: int,
    batch: int,
    postmaster: int | None,
    progress: Callable[[str], None] = lambda _: None,
) -> FloorResult:
    """Place and settle `sagas` checkouts in rounds of `batch` (after two rounds of warm-up)."""
    rounds = -(-sagas // batch)
    with checkout_harness(cfg, durable=True, prefix=f"saga_floor_{uuid.uuid4().hex[:10]}") as h:
        h.set_stock(_SKU, (rounds + _WARMUP_ROUNDS) * batch)
        req = CheckoutRequest.from_dict(
            {
                "customer_id": "floor",
                "items": [{"sku": _SKU, "qty": 1}],
                "card_token": "tok_ok",
                "ship_to": {"country": "US"},
            }
        )
        # A consumer takes what has arrived, up to the services' own batch size.
        limit = max(batch, cfg.batch_size)
        for _ in range(_WARMUP_ROUNDS):
            _round(h, req, batch, limit, _Clocks())
        databases = {name: str(h.conn(name).info.dbname) for name in h.names}
        pg = None if postmaster is None else _PostgresCpu(postmaster, cfg.pg_admin_dsn, databases)
        pg_before = pg.sample() if pg else None
        clocks = _Clocks()
        started = time.perf_counter()
        for n in range(rounds):
            _round(h, req, batch, limit, clocks)
            if (n + 1) % max(1, rounds // 10) == 0:
                progress(f"  {(n + 1) * batch} of {rounds * batch} sagas settled")
        wall = time.perf_counter() - started
        pg_after = pg.sample() if pg else None
        row = (
            h.conn("order")
            .execute("SELECT count(*) FROM orders_all WHERE status = 'COMPLETED'")
            .fetchone()
        )
    result = FloorResult(
        sagas=rounds * batch,
        batch=batch,
        wall_s=wall,
        placed=(rounds + _WARMUP_ROUNDS) * batch,
        completed=int(row[0]) if row else 0,
        python_s=dict(clocks.spent),
    )
    if pg_before is None or pg_after is None:
        result.note = (
            "PostgreSQL's CPU is not measured: its server is not this machine's local stack"
            " (`saga stack up`), so its processes cannot be read here"
        )
    else:
        result.postgres_s = {s: pg_after[0][s] - pg_before[0].get(s, 0.0) for s in pg_after[0]}
        result.postgres_background_s = pg_after[1] - pg_before[1]
    return result
