"""The checkout API as a part of the order service: settings checked, port bound, served.

`http_api` is a `ServiceSpec.background` part: the runtime owns SIGTERM/SIGINT and sets
`stop`; serving turns that into uvicorn's graceful shutdown (stop accepting, finish
requests in progress). uvicorn installs signal handlers only on the main thread, so
running it in a thread leaves the runtime's handlers in place. With SAGA_HTTP_WORKERS > 0
the API runs in worker processes of its own (`order_svc.api.workers`), else in a thread
of the service (`order_svc.api.serving`).

The socket is bound here, before uvicorn starts, so that a port already in use is a clear
error and stops the whole service: an order service without its API would look healthy
while refusing every checkout.
"""

from __future__ import annotations

import errno
import socket
import threading
import time

import structlog

from eventing.logging import get_logger
from eventing.reconnect import Reconnect
from eventing.settings import Settings
from eventing.spec import fail
from order_svc.api.serving import admission_from, serve
from order_svc.api.workers import run_workers

__all__ = ["bind", "http_api"]

log = get_logger(__name__)


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """The listening socket; OSError (e.g. the port is taken) says which address failed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be explicit: asyncio sets TCP_NODELAY on accepted connections only when
    # it is IPPROTO_TCP, and without it every response waits ~40 ms on a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # several order-service instances serve one port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


# After a crash, the previous instance's API worker may hold the port for a few seconds
# while it stops (it dies with its service, gracefully): wait that long before giving up.
BIND_GRACE_S = 15.0


def _bind_when_free(
    host: str, port: int, address: str, stop: threading.Event, reuse_port: bool
) -> socket.socket:
    deadline = time.monotonic() + BIND_GRACE_S
    busy = Reconnect(
        "checkout API port busy; waiting for it (a previous instance may still be stopping)",
        resumed="checkout API port free",
        stop=stop,
        base_s=0.5,
        cap_s=1.0,
        log=log,
    )
    while True:
        try:
            sock = bind(host, port, reuse_port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline or stop.is_set():
                raise
            busy.failed(address=address)  # stopped meanwhile: the next try is the last
            continue
        busy.succeeded()
        return sock


def http_api(settings: Settings, stop: threading.Event) -> None:
    """Serve the checkout API until `stop`; if it cannot serve, stop the service too."""
    # A new thread starts with empty contextvars: name the service in our log lines again.
    structlog.contextvars.bind_contextvars(service="order")
    address = f"http://{settings.http_host}:{settings.http_port}"
    try:
        if settings.http_db_pool_size < 1:
            raise ValueError("SAGA_HTTP_DB_POOL_SIZE must be at least 1")
        if settings.http_workers < 0:
            raise ValueError("SAGA_HTTP_WORKERS must be >= 0")
        admission = admission_from(settings, share=settings.instances)
    except ValueError as exc:
        log.error("bad checkout API settings; stopping the service", error=str(exc))
        fail(stop, f"bad checkout API settings: {exc}")
        return
    try:
        sock = _bind_when_free(
            settings.http_host, settings.http_port, address, stop, settings.http_reuse_port
        )
    except OSError as exc:
        log.error(
            "cannot listen for the checkout API; stopping the service "
            "(free the port or set SAGA_HTTP_HOST/SAGA_HTTP_PORT)",
            address=address,
            error=exc.strerror or str(exc),
        )
        fail(stop, f"cannot listen on {address}: {exc.strerror or exc}")
        return
    if settings.http_workers == 0:
        serve(settings, stop, sock, admission)
    else:
        run_workers(settings, stop, sock)
