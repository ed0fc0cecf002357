"""The checkout HTTP API: POST /orders, GET /orders/{id}, GET /healthz (Starlette).

Placement is the same `place_order` that `saga order place` runs, batched by `Placer` in
its own threads; the event loop does the cheap parts: reading the body, admission control,
then validating the body once (the validated model is what gets placed).

Status codes: 202 accepted (new or replayed order), 422 invalid input, unknown SKU, or an
Idempotency-Key reused with a different body (as the IETF Idempotency-Key draft says), 429
with Retry-After when admission control refuses (before the body is validated: a bad body
refused then gets its 422 on the retry), 413 for a body over 64 KiB, 503 with
Retry-After when the database is unreachable (nothing was placed: retrying is safe).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import anyio
import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from eventing import tracing
from eventing.logging import get_logger
from eventing.settings import Settings
from order_svc import repository
from order_svc.api.admission import Admission, Refusal
from order_svc.api.limits import MAX_BODY_BYTES, MAX_KEY_LEN
from order_svc.api.openapi import openapi_endpoint
from order_svc.api.placer import Placer
from order_svc.metrics import (
    ADMISSION_IN_FLIGHT,
    ADMISSION_LIMIT,
    ADMISSION_REFUSED,
    HTTP_REQUESTS,
    HTTP_SECONDS,
)
from order_svc.placement import CheckoutRequest, IdempotencyConflict, UnknownSku
from order_svc.retention import beyond_retention, missing_order
from shared_events.envelope import validate_json

__all__ = ["POOL_WAIT_S", "CheckoutApi", "CheckoutApp", "create_app"]

log = get_logger(__name__)

# How long a request may wait for a pooled connection before the API answers 503: a
# database that slow is better reported than queued behind.
POOL_WAIT_S = 5.0


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def _invalid(errors: Sequence[tuple[str, str]]) -> JSONResponse:
    return _error(
        422,
        "invalid_request",
        "; ".join(f"{field}: {msg}" for field, msg in errors),
        errors=[{"field": field, "message": msg} for field, msg in errors],
    )


def _validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    locs = [e["loc"] for e in errors]
    found = []
    for e in errors:
        loc = e["loc"]
        # pydantic adds "too short" to a list whose items failed: noise beside the real cause
        if e["type"] == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs):
            continue
        # A model-level check (bad JSON, a SKU listed twice) has no location: it is the body's.
        found.append((".".join(map(str, loc)) or "body", e["msg"].removeprefix("Value error, ")))
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, uuid.UUID) else value


@functools.lru_cache(maxsize=256)
def _refused(refusal: Refusal) -> JSONResponse:
    """The 429 for `refusal`, rendered once: under overload most answers are refusals, and
    they come in few kinds. Shared, so never changed after it is made."""
    resp = _error(429, refusal.reason, refusal.message)
    resp.headers["Retry-After"] = str(refusal.retry_after_s)
    return resp


# The metric children the checkout counts with, looked up once (labels() takes a lock and
# builds a tuple per call, and these are counted on every request).
_refusals = functools.cache(ADMISSION_REFUSED.labels)
_checkouts = functools.cache(functools.partial(HTTP_REQUESTS.labels, "POST", "/orders"))


def _unavailable(message: str) -> JSONResponse:
    resp = _error(503, "unavailable", message)
    resp.headers["Retry-After"] = "1"
    return resp


class CheckoutApi:
    def __init__(
        self,
        pool: ConnectionPool[Any],
        placer: Placer,
        admission: Admission,
        max_waiting: int,
        settings: Settings,
        readers: int = 2,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.placer = placer
        self.admission = admission
        # Placements queued or running: past this the API sheds load with a 429 at once
        # instead of queueing requests (and their memory) behind a slow database.
        self.max_waiting = max_waiting
        self._waiting = 0
        self._readers = anyio.CapacityLimiter(readers)
        self.refused: Counter[str] = Counter()

    async def _read_body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def place(self, request: Request) -> Response:
        body = await self._read_body(request)
        return await self.checkout(
            body, request.headers.get("idempotency-key"), request.headers.get("traceparent")
        )

    async def checkout(self, body: bytes | None, key: str | None, caller: str | None) -> Response:
        """One POST /orders: the body (None when over the limit), its Idempotency-Key and
        traceparent headers."""
        if body is None:
            return _error(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        if key is not None and not (0 < len(key) <= MAX_KEY_LEN and key.isprintable()):
            return _invalid(
                [("Idempotency-Key", f"must be 1 to {MAX_KEY_LEN} printable characters")]
            )
        # Admission before validation: under overload refusing is the hot path, and a body
        # that will not be placed need not be validated (issue 10's profile: validating
        # refused bodies was a tenth of the API process). A bad body sent then gets its
        # 422 when it is retried.
        if self._waiting >= self.max_waiting:
            return self._refuse(Refusal("busy", 1, "the checkout service is busy; retry later"))
        refusal = self.admission.check()
        if refusal is not None:
            return self._refuse(refusal)
        created = False
        self._waiting += 1
        try:
            try:
                req = validate_json(CheckoutRequest, body)
            except ValidationError as exc:
                return _invalid(_validation_errors(exc))
            # The saga's trace starts here, or continues the caller's (W3C traceparent).
            trace = tracing.span("POST /orders", caller if tracing.trace_id(caller) else None)
            with trace as traceparent:
                placed = await self.placer.place(req, key, traceparent)
            created = placed.created
        except UnknownSku as exc:
            return _invalid([("items", str(exc))])
        except IdempotencyConflict as exc:
            log.info("idempotency key reused with a different body", idempotency_key=key)
            return _error(422, "idempotency_conflict", str(exc))
        except PoolTimeout:
            log.warning("no database connection free in time", waited_s=POOL_WAIT_S)
            return _unavailable("the order database is too slow to answer; retry later")
        except psycopg.OperationalError as exc:
            log.warning("order database unavailable", error=str(exc).strip())
            return _unavailable("the order database is unavailable; retry later")
        except Exception:
            log.exception("checkout failed", idempotency_key=key)
            return _error(500, "internal", "the checkout failed and nothing was placed")
        finally:
            self._waiting -= 1
            self.admission.done(created)
        # DEBUG: one line per checkout costs more than it tells at thousands a second.
        if created:
            log.debug("order placed", order_id=str(placed.order_id), idempotency_key=key)
        else:
            log.debug(
                "order replayed for its idempotency key",
                order_id=str(placed.order_id),
                idempotency_key=key,
            )
        headers = {"Location": f"/orders/{placed.order_id}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(
            {"order_id": str(placed.order_id), "status": placed.status},
            status_code=202,
            headers=headers,
        )

    def _refuse(self, refusal: Refusal) -> JSONResponse:
        self.refused[refusal.reason] += 1
        _refusals(refusal.reason).inc()
        return _refused(refusal)

    def _get(self, order_id: uuid.UUID) -> dict[str, Any] | None:
        with self.pool.connection(timeout=POOL_WAIT_S) as conn:
            return repository.get_order(conn, order_id)

    async def show(self, request: Request) -> Response:
        raw = request.path_params["order_id"]
        try:
            order_id = uuid.UUID(raw)
        except ValueError:
            return _invalid([("order_id", f"{raw!r} is not a UUID")])
        try:
            row = await anyio.to_thread.run_sync(self._get, order_id, limiter=self._readers)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            log.warning("order database unavailable", error=str(exc).strip(), order_id=raw)
            return _unavailable("the order database is unavailable; retry later")
        if row is None:
            if beyond_retention(order_id, self.settings):
                return _error(410, "gone", missing_order(order_id, self.settings))
            return _error(404, "not_found", missing_order(order_id, self.settings))
        return JSONResponse({k: _jsonable(v) for k, v in row.items()})

    async def health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(self, _request: Request) -> Response:
        cap = self.admission.cap
        ADMISSION_LIMIT.set(cap.cap if cap is not None else 0)
        ADMISSION_IN_FLIGHT.set(cap.estimate if cap is not None else 0)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


Endpoint = Callable[[Request], Awaitable[Response]]


def _measured(method: str, route: str, endpoint: Endpoint) -> Endpoint:
    """The endpoint, counted and timed (once per request, outside the endpoint's logic)."""
    seconds = HTTP_SECONDS.labels(method, route)

    async def measured(request: Request) -> Response:
        started = time.perf_counter()
        response = await endpoint(request)
        seconds.observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        return response

    return measured


_GONE = object()


async def _body(receive: Receive, declared: bytes | None) -> bytes | object | None:
    """The request body; None when it is over the limit, _GONE when the client left."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _GONE
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class CheckoutApp:
    """The API's ASGI app: POST /orders is served straight from ASGI, every other route by
    the Starlette app. The checkout is the hot path, and Starlette's routing, middleware and
    Request objects were a third of the API process's CPU (issue 10's profile)."""

    def __init__(self, api: CheckoutApi, app: Starlette) -> None:
        self.api = api
        self.app = app
        self.state = app.state
        self._seconds = HTTP_SECONDS.labels("POST", "/orders")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/orders" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        key = caller = None
        declared: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                key = value.decode("latin-1")
            elif name == b"traceparent":
                caller = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        body = await _body(receive, declared)
        if body is _GONE:
            return
        assert body is None or isinstance(body, bytes)
        response = await self.api.checkout(body, key, caller)
        await response(scope, receive, send)
        self._seconds.observe(time.perf_counter() - started)
        _checkouts(str(response.status_code)).inc()


def create_app(
    pool: ConnectionPool[Any],
    placer: Placer,
    admission: Admission,
    max_waiting: int,
    settings: Settings,
) -> CheckoutApp:
    api = CheckoutApi(pool, placer, admission, max_waiting, settings)
    app = Starlette(
        routes=[
            Route("/orders", _measured("POST", "/orders", api.place), methods=["POST"]),
            Route(
                "/orders/{order_id}",
                _measured("GET", "/orders/{order_id}", api.show),
                methods=["GET"],
            ),
            Route("/healthz", api.health, methods=["GET"]),
            Route("/metrics", api.metrics, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        ]
    )
    app.state.api = api
    return CheckoutApp(api, app)
