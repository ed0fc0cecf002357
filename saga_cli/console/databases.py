"""The console's connections: one small pool per service database, opened on first use.

A page polls every second, and one order's timeline reads all four databases (the saga
record, and what each service holds parked for the order): pooled connections keep that
from being five new PostgreSQL sessions a second per open page. A database that cannot be
reached is skipped where the read models allow it (an unreachable service is left out of
"what it waits for"), and reported as such where they do not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from eventing.settings import SERVICES, Settings

__all__ = ["Databases", "Unreachable"]

# How long a request waits for a connection: a database that slow is better reported than
# waited on by a page that asks again in a second.
_WAIT_S = 3.0


class Unreachable(Exception):
    """A database the request needs did not give a connection in time."""

    def __init__(self, service: str) -> None:
        super().__init__(
            f"the {service} database does not answer: start the local stack with "
            f"`saga stack up`, or set SAGA_{service.upper()}_DB_DSN"
        )
        self.service = service


class Databases:
    def __init__(self, cfg: Settings, max_size: int = 4) -> None:
        self.cfg = cfg
        self._max_size = max_size
        self._pools: dict[str, ConnectionPool[psycopg.Connection[Any]]] = {}
        self._lock = threading.Lock()

    def _pool(self, service: str) -> ConnectionPool[psycopg.Connection[Any]]:
        with self._lock:
            pool = self._pools.get(service)
            if pool is None:
                pool = ConnectionPool(
                    self.cfg.dsn(service),
                    min_size=1,
                    max_size=self._max_size,
                    kwargs={"autocommit": True, "connect_timeout": 5},
                    name=f"console-{service}",
                    open=False,
                )
                # Not waiting: a database that is down must not keep the console from
                # starting, or from serving what the other databases hold.
                pool.open(wait=False)
                self._pools[service] = pool
            return pool

    @contextmanager
    def connection(self, service: str) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool(service).connection(timeout=_WAIT_S) as conn:
                yield conn
        except PoolTimeout:
            raise Unreachable(service) from None

    @contextmanager
    def runtime(
        self, order_conn: psycopg.Connection[Any]
    ) -> Iterator[dict[str, psycopg.Connection[Any]]]:
        """A connection to each service database that answers (service -> connection).

        The order database's is `order_conn` itself: the runtime tables live beside the
        saga record, and one request needs no second session there.
        """
        with ExitStack() as stack:
            conns = {"order": order_conn}
            for service in SERVICES:
                if service in conns:
                    continue
                try:
                    conns[service] = stack.enter_context(self.connection(service))
                except Unreachable:
                    continue
            yield conns

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
