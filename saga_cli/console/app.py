"""The console's ASGI application: pages, the JSON API, and what guards them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from eventing.settings import Settings
from saga_cli.console.api import UNAVAILABLE, Console, api_routes
from saga_cli.console.databases import Databases
from saga_cli.console.pages import page_routes
from saga_cli.console.security import SecurityMiddleware, allowed_hosts, new_csrf_token

__all__ = ["create_app"]


def create_app(
    cfg: Settings, bind_host: str = "127.0.0.1", extra_hosts: tuple[str, ...] = ()
) -> Starlette:
    """The console for the databases of `cfg`, answering to the names of `bind_host`."""
    console = Console(cfg=cfg, dbs=Databases(cfg), csrf_token=new_csrf_token())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            console.dbs.close()

    app = Starlette(
        routes=[*api_routes, *page_routes],
        middleware=[Middleware(SecurityMiddleware, hosts=allowed_hosts(bind_host, extra_hosts))],
        exception_handlers=UNAVAILABLE,
        lifespan=lifespan,
    )
    app.state.console = console
    return app
