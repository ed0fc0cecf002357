"""The page: one static HTML shell for every view, and its scripts and styles.

Nothing is rendered on the server: the shell holds no data, and the scripts fill it from
the JSON API with DOM calls, so there is no template into which a value could be spliced.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["page_routes"]

_SHELL = resources.files("saga_cli.console").joinpath("static/index.html").read_bytes()


def shell(request: Request) -> HTMLResponse:
    return HTMLResponse(_SHELL)


def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def no_icon(request: Request) -> Response:
    # Browsers ask for one on their own; "nothing" beats a 404 in the page's console.
    return Response(status_code=204)


page_routes: list[BaseRoute] = [
    Route("/", shell),
    Route("/orders/{order_id}", shell),
    Route("/stuck", shell),
    Route("/dlq", shell),
    Route("/dlq/{entry_id}", shell),
    Route("/live", shell),
    Route("/healthz", healthz),
    Route("/favicon.ico", no_icon),
    Mount("/static", StaticFiles(packages=[("saga_cli.console", "static")]), name="static"),
]
