"""The API's placements, batched: what arrived meanwhile is placed in one transaction.

Each checkout is the same `place_order` as `saga order place`; inside the batch's
transaction its own `conn.transaction()` becomes a savepoint, so one invalid request
(unknown SKU, reused key) is rolled back alone. A batch costs one commit (one WAL flush)
and one thread hand-off for all its orders instead of one each. There is no waiting for a
batch to fill: a placer takes whatever is queued, so under light load a batch is one order
and latency does not change.

A result is delivered only after the commit: a 202 always means the order is durable.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg_pool import ConnectionPool

from eventing.logging import get_logger
from order_svc.placement import CheckoutRequest, PlacedOrder, place_order, place_orders

__all__ = ["Outcome", "Placer"]

log = get_logger(__name__)

Outcome = PlacedOrder | Exception


@dataclass(frozen=True)
class _Job:
    req: CheckoutRequest
    key: str | None
    deliver: Callable[[Outcome], None]
    traceparent: str | None = None


class Placer:
    def __init__(
        self, pool: ConnectionPool[Any], threads: int, max_batch: int, pool_wait_s: float
    ) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self.pool_wait_s = pool_wait_s
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"placer-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Place what is queued, then end the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout)

    def place(
        self, req: CheckoutRequest, key: str | None, traceparent: str | None = None
    ) -> asyncio.Future[PlacedOrder]:
        """Queue a checkout from the event loop; the future resolves after the commit."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[PlacedOrder] = loop.create_future()

        def settle(outcome: Outcome) -> None:
            if fut.done():  # the request was cancelled meanwhile; the order stands
                return
            if isinstance(outcome, Exception):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)

        def deliver(outcome: Outcome) -> None:
            try:
                loop.call_soon_threadsafe(settle, outcome)
            except RuntimeError:  # the loop is closed: the server gave up on the request
                log.warning("checkout finished after its request was abandoned")

        self._jobs.put(_Job(req, key, deliver, traceparent))
        return fut

    def _next_batch(self) -> tuple[list[_Job], bool]:
        first = self._jobs.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            if batch:
                for job, outcome in zip(batch, self._place(batch), strict=True):
                    job.deliver(outcome)

    def _place(self, batch: list[_Job]) -> list[Outcome]:
        if len(batch) == 1:
            # Alone, place_order's own transaction is enough: no savepoint round trips.
            job = batch[0]
            try:
                with self.pool.connection(timeout=self.pool_wait_s) as conn:
                    return [place_order(conn, job.req, job.key, job.traceparent)]
            except Exception as exc:
                return [exc]
        try:
            with self.pool.connection(timeout=self.pool_wait_s) as conn:
                return list(
                    place_orders(
                        conn,
                        [(job.req, job.key) for job in batch],
                        [job.traceparent for job in batch],
                    )
                )
        except Exception as exc:
            # E.g. a concurrent request took one of the keys: place them one by one.
            log.info(
                "checkout batch replayed one at a time", orders=len(batch), error=str(exc).strip()
            )
        try:
            with self.pool.connection(timeout=self.pool_wait_s) as conn, conn.transaction():
                outcomes: list[Outcome] = []
                for job in batch:
                    try:
                        outcomes.append(place_order(conn, job.req, job.key, job.traceparent))
                    except Exception as exc:
                        if conn.broken:
                            raise
                        outcomes.append(exc)
            return outcomes
        except Exception as exc:
            # Nothing of the batch was committed: every request gets the error (503 or 500)
            # and may be retried as is.
            if len(batch) > 1:
                log.warning("checkout batch failed", orders=len(batch), error=str(exc).strip())
            return [exc] * len(batch)
