"""The JSON API under /api/ that the page reads: the CLI's read models, over HTTP.

Every endpoint is a plain function: Starlette runs it in its thread pool, where blocking
psycopg calls belong. Answers are the CLI's own `--json` shapes wherever one exists
(`saga trace --json`, `saga dlq list/show --json`), so a script can use either.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import click
import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from eventing.settings import SERVICES, Settings
from order_svc.retention import missing_order
from saga_cli.console.databases import Databases, Unreachable
from saga_cli.console.live import live_stats, window_s
from saga_cli.console.search import orders_of_customer
from saga_cli.console.security import CSRF_HEADER, csrf_refusal
from saga_cli.dlq import DlqId, DlqIdError, Redrive, list_entries, redrive_one, show_entry
from saga_cli.durations import parse_duration
from saga_cli.trace import build_trace, stuck_orders

__all__ = ["Console", "api_routes", "error"]

_MAX_CUSTOMER_LEN = 100  # as CheckoutRequest allows


@dataclass
class Console:
    """What the endpoints share: settings, connections, the CSRF token of this process."""

    cfg: Settings
    dbs: Databases
    csrf_token: str


def error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message}, status_code=status)


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def session(request: Request) -> JSONResponse:
    # Readable by same-origin scripts only (no CORS headers): that is what makes the token
    # a proof that a POST comes from the console's own page.
    c = _console(request)
    return JSONResponse(
        {"csrf_token": c.csrf_token, "csrf_header": CSRF_HEADER, "window_s": window_s(c.cfg)}
    )


def find_orders(request: Request) -> JSONResponse:
    customer = request.query_params.get("customer", "").strip()
    if not customer or len(customer) > _MAX_CUSTOMER_LEN:
        return error(400, "bad_request", f"give ?customer= (1 to {_MAX_CUSTOMER_LEN} chars)")
    with _console(request).dbs.connection("order") as conn:
        found = orders_of_customer(conn, customer)
    return JSONResponse({"customer_id": customer, "orders": found})


def order_timeline(request: Request) -> JSONResponse:
    c = _console(request)
    try:
        order_id = uuid.UUID(request.path_params["order_id"])
    except ValueError:
        return error(400, "bad_request", "an order id is a UUID")
    with c.dbs.connection("order") as conn, c.dbs.runtime(conn) as runtime:
        t = build_trace(conn, c.cfg, order_id, runtime)
    if t is None:
        return error(404, "not_found", missing_order(order_id, c.cfg))
    return JSONResponse(t.as_dict())


def stuck(request: Request) -> JSONResponse:
    c = _console(request)
    text = request.query_params.get("older_than", "30s")
    try:
        older_than_s = parse_duration(text)
    except ValueError as exc:
        return error(400, "bad_request", str(exc))
    with c.dbs.connection("order") as conn:
        rows = stuck_orders(conn, c.cfg, older_than_s)
    return JSONResponse({"older_than_s": older_than_s, "stuck": [r.as_dict() for r in rows]})


def dlq_list(request: Request) -> JSONResponse:
    include_retrying = request.query_params.get("all") in ("1", "true")
    service = request.query_params.get("service")
    if service is not None and service not in SERVICES:
        return error(400, "bad_request", f"?service= is one of {', '.join(SERVICES)}")
    entries, errors = list_entries(
        _console(request).cfg,
        (service,) if service else SERVICES,
        include_retrying=include_retrying,
    )
    return JSONResponse({"entries": entries, "errors": errors})


def _dlq_id(request: Request) -> DlqId | JSONResponse:
    try:
        return DlqId.parse(request.path_params["entry_id"])
    except DlqIdError as exc:
        return error(400, "bad_request", str(exc))


def dlq_show(request: Request) -> JSONResponse:
    dlq_id = _dlq_id(request)
    if isinstance(dlq_id, JSONResponse):
        return dlq_id
    try:
        return JSONResponse(show_entry(_console(request).cfg, dlq_id))
    except LookupError as exc:
        return error(404, "not_found", str(exc))


def _said(r: Redrive) -> str:
    """The one line the page shows, as `saga dlq redrive` would say it."""
    if r.outcome == "redriven":
        what = f"{r.event_type} of order {r.order_id}" if r.event_type else "a poison message"
        return f"{r.id}: redriven ({what}); {r.note}"
    if r.outcome == "not_dead":
        return f"{r.id}: nothing to redrive, it is {r.note}"
    return f"{r.id}: nothing left to redrive; {r.note}"


def dlq_redrive(request: Request) -> JSONResponse:
    c = _console(request)
    refusal = csrf_refusal(request, c.csrf_token)
    if refusal is not None:
        return error(403, "forbidden", refusal)
    dlq_id = _dlq_id(request)
    if isinstance(dlq_id, JSONResponse):
        return dlq_id
    try:
        done = redrive_one(c.cfg, dlq_id)
    except LookupError as exc:
        return error(404, "not_found", str(exc))
    return JSONResponse({**done.as_dict(), "message": _said(done)})


def live(request: Request) -> JSONResponse:
    c = _console(request)
    with c.dbs.connection("order") as conn, c.dbs.runtime(conn) as runtime:
        return JSONResponse(live_stats(conn, runtime, c.cfg))


def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A database that cannot be reached: 503 with what to do (never a stack trace)."""
    message = exc.message if isinstance(exc, click.ClickException) else str(exc).strip()
    if isinstance(exc, psycopg.OperationalError):
        message = f"a database stopped answering: {message}"
    return error(503, "unavailable", message)


UNAVAILABLE: dict[Any, Any] = {
    Unreachable: unavailable,
    click.ClickException: unavailable,  # saga_cli.db.connect's "cannot reach ..." (dlq)
    psycopg.OperationalError: unavailable,
}

api_routes = [
    Route("/api/session", session),
    Route("/api/orders", find_orders),
    Route("/api/orders/{order_id}", order_timeline),
    Route("/api/stuck", stuck),
    Route("/api/dlq", dlq_list),
    Route("/api/dlq/{entry_id}", dlq_show),
    Route("/api/dlq/{entry_id}/redrive", dlq_redrive, methods=["POST"]),
    Route("/api/live", live),
]
