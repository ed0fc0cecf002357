"""The order service's own metrics: how long sagas take, and how many are in flight."""

from __future__ import annotations

from typing import Any

import psycopg
from prometheus_client import Counter, Gauge, Histogram

from order_svc.repository import count_in_flight

__all__ = [
    "ADMISSION_IN_FLIGHT",
    "ADMISSION_LIMIT",
    "ADMISSION_REFUSED",
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "SAGA_DURATION",
    "SAGA_IN_FLIGHT",
    "sample_in_flight",
]

SAGA_DURATION = Histogram(
    "saga_duration_seconds",
    "Placed to terminal, by outcome: completed, or the cancel reason.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)
SAGA_IN_FLIGHT = Gauge("saga_in_flight", "Sagas not yet terminal (PENDING or CANCELLING).")


def sample_in_flight(conn: psycopg.Connection[Any]) -> None:
    SAGA_IN_FLIGHT.set(count_in_flight(conn))


# The checkout API (each API process serves its own at /metrics on the API port).
HTTP_REQUESTS = Counter(
    "saga_http_requests",
    "Checkout API requests by route and status code.",
    ["method", "route", "code"],
)
HTTP_SECONDS = Histogram(
    "saga_http_request_seconds",
    "Checkout API response time.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ADMISSION_LIMIT = Gauge(
    "saga_admission_limit", "Sagas this API process lets be in flight at once (0: no cap)."
)
ADMISSION_IN_FLIGHT = Gauge(
    "saga_admission_in_flight", "Sagas in flight as this API process's admission counts them."
)
ADMISSION_REFUSED = Counter(
    "saga_admission_refused", "Checkouts refused with 429, by reason.", ["reason"]
)
