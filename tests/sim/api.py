"""The checkout API in process: the real Starlette app (order_svc.api.app.create_app), its Placer
and a pool on the harness's scratch order database, reached through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
from psycopg_pool import ConnectionPool
from starlette.applications import Starlette

from eventing import db
from eventing.testing import SagaHarness
from order_svc.api.admission import Admission
from order_svc.api.app import POOL_WAIT_S, create_app
from order_svc.api.placer import Placer

__all__ = ["KNOWN", "Client", "serving"]

KNOWN = ("HTTP-A", "HTTP-B")  # SKUs in the price list and in stock


class Client:
    """Requests straight into the ASGI app (httpx's ASGI transport), one event loop each."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
                return await c.request(method, path, **kw)

        return asyncio.run(send())

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    async def many(self, n: int, method: str, path: str, **kw: Any) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            return list(await asyncio.gather(*(c.request(method, path, **kw) for _ in range(n))))

    def at_once(self, n: int, method: str, path: str, **kw: Any) -> list[httpx.Response]:
        """`n` requests sent together on one event loop: the Placer batches them."""
        return asyncio.run(self.many(n, method, path, **kw))


def serving(h: SagaHarness) -> Iterator[Client]:
    """The API over `h`'s order database, for as long as the generator is not closed."""
    h.reset()
    for sku in KNOWN:
        h.set_stock(sku, 10_000, price_minor=250)
    pool: ConnectionPool[Any] = ConnectionPool(
        h.settings.dsn("order"), min_size=2, max_size=4, kwargs=db.SESSION, open=True
    )
    placer = Placer(pool, 2, 16, POOL_WAIT_S)
    placer.start()
    app = create_app(pool, placer, Admission(None, None), 64, h.settings)
    try:
        yield Client(app)
    finally:
        placer.stop()
        pool.close()
