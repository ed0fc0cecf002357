"""The one runtime every service runs: migrations, consumer loop, relay, retrier, timers.

A service hands over a `ServiceSpec` (its handlers, its schema package, its periodic
tasks); everything about Kafka, transactions, retries and shutdown lives here.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg

from eventing import db, metrics, tracing
from eventing.crashpoints import arm, maybe_crash
from eventing.kafka.clients import EventConsumer, EventProducer, Record
from eventing.logging import configure_logging, get_logger
from eventing.maintenance import maintenance_loop, prepare_database
from eventing.outbox import insert_outbox
from eventing.processing import Outcome, Processor
from eventing.queries import Queries
from eventing.reconnect import Reconnect
from eventing.relay import Relay
from eventing.retrier import Retrier
from eventing.settings import Settings
from eventing.signals import stop_on_signals
from eventing.spec import PeriodicTask, ServiceSpec, ServiceStop, input_topics
from eventing.tx import Tx

__all__ = ["PeriodicTask", "ServiceSpec", "input_topics", "run_service"]

log = get_logger(__name__)
Q = Queries.load("eventing")
_ALIVE_EVERY_S = 30.0
_SAMPLE_EVERY_S = 5.0
# A consumer whose group membership has not settled for this long is wedged (joining
# takes seconds, a rebalance waits at most max.poll.interval.ms = 60 s for a member).
_WEDGED_AFTER_S = 120.0


def _supervised(
    name: str, stop: threading.Event, body: Callable[[Callable[[], None]], None]
) -> None:
    """Run `body` until stop; a lost database connection is retried with backoff.

    `body` gets a callable to call once it is connected: it ends an outage (one line)."""
    db_down = Reconnect(
        f"{name}: database unavailable; retrying",
        resumed=f"{name}: database available again",
        stop=stop,
        log=log,
    )
    restarts = Reconnect(None, stop=stop, base_s=0.5, cap_s=10.0)
    while not stop.is_set():
        try:
            db_down.run(lambda: body(db_down.succeeded), (psycopg.OperationalError,))
            restarts.succeeded()
        except Exception:
            log.exception(f"{name}: unexpected error; restarting it")
            restarts.failed()


DEFAULT_METRICS_PORTS = {"order": 9101, "inventory": 9102, "payment": 9103, "fulfillment": 9104}


def metrics_port(service: str, settings: Settings) -> int:
    """SAGA_METRICS_PORT, else the service's default; instance i adds 10 * (i - 1)."""
    if settings.metrics_port is not None:
        return settings.metrics_port
    instance = int(settings.instance) if settings.instance.isdigit() else 1
    return DEFAULT_METRICS_PORTS.get(service, 9100) + 10 * (max(instance, 1) - 1)


def _lag_gauges(service: str) -> Callable[[str], None]:
    def on_stats(stats: str) -> None:
        for (topic, partition), lag in metrics.lag_from_statistics(stats).items():
            metrics.CONSUMER_LAG.labels(service, topic, str(partition)).set(lag)

    return on_stats


def _sampler_thread(
    spec: ServiceSpec, settings: Settings, health: metrics.Health, stop: threading.Event
) -> None:
    """What needs a query, every few seconds: backlog, parked and dead letters, the
    service's own gauges; and, for /readyz, that the database answers."""
    name = spec.name

    def body(connected: Callable[[], None]) -> None:
        with db.connect(settings.dsn(name)) as conn:
            connected()
            while not stop.is_set():
                unsent, oldest = Q.rows(conn, "metrics_outbox")[0]
                retrying, dead = Q.rows(conn, "metrics_parked")[0]
                metrics.OUTBOX_UNSENT.labels(name).set(unsent)
                metrics.OUTBOX_OLDEST_UNSENT.labels(name).set(float(oldest))
                metrics.PARKED.labels(name).set(retrying)
                metrics.DEAD_LETTERS.labels(name).set(dead)
                for sample in spec.samplers:
                    sample(conn)
                health.db_answered()
                stop.wait(_SAMPLE_EVERY_S)

    _supervised("metrics sampler", stop, body)


def _retrier_thread(retrier: Retrier, dsn: str, stop: threading.Event) -> None:
    def body(connected: Callable[[], None]) -> None:
        with db.connect(dsn) as conn:
            connected()
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

    def body(connected: Callable[[], None]) -> None:
        with db.connect(dsn) as conn:
            connected()
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
        new_consumer: Callable[[], EventConsumer],
        retrier: Retrier,
        relay: Relay,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.processor = processor
        self._new_consumer = new_consumer
        self.consumer = new_consumer()
        self.retrier = retrier
        self.relay = relay
        self.conn: psycopg.Connection[Any] | None = None
        self.totals: Counter[str] = Counter()
        self._next_report = time.monotonic() + _ALIVE_EVERY_S
        self.health = metrics.Health()
        self.health.partitions = self._held  # the consumer may be replaced
        service = spec.name
        self._batch_size = metrics.BATCH_SIZE.labels(service)
        self._batch_seconds = metrics.BATCH_SECONDS.labels(service)

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
        db_down = Reconnect(
            "database unavailable while processing a batch; will retry it",
            resumed="database available again; the batch is committed",
            stop=stop,
            log=log,
        )
        committed = db_down.run(
            lambda: self._commit(records), (psycopg.OperationalError,), batch=len(records)
        )
        return committed is not None

    def _commit(self, records: list[Record]) -> Outcome:
        """One attempt: the batch in one transaction; a lost connection is dropped."""
        try:
            if self.conn is None or self.conn.closed:
                self.conn = db.connect(self.settings.dsn(self.spec.name))
            started = time.perf_counter()
            outcome = self.processor.process(self.conn, records)
        except psycopg.OperationalError:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            raise
        self._batch_seconds.observe(time.perf_counter() - started)
        self._batch_size.observe(len(records))
        self.health.db_answered()
        maybe_crash("after_commit", outcome.events)
        for name in ("handled", "duplicates", "parked", "dead", "ignored"):
            self.totals[name] += getattr(outcome, name)
        for (topic, label), n in outcome.by_topic.items():
            metrics.EVENTS_CONSUMED.labels(self.spec.name, topic, label).inc(n)
        if outcome.parked:
            self.retrier.wakeup.set()
        return outcome

    def _held(self) -> int:
        return self.consumer.assigned()

    def _replace_if_wedged(self) -> None:
        """A consumer that cannot settle into its group for minutes (seen after a broker
        was fenced and unfenced: requests to the group coordinator queued for ever) is
        replaced by a new one, which joins at once."""
        if self.consumer.unsettled_s() < _WEDGED_AFTER_S:
            return
        log.warning(
            "consumer has not settled into its group; replacing it",
            unsettled_s=round(self.consumer.unsettled_s()),
            group=f"{self.spec.name}-svc",
        )
        old, self.consumer = self.consumer, self._new_consumer()
        old.abandon()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            records = self.consumer.poll_batch(self.settings.batch_size, 0.2)
            self.health.beat()
            self._report()
            self._replace_if_wedged()
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
        stop_on_signals(stop, lambda name: log.info("shutting down", signal=name))

    arm(settings.crash_point)
    if tracing.configure(spec.name):
        log.info("tracing: spans are exported over OTLP")
    dsn = settings.dsn(spec.name)
    applied = prepare_database(dsn, spec, settings)
    log.info("schema ready", migrations_applied=applied)
    from eventing.kafka.admin import ensure_topics
    from shared_events.topics import ALL_TOPICS

    ensure_topics(settings.kafka_bootstrap_servers, list(ALL_TOPICS), settings.topic_partitions)

    client_id = f"{spec.name}-{socket.gethostname()}-{os.getpid()}"
    policies = {t: settings.retry_compensation for t in spec.compensations}
    processor = Processor(
        spec.name, spec.consumes, spec.handle, settings, policies, archives=spec.archives
    )
    producer = EventProducer(settings.kafka_bootstrap_servers, client_id)
    relay = Relay(dsn, producer, service=spec.name)
    retrier = Retrier(processor)
    threads = [
        threading.Thread(
            target=_supervised,
            args=("relay", stop, lambda connected: relay.run(stop, connected)),
            name="relay",
            daemon=True,
        ),
        threading.Thread(
            target=_retrier_thread, args=(retrier, dsn, stop), name="retrier", daemon=True
        ),
        threading.Thread(
            target=_supervised,
            # It connects on its own: a failure after a while up counts as a new outage.
            args=("maintenance", stop, lambda _: maintenance_loop(spec, settings, stop)),
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

    def new_consumer() -> EventConsumer:
        return EventConsumer(
            settings.kafka_bootstrap_servers,
            f"{spec.name}-svc",
            input_topics(spec),
            client_id,
            on_stats=_lag_gauges(spec.name),
        )

    loop = _ConsumerLoop(spec, settings, processor, new_consumer, retrier, relay)
    threads += [
        threading.Thread(
            target=metrics.serve,
            args=(settings.metrics_host, metrics_port(spec.name, settings), loop.health, stop),
            name="metrics",
            daemon=True,
        ),
        threading.Thread(
            target=_sampler_thread, args=(spec, settings, loop.health, stop), name="sampler"
        ),
    ]
    for t in threads:
        t.daemon = True
        t.start()
    log.info("service started", topics=input_topics(spec), group=f"{spec.name}-svc")
    try:
        loop.run(stop)
    finally:
        stop.set()
        loop.consumer.close()
        for t in threads:
            t.join(timeout=15)
        producer.close()
        tracing.shutdown()
        failure = stop.failure if isinstance(stop, ServiceStop) else None
        if failure:
            log.error("service stopped by a failure", reason=failure)
        else:
            log.info("service stopped")
    return failure
