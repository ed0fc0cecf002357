"""SAGA_HTTP_WORKERS > 0: the checkout API in processes of its own, sharing one socket.

Why: in the order service's process the API shares one GIL with the consumer and the
relay, and under load they take most of it. Measured on the 2-core dev machine with the
four services running: 223 accepted checkouts/s with the API in-process, 304/s from a
process of its own.

The order service binds the port (a port in use is still an error at start) and hands the
listening socket to the workers, pre-fork style; not SO_REUSEPORT, which would let a second
order service share the port without a word. Each worker takes its share of the rate limit
(see `admission_from`). The workers live and die with the service: the service stops when
a worker dies, and the kernel sends a worker SIGTERM when the service dies
(PR_SET_PDEATHSIG), so no orphan keeps the port.
"""

from __future__ import annotations

import contextvars
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import structlog

from eventing import tracing
from eventing.logging import configure_logging, get_logger
from eventing.settings import Settings, load_settings
from eventing.signals import stop_on_signals
from eventing.spec import fail
from order_svc.api.serving import admission_from, serve

__all__ = ["main", "run_workers"]

log = get_logger(__name__)

_FD = "SAGA_HTTP_LISTEN_FD"
_INDEX = "SAGA_HTTP_WORKER_INDEX"
_PARENT = "SAGA_HTTP_PARENT_PID"
_PR_SET_PDEATHSIG = 1
_STOP_TIMEOUT_S = 20.0


def _spawn(index: int, sock: socket.socket) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        _FD: str(sock.fileno()),
        _INDEX: str(index),
        _PARENT: str(os.getpid()),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "order_svc.api.workers"], env=env, pass_fds=(sock.fileno(),)
    )


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("checkout API worker did not stop in time; killing it", pid=p.pid)
            p.kill()
            p.wait()


def run_workers(settings: Settings, stop: threading.Event, sock: socket.socket) -> None:
    """Run the workers until `stop`; a worker that dies stops the service."""
    address = f"http://{settings.http_host}:{settings.http_port}"
    procs = [_spawn(i, sock) for i in range(settings.http_workers)]
    log.info("checkout API workers started", address=address, pids=[p.pid for p in procs])
    try:
        while not stop.wait(0.5):
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                log.error(
                    "checkout API worker exited; stopping the service",
                    pid=dead[0].pid,
                    exit_code=dead[0].returncode,
                )
                fail(stop, f"checkout API worker {dead[0].pid} exited with {dead[0].returncode}")
                break
    finally:
        stop.set()
        _stop_all(procs)
        sock.close()
        log.info("checkout API workers stopped", address=address)


def _die_with(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the service died before we could ask
        sys.exit(0)


def main() -> None:
    parent = int(os.environ[_PARENT])
    _die_with(parent)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, service="order")
    tracing.configure("order")
    structlog.contextvars.bind_contextvars(http_worker=int(os.environ[_INDEX]))
    stop = threading.Event()

    # Signals stay with this main thread: uvicorn, in a thread, leaves them alone.
    stop_on_signals(stop)
    sock = socket.socket(fileno=int(os.environ[_FD]))
    # Every API process of every order instance takes its share of the rate limit.
    admission = admission_from(settings, share=settings.http_workers * settings.instances)
    context = contextvars.copy_context()  # the thread logs with this worker's bound fields
    server = threading.Thread(
        target=context.run,
        args=(serve, settings, stop, sock, admission),
        name="http_api",
        daemon=True,
    )
    server.start()
    while server.is_alive():
        server.join(0.5)
        if os.getppid() != parent:  # where there is no PR_SET_PDEATHSIG
            stop.set()
    tracing.shutdown()


if __name__ == "__main__":
    main()
