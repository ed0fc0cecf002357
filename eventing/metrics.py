"""Prometheus metrics of a service, and its /metrics, /healthz and /readyz endpoint.

The hot path only adds to counters once per batch (a few lock-protected additions), never
per event; what needs a query (outbox backlog, parked and dead letters, sagas in flight)
is sampled by a thread of its own every few seconds, and consumer lag comes from
librdkafka's own statistics. So a scrape costs the consumer nothing.

Each service serves on SAGA_METRICS_PORT (9101 order, 9102 inventory, 9103 payment, 9104
fulfillment by default; instance i of a service adds 10 * (i - 1)); 0 turns it off. The
checkout API's worker processes serve their own /metrics on the API port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from eventing.logging import get_logger

__all__ = [
    "BATCH_SECONDS",
    "BATCH_SIZE",
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "EVENTS_CONSUMED",
    "EVENTS_PUBLISHED",
    "OUTBOX_OLDEST_UNSENT",
    "OUTBOX_UNSENT",
    "PARKED",
    "Health",
    "lag_from_statistics",
    "serve",
]

log = get_logger(__name__)

EVENTS_CONSUMED = Counter(
    "saga_events_consumed",
    "Records consumed, by what became of them: handled, duplicate (the inbox knew it), "
    "parked (set aside for a retry or behind an earlier message of its order), dead "
    "(dead-lettered) or ignored (not for this service).",
    ["service", "topic", "outcome"],
)
BATCH_SIZE = Histogram(
    "saga_batch_size",
    "Records per consumer batch (one local transaction).",
    ["service"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
BATCH_SECONDS = Histogram(
    "saga_batch_seconds",
    "Time to process one consumer batch, commit included.",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_UNSENT = Gauge("saga_outbox_unsent", "Outbox rows not yet published.", ["service"])
OUTBOX_OLDEST_UNSENT = Gauge(
    "saga_outbox_oldest_unsent_seconds",
    "Age of the oldest outbox row not yet published (0 when none).",
    ["service"],
)
EVENTS_PUBLISHED = Counter(
    "saga_events_published", "Outbox rows published by the relay.", ["service", "topic"]
)
CONSUMER_LAG = Gauge(
    "saga_consumer_lag",
    "Records on the partition this consumer has not processed yet (librdkafka statistics).",
    ["service", "topic", "partition"],
)
PARKED = Gauge("saga_parked", "Messages waiting for a retry.", ["service"])
DEAD_LETTERS = Gauge("saga_dead_letters", "Dead-lettered messages awaiting a redrive.", ["service"])


def lag_from_statistics(stats_json: str) -> dict[tuple[str, int], int]:
    """Per (topic, partition) consumer lag out of a librdkafka statistics document."""
    stats = json.loads(stats_json)
    lags: dict[tuple[str, int], int] = {}
    for topic, t in (stats.get("topics") or {}).items():
        for partition, p in (t.get("partitions") or {}).items():
            pid = int(partition)
            lag = p.get("consumer_lag", -1)
            if pid >= 0 and lag is not None and lag >= 0:
                lags[(topic, pid)] = int(lag)
    return lags


class Health:
    """What /healthz and /readyz answer: alive while the loop turns; ready when it also holds
    partitions and its database answered lately."""

    def __init__(self) -> None:
        self.loop_at = time.monotonic()
        self.db_ok_at = 0.0
        self.partitions: Callable[[], int] = lambda: 0

    def beat(self) -> None:
        self.loop_at = time.monotonic()

    def db_answered(self) -> None:
        self.db_ok_at = time.monotonic()

    def live(self) -> tuple[bool, dict[str, Any]]:
        # A batch may take long (a slow database); a minute without a turn is stuck.
        since = time.monotonic() - self.loop_at
        return since < 60, {"consumer_loop_idle_s": round(since, 1)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        held = self.partitions()
        db_age = time.monotonic() - self.db_ok_at
        alive, detail = self.live()
        ok = alive and held > 0 and db_age < 15
        return ok, {**detail, "partitions": held, "database_answered_s_ago": round(db_age, 1)}


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, detail = health.live() if path == "/healthz" else health.ready()
                body = json.dumps({"status": "ok" if ok else "unavailable", **detail})
                self._send(200 if ok else 503, body.encode(), "application/json")
            else:
                self._send(404, b'{"error": "not_found"}', "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds are not worth a log line each

    return Handler


def serve(host: str, port: int, health: Health, stop: threading.Event) -> None:
    """Serve /metrics, /healthz and /readyz until `stop` (port 0: not at all)."""
    if port == 0:
        return
    try:
        server = ThreadingHTTPServer((host, port), _handler(health))
    except OSError as exc:
        log.error(
            "cannot serve metrics; the service runs without them (set SAGA_METRICS_PORT to a "
            "free port, or 0 to turn them off)",
            address=f"{host}:{port}",
            error=exc.strerror or str(exc),
        )
        return
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    log.info("metrics listening", address=f"http://{host}:{port}/metrics")
    stop.wait()
    server.shutdown()
    server.server_close()
