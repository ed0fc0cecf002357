"""One checkout API process: uvicorn on a bound socket, its pool, placers and counter.

Run by the order service in a thread (SAGA_HTTP_WORKERS=0) or by each worker process
(`order_svc.api.workers`); `order_svc.api.server` binds the socket and picks which.
Besides uvicorn it runs the placers (`Placer`) and a thread that keeps the in-flight
cap's count fresh from the database.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from typing import Any

import psycopg
import structlog
import uvicorn
from psycopg_pool import ConnectionPool

from eventing import db
from eventing.logging import get_logger
from eventing.reconnect import Reconnect
from eventing.settings import Settings
from eventing.spec import fail
from order_svc.api.adaptive import AdaptiveLimit, Measured
from order_svc.api.admission import Admission, InFlightCap, TokenBucket
from order_svc.api.app import POOL_WAIT_S, CheckoutApi, create_app
from order_svc.api.placer import Placer
from order_svc.repository import Q

__all__ = ["admission_from", "serve"]

log = get_logger(__name__)

# The in-flight count is a query: refresh it often enough that a burst cannot overshoot
# the cap by much, rarely enough that it costs nothing next to the placements.
_COUNT_EVERY_S = 0.15
_REFUSALS_LOG_EVERY_S = 5.0
# The sagas that ended within this are what the adaptive limit reads its p99 from.
_LATENCY_WINDOW_S = 2.0
# Placements queued or running per placer before the API sheds load.
_WAITING_PER_PLACER = 128
_MAX_BATCH = 64
# Connections beyond the placers', for GET /orders/{id}.
_READERS = 2


class _ToStructlog(logging.Handler):
    """uvicorn's own log lines (startup, errors in the ASGI app) as structured logs."""

    def emit(self, record: logging.LogRecord) -> None:
        method = log.error if record.levelno >= logging.ERROR else log.debug
        method("uvicorn", message=record.getMessage(), exc_info=record.exc_info)


def _route_uvicorn_logs() -> None:
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [_ToStructlog()]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def admission_from(settings: Settings, share: int = 1) -> Admission:
    """The limits of SAGA_HTTP_RATE_LIMIT / _RATE_BURST / _MAX_IN_FLIGHT (0 = off).

    With `share` processes serving the port, each takes its share of the rate and burst.
    The in-flight cap is not divided: each process counts every saga in the database, and
    sees the others' admissions at its next refresh.
    """
    if settings.http_rate_limit < 0 or settings.http_rate_burst < 0:
        raise ValueError("SAGA_HTTP_RATE_LIMIT and SAGA_HTTP_RATE_BURST must be >= 0")
    if settings.http_max_in_flight < 0:
        raise ValueError("SAGA_HTTP_MAX_IN_FLIGHT must be >= 0")
    burst = max(1, -(-settings.http_rate_burst // share))
    bucket = (
        TokenBucket(settings.http_rate_limit / share, burst, time.monotonic)
        if settings.http_rate_limit > 0
        else None
    )
    if settings.http_max_in_flight == 0:
        return Admission(bucket, None)
    if settings.http_admission == "fixed":
        return Admission(bucket, InFlightCap(settings.http_max_in_flight))
    limit = AdaptiveLimit(
        settings.http_latency_target_s,
        floor=min(settings.http_min_in_flight, settings.http_max_in_flight),
        ceiling=settings.http_max_in_flight,
        clock=time.monotonic,
    )
    return Admission(bucket, InFlightCap(limit.limit), adaptive=limit)


def _recount(admission: Admission, conn: psycopg.Connection[Any]) -> None:
    cap = admission.cap
    assert cap is not None
    mark = cap.refreshing()
    if admission.adaptive is None:
        cap.refreshed(mark, int(Q.scalar(conn, "count_in_flight")))
        return
    row = Q.one(conn, "admission_stats", {"window_s": _LATENCY_WINDOW_S})
    assert row is not None
    cap.refreshed(mark, int(row["in_flight"]))
    admission.measured(
        Measured(
            p99_s=float(row["p99_s"]) if row["p99_s"] is not None else None,
            completed_per_s=int(row["ended"]) / _LATENCY_WINDOW_S,
            in_flight=int(row["in_flight"]),
        )
    )


def _first_count(admission: Admission, dsn: str) -> None:
    """Count before serving: until then the cap would know only its own admissions."""
    try:
        with db.connect(dsn) as conn:
            _recount(admission, conn)
    except psycopg.Error as exc:
        log.warning("cannot count in-flight sagas yet", error=str(exc).strip())


def _count_in_flight(api: CheckoutApi, dsn: str, stop: threading.Event, settings: Settings) -> None:
    """Keep the in-flight cap's count fresh; log refusals as a summary, not one per request."""
    structlog.contextvars.bind_contextvars(service="order")
    cap = api.admission.cap
    last_summary = time.monotonic()
    conn: psycopg.Connection[Any] | None = None
    # The estimate keeps growing with admissions meanwhile, so the cap still holds.
    db_down = Reconnect(
        "cannot count in-flight sagas; retrying",
        resumed="counting in-flight sagas again",
        stop=stop,
        base_s=0.5,
        cap_s=5.0,
        log=log,
    )
    while not stop.is_set():
        try:
            if cap is not None:
                if conn is None or conn.closed:
                    conn = db.connect(dsn)
                _recount(api.admission, conn)
                db_down.succeeded()
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()
            conn = None
            db_down.failed(exc)
        now = time.monotonic()
        if now - last_summary >= _REFUSALS_LOG_EVERY_S:
            last_summary = now
            if api.refused:
                refused, api.refused = api.refused, Counter()
                log.info(
                    "checkouts refused by admission control",
                    **dict(refused),
                    in_flight_estimate=cap.estimate if cap else None,
                    limit_rate_per_s=settings.http_rate_limit,
                    limit_in_flight=cap.cap if cap else None,
                )
        stop.wait(_COUNT_EVERY_S)
    if conn is not None:
        conn.close()


def serve(
    settings: Settings, stop: threading.Event, sock: socket.socket, admission: Admission
) -> None:
    """Serve on the listening `sock` until `stop`; stop is set when serving ends anyway."""
    _route_uvicorn_logs()
    address = f"http://{settings.http_host}:{settings.http_port}"
    pool: ConnectionPool[Any] = ConnectionPool(
        settings.dsn("order"),
        min_size=settings.http_db_pool_size + _READERS,
        max_size=settings.http_db_pool_size + _READERS,
        kwargs=db.GENERIC_PLANS,
        open=False,
        name="checkout-api",
    )
    pool.open(wait=False)
    placer = Placer(pool, settings.http_db_pool_size, _MAX_BATCH, POOL_WAIT_S)
    app = create_app(
        pool, placer, admission, _WAITING_PER_PLACER * settings.http_db_pool_size, settings
    )
    api: CheckoutApi = app.state.api
    counter = threading.Thread(
        target=_count_in_flight,
        args=(api, settings.dsn("order"), stop, settings),
        name="http-in-flight",
        daemon=True,
    )
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        # The API reads no client address or scheme, so no X-Forwarded-* rewriting on each
        # request (uvicorn's proxy-headers middleware, ~2 % of the process under overload).
        proxy_headers=False,
        # Connections + requests at once; past it uvicorn answers 503 on its own.
        limit_concurrency=4096,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)

    def _stop_server() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=_stop_server, name="http-stopper", daemon=True).start()
    if admission.cap is not None:
        _first_count(admission, settings.dsn("order"))
    counter.start()
    placer.start()
    log.info(
        "checkout API listening",
        address=address,
        rate_limit_per_s=admission.bucket.rate if admission.bucket else "off",
        burst=admission.bucket.burst if admission.bucket else None,
        max_in_flight=settings.http_max_in_flight or "off",
        db_pool=settings.http_db_pool_size,
    )
    try:
        server.run(sockets=[sock])
    except Exception as exc:
        log.exception("checkout API crashed; stopping the service", address=address)
        fail(stop, f"checkout API crashed: {exc}")
    finally:
        stop.set()
        sock.close()
        # uvicorn has let the requests in progress finish: what is queued is placed first.
        placer.stop()
        counter.join(timeout=5)
        pool.close()
        log.info("checkout API stopped", address=address)
