"""What a service hands the runtime: its handlers, its schema, its timers and its tables.

Everything about Kafka, transactions, retries, partitions and archiving lives in the
runtime; a `ServiceSpec` only says what is the service's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from eventing.archive import ArchivedTable
from eventing.partitions import TimePartitioned
from eventing.settings import Settings
from eventing.tx import Handler, Tx
from shared_events.codec import PRODUCER_OF
from shared_events.envelope import Event
from shared_events.topics import events_topic

__all__ = ["PeriodicTask", "ServiceSpec", "ServiceStop", "fail", "input_topics"]


class ServiceStop(threading.Event):
    """A service's stop signal that also records why a part stopped it, so that the process
    exits non-zero on a failure (systemd's Restart=on-failure, compose's restart policies)."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: str | None = None

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.set()


def fail(stop: threading.Event, reason: str) -> None:
    """Stop the service because `reason` went wrong."""
    if isinstance(stop, ServiceStop):
        stop.fail(reason)
    else:
        stop.set()


@dataclass(frozen=True)
class PeriodicTask:
    """Work on a timer (e.g. the reservation reaper), in its own transaction each run."""

    name: str
    interval_s: Callable[[Settings], float]
    run: Callable[[Tx], int]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    package: str
    consumes: frozenset[type[Event]]
    handle: Handler
    compensations: frozenset[type[Event]] = frozenset()
    periodic: tuple[PeriodicTask, ...] = ()
    # Extra long-lived parts (e.g. the HTTP API), run in threads until `stop` is set.
    background: tuple[Callable[[Settings, threading.Event], None], ...] = field(default=())
    # The service's own tables kept by time (its inbox and outbox are the runtime's).
    partitioned: tuple[TimePartitioned, ...] = ()
    # Its tables of one row per order, which move to an archive once settled.
    archives: tuple[ArchivedTable, ...] = ()
    # Its own gauges, sampled every few seconds on a connection of its database.
    samplers: tuple[Callable[[psycopg.Connection[Any]], None], ...] = ()


def input_topics(spec: ServiceSpec) -> list[str]:
    return sorted({events_topic(PRODUCER_OF[t]) for t in spec.consumes})
