"""Wires the order service's handlers, and its checkout HTTP API, into the shared runtime."""

from __future__ import annotations

from eventing.archive import ArchivedTable
from eventing.partitions import TimePartitioned
from eventing.spec import ServiceSpec
from order_svc.api.server import http_api
from order_svc.domain import TERMINAL
from order_svc.handlers import CONSUMES, handle
from order_svc.metrics import sample_in_flight

__all__ = ["SPEC"]

SPEC = ServiceSpec(
    name="order",
    package="order_svc",
    consumes=CONSUMES,
    handle=handle,
    background=(http_api,),
    # Steps are read by the trace only: they stay as long as archived orders do.
    partitioned=(
        TimePartitioned(
            "saga_steps",
            interval_s=lambda s: s.steps_partition_s,
            retention_s=lambda s: s.archive_after_s + s.archive_retention_s,
            ahead_s=3600.0,
        ),
    ),
    archives=(
        ArchivedTable(
            "orders",
            "t.status IN (" + ", ".join(f"'{s}'" for s in sorted(TERMINAL)) + ")",
            # Since it ended: the index of ended orders is on terminal_at (migration 0005).
            idle_column="terminal_at",
        ),
    ),
    samplers=(sample_in_flight,),
)
