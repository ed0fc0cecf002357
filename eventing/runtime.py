"""The one runtime every service runs: migrations, consumer loop, relay, retrier, timers.

A service hands over a `ServiceSpec` (its handlers, its schema package, its periodic
tasks); everything about Kafka, transactions, retries and shutdown lives here.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

import psycopg

from eventing import db
from eventing.crashpoints import maybe_crash
from eventing.kafka.clients import EventConsumer, EventProducer, Record
from eventing.logging import configure_logging, get_logger
from eventing.maintenance import maintenance_loop, prepare_database
from eventing.outbox import insert_outbox
from eventing.processing import Processor
from eventing.relay import Relay
from eventing.retrier import Retrier
from eventing.retry import COMPENSATION, backoff_s
from eventing.settings import Settings
from eventing.spec import PeriodicTask, ServiceSpec, ServiceStop, input_topics
from eventing.tx import Tx

__all__ = ["PeriodicTask", "ServiceSpec", "input_topics", "run_service"]

log = get_logger(__name__)
_ALIVE_EVERY_S = 30.0


def _supervised(name: str, stop: threading.Event, body: Callable[[], None]) -> None:
    """Run `body` until stop; a lost database connection is retried with backoff."""
    attempt = 0
    while not stop.is_set():
        try:
            body()
            attempt = 0
        except psycopg.OperationalError as exc:
            attempt += 1
            delay = backoff_s(attempt, 0.2, 5.0)
            log.warning(
                f"{name}: database unavailable; retrying",
                error=str(exc).strip(),
                retry_in_s=round(delay, 2),
            )
            stop.wait(delay)
        except Exception:
            attempt += 1
            log.exception(f"{name}: unexpected error; restarting it")
            stop.wait(backoff_s(attempt, 0.5, 10.0))


def _retrier_thread(retrier: Retrier, dsn: str, stop: threading.Event) -> None:
    def body() -> None:
        with db.connect(dsn) as conn:
            while not stop.is_set():
                if retrier.run_once(conn) > 0:
                    continue
                due = retrier.seconds_until_due(conn)
                wait = 1.0 if due is None else min(1.0, max(0.02, due))
                retrier.wakeup.wait(wait)
                retrier.wakeup.clear()

    _supervised("retrier", stop, body)


def _periodic_thread(
    spec: ServiceSpec, task: PeriodicTask, settings: Settings, stop: threading.Event
) -> None:
    dsn = settings.dsn(spec.name)

    def body() -> None:
        with db.connect(dsn) as conn:
            while not stop.is_set():
                with conn.transaction():
                    tx = Tx(conn, spec.name, settings)
                    n = task.run(tx)
                    insert_outbox(conn, tx.rows)
                if n:
                    log.info(f"{task.name} ran", count=n)
                stop.wait(task.interval_s(settings))

    _supervised(task.name, stop, body)


class _ConsumerLoop:
    def __init__(
        self,
        spec: ServiceSpec,
        settings: Settings,
        processor: Processor,
        consumer: EventConsumer,
        retrier: Retrier,
        relay: Relay,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.processor = processor
        self.consumer = consumer
        self.retrier = retrier
        self.relay = relay
        self.conn: psycopg.Connection[Any] | None = None
        self.totals: Counter[str] = Counter()
        self._next_report = time.monotonic() + _ALIVE_EVERY_S

    def _report(self) -> None:
        """A periodic line saying the service is alive and moving: what a stuck one lacks."""
        if time.monotonic() < self._next_report:
            return
        self._next_report = time.monotonic() + _ALIVE_EVERY_S
        log.info(
            "service alive",
            partitions=self.consumer.assigned(),
            published=self.relay.published,
            **self.totals,
        )

    def _process(self, records: list[Record], stop: threading.Event) -> bool:
        """Process until committed; False if we were stopped first (nothing stored)."""
        attempt = 0
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = db.connect(self.settings.dsn(self.spec.name))
                outcome = self.processor.process(self.conn, records)
                maybe_crash("after_commit", outcome.events)
                for name in ("handled", "duplicates", "parked", "dead", "ignored"):
                    self.totals[name] += getattr(outcome, name)
                if outcome.parked:
                    self.retrier.wakeup.set()
                return True
            except psycopg.OperationalError as exc:
                attempt += 1
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                delay = backoff_s(attempt, 0.2, 5.0)
                log.warning(
                    "database unavailable while processing a batch; will retry it",
                    error=str(exc).strip(),
                    batch=len(records),
                    retry_in_s=round(delay, 2),
                )
                if stop.wait(delay):
                    return False

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            records = self.consumer.poll_batch(self.settings.batch_size, 0.2)
            self._report()
            if not records:
                continue
            if not self._process(records, stop):
                return
            self.consumer.store(records)
        if self.conn is not None:
            self.conn.close()


def run_service(
    spec: ServiceSpec, settings: Settings, stop: threading.Event | None = None
) -> str | None:
    """Run `spec` until SIGTERM/SIGINT (or `stop`): finish the batch, commit, close.

    Returns why a part of the service stopped it (None for a requested stop), for the
    caller's exit status."""
    configure_logging(
        settings.log_level, settings.log_format, service=spec.name, instance=settings.instance
    )
    stop = stop or ServiceStop()
    if threading.current_thread() is threading.main_thread():

        def _on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("shutting down", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)

    dsn = settings.dsn(spec.name)
    applied = prepare_database(dsn, spec, settings)
    log.info("schema ready", migrations_applied=applied)
    from eventing.kafka.admin import ensure_topics
    from shared_events.topics import ALL_TOPICS

    ensure_topics(settings.kafka_bootstrap_servers, list(ALL_TOPICS), settings.topic_partitions)

    client_id = f"{spec.name}-{socket.gethostname()}-{os.getpid()}"
    policies = {t: COMPENSATION for t in spec.compensations}
    processor = Processor(
        spec.name, spec.consumes, spec.handle, settings, policies, archives=spec.archives
    )
    producer = EventProducer(settings.kafka_bootstrap_servers, client_id)
    relay = Relay(dsn, producer)
    retrier = Retrier(processor)
    threads = [
        threading.Thread(
            target=_supervised,
            args=("relay", stop, lambda: relay.run(stop)),
            name="relay",
            daemon=True,
        ),
        threading.Thread(
            target=_retrier_thread, args=(retrier, dsn, stop), name="retrier", daemon=True
        ),
        threading.Thread(
            target=_supervised,
            args=("maintenance", stop, lambda: maintenance_loop(spec, settings, stop)),
            name="maintenance",
            daemon=True,
        ),
    ]
    threads += [
        threading.Thread(
            target=_periodic_thread, args=(spec, t, settings, stop), name=t.name, daemon=True
        )
        for t in spec.periodic
    ]
    threads += [
        threading.Thread(
            target=b, args=(settings, stop), name=getattr(b, "__name__", "bg"), daemon=True
        )
        for b in spec.background
    ]
    for t in threads:
        t.start()
    consumer = EventConsumer(
        settings.kafka_bootstrap_servers, f"{spec.name}-svc", input_topics(spec), client_id
    )
    log.info("service started", topics=input_topics(spec), group=f"{spec.name}-svc")
    try:
        _ConsumerLoop(spec, settings, processor, consumer, retrier, relay).run(stop)
    finally:
        stop.set()
        consumer.close()
        for t in threads:
            t.join(timeout=15)
        producer.close()
        failure = stop.failure if isinstance(stop, ServiceStop) else None
        if failure:
            log.error("service stopped by a failure", reason=failure)
        else:
            log.info("service stopped")
    return failure
