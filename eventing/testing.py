"""Run the services in one process: real handlers and SQL on PostgreSQL, an in-memory bus for
Kafka, a virtual clock, and every crash point of the runtime on demand.

What runs is the runtime itself, not a model of it: each service's `ServiceSpec` goes through
`Processor.process` (batches, inbox, parking, dead letters), `Retrier.run_once`, the relay's
`publish_once` (its outbox query, marked sent as it does) and the spec's periodic tasks, on a
database of its own migrated by `eventing.maintenance.prepare_database`. Only Kafka is
replaced: `Bus` keeps each topic's partitions as lists of `Record`s and each consumer group's
committed offsets, so a test decides what is delivered when, in which batches, and what is
delivered again. No threads: every step is a call, so a test or a seeded simulation is exact.

Crash points, as the real processes have them (`eventing/crashpoints.py`):

- `Crash.BEFORE_COMMIT`: the batch's handlers run (the payment gateway is called: it keeps its
  own ledger outside the transaction), then the transaction rolls back; the records stay
  unconsumed and come again.
- `Crash.AFTER_COMMIT`: the batch commits but its offsets are not stored; it comes again and
  the inbox must drop it.
- the relay, after producing and before marking rows sent (`relay(crash_after_produce=True)`):
  the rows are published again by the next round; and a broker refusing the tail of a batch
  (`relay(refuse_from=n)`).

The virtual clock: the saga's own notion of time is virtual, the database's partitions and
event ids keep real time. Each scratch database holds one `sim_clock` row and a `public.now()`
that returns it; the services' sessions put `public` before `pg_catalog` in their search_path,
so every `now()` in their SQL (the reaper's deadline, the retrier's due times, the gateway's
fault windows, `updated_at` stamps) reads the virtual clock, and the harness hands handlers
and timers `Tx.now` from the same clock. Column defaults were bound to `pg_catalog.now()` when
the tables were made, so partition keys (`created_at`, `recorded_at`), and events'
`occurred_at` (the inbox's key), stay on real time and real partitions. The clock starts at the
real time of `reset()` and moves only when told (`advance`), which is what makes a run exact:
a reservation lapses because the test jumped past its deadline, never because the machine was
slow. Retries: `retry()` makes every waiting retry due and moves the clock by one
`retry_tick_s`; backoff lengths are not simulated, attempts and budgets are.

Databases are made once (`ScratchDatabases`: created, migrated by the runtime's own
`prepare_database`, `synchronous_commit` off, dropped on close) and reset between tests and
seeds (plain tables truncated, partitioned ones emptied, sequences restarted): ~30-50 ms for
the four, where cloning a template costs ~0.5 s per database on this 2-core machine, and
making and migrating one ~0.3 s.
"""

from __future__ import annotations

import enum
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from eventing.kafka.clients import EventProducer, Record
from eventing.maintenance import prepare_database, run_maintenance
from eventing.outbox import insert_outbox
from eventing.processing import Outcome, Processor
from eventing.queries import Queries
from eventing.relay import Relay
from eventing.retrier import Retrier
from eventing.retry import RetryPolicy
from eventing.settings import SERVICES, Settings, load_settings
from eventing.spec import ServiceSpec, input_topics
from eventing.tx import Handler, Tx
from shared_events.codec import encode
from shared_events.envelope import Event, utcnow

if TYPE_CHECKING:
    from saga_cli.audit import AuditReport

__all__ = [
    "Bus",
    "Crash",
    "RelayCrashed",
    "SagaHarness",
    "ScratchDatabases",
    "VirtualClock",
    "checkout_harness",
    "harness_settings",
]

RUNTIME_Q = Queries.load("eventing")

# Budgets by attempts only: an age budget would depend on how fast the machine is.
FORWARD = RetryPolicy(max_attempts=4, max_age_s=1e9, base_delay_s=0.05, max_delay_s=0.5)
COMPENSATION = RetryPolicy(max_attempts=6, max_age_s=1e9, base_delay_s=0.05, max_delay_s=0.5)

_CLOCK_SQL = """
CREATE TABLE IF NOT EXISTS sim_clock (at timestamptz NOT NULL);
CREATE OR REPLACE FUNCTION public.now() RETURNS timestamptz
    LANGUAGE sql STABLE AS $$ SELECT at FROM public.sim_clock LIMIT 1 $$;
"""
# What a service session of the harness uses: the virtual now() above shadows pg_catalog's.
_VIRTUAL_OPTIONS = "-c search_path=public,pg_catalog"
_KEEP = ("schema_migrations", "sim_clock")
# How often a reset also runs partition upkeep (partitions for the real time writes carry).
_MAINTAIN_EVERY_S = 60.0
# Heads of an order's queue waiting for a retry (what the retrier's `parked_due` would take
# once due): entries held behind a dead letter wait for its redrive, not for time.
_RETRYABLE = """
SELECT count(*) FROM parked p WHERE p.state = 'retrying' AND NOT EXISTS (
    SELECT 1 FROM parked q WHERE q.order_id = p.order_id AND q.seq < p.seq AND q.blocks)
"""


def _scalar(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


class Crash(enum.Enum):
    """Where a simulated process dies while handling a batch."""

    NONE = "none"
    BEFORE_COMMIT = "before_commit"
    AFTER_COMMIT = "after_commit"


class RelayCrashed(Exception):
    """The relay died after producing and before marking its rows sent."""


def harness_settings(base: Settings | None = None, **changes: Any) -> Settings:
    """Settings for scratch databases: wide partitions (fewer tables to make and reset) and
    one batch of up to 50 records; `changes` override any field."""
    base = base or load_settings()
    defaults: dict[str, Any] = {
        # The inbox vouches for events since now - retention + one partition: two wide
        # partitions keep an hour's window (one would keep none, see eventing/inbox.py).
        "inbox_retention_s": 7200.0,
        "inbox_partition_s": 3600.0,
        "outbox_partition_s": 3600.0,
        "steps_partition_s": 86400.0,
        "batch_size": 50,
    }
    return replace(base, **{**defaults, **changes})


# --- databases -----------------------------------------------------------------------------


def _with_db(dsn: str, dbname: str, **extra: str) -> str:
    return make_conninfo(dsn, dbname=dbname, **extra)


class ScratchDatabases:
    """One database per service, created and migrated on entry, dropped on exit.

    `dsn(service)` is what the harness and the tools read through (virtual clock);
    `plain_dsn(service)` is for maintenance, which must see real time."""

    def __init__(
        self,
        admin_dsn: str,
        specs: Sequence[ServiceSpec],
        settings: Settings,
        prefix: str = "",
        *,
        durable: bool = False,
    ) -> None:
        self.admin_dsn = admin_dsn
        self.durable = durable
        self.specs = {s.name: s for s in specs}
        self.settings = settings
        tag = prefix or f"saga_sim_{uuid.uuid4().hex[:10]}"
        self.names = {name: f"{tag}_{name}" for name in self.specs}
        self._created: list[str] = []
        self._maintained_at = 0.0
        self._conns: dict[str, psycopg.Connection[Any]] = {}

    def dsn(self, service: str) -> str:
        return _with_db(self.admin_dsn, self.names[service], options=_VIRTUAL_OPTIONS)

    def plain_dsn(self, service: str) -> str:
        return _with_db(self.admin_dsn, self.names[service])

    def __enter__(self) -> ScratchDatabases:
        try:
            for name, spec in self.specs.items():
                with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
                    admin.execute(f'CREATE DATABASE "{self.names[name]}"')
                self._created.append(self.names[name])
                # Scratch data: a commit need not wait for the disk (a crash is simulated,
                # not survived), which makes every step several times cheaper. A measurement
                # of what the services cost (`durable`) pays the flush as they do.
                if not self.durable:
                    with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
                        admin.execute(
                            f'ALTER DATABASE "{self.names[name]}" SET synchronous_commit = off'
                        )
                prepare_database(self.plain_dsn(name), spec, self.settings)
                with psycopg.connect(self.plain_dsn(name), autocommit=True) as conn:
                    conn.execute(_CLOCK_SQL)
            self._maintained_at = time.monotonic()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            for name in reversed(self._created):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()

    def reset(self, clock_at: datetime) -> None:
        """Every row gone, every sequence back to 1, the clock at `clock_at`: the state a
        fresh database has, so that a run replays the same whatever ran before it."""
        maintain = time.monotonic() - self._maintained_at > _MAINTAIN_EVERY_S
        for name, spec in self.specs.items():
            conn = self._conns.get(name)
            if conn is None:
                conn = self._conns[name] = psycopg.connect(self.plain_dsn(name), autocommit=True)
            if maintain:  # partitions for the real time that writes carry, as the service's
                run_maintenance(conn, spec, self.settings)  # maintenance thread makes them
            plain, partitioned = self._tables(conn)
            with conn.transaction():
                # Plain tables start afresh, so that their rows come back in the order they
                # were written, as in a new database (a query that returns ties in heap order
                # answers the same on a replay); the partitioned ones (inbox, outbox, steps,
                # archives) are emptied instead, which spares remaking dozens of files.
                conn.execute(
                    sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                        sql.SQL(", ").join(map(sql.Identifier, plain))
                    )
                )
                # Foreign keys need not be checked on the way: every table goes.
                conn.execute("SET LOCAL session_replication_role = replica")
                for table in partitioned:
                    conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
                conn.execute(
                    "SELECT setval(c.oid::regclass, 1, false) FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND c.relkind = 'S'"
                )
                conn.execute("DELETE FROM sim_clock")
                conn.execute("INSERT INTO sim_clock (at) VALUES (%s)", (clock_at,))
        if maintain:
            self._maintained_at = time.monotonic()

    @staticmethod
    def _tables(conn: psycopg.Connection[Any]) -> tuple[list[str], list[str]]:
        """The database's own tables: (plain, partitioned)."""
        rows = conn.execute(
            "SELECT c.relname, c.relkind = 'p' FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            " AND c.relname <> ALL(%s) ORDER BY 1",
            (list(_KEEP),),
        ).fetchall()
        return [r[0] for r in rows if not r[1]], [r[0] for r in rows if r[1]]


# --- the bus and the clock -----------------------------------------------------------------


@dataclass
class Bus:
    """Kafka as lists: per topic, `partitions` logs; per consumer group, committed offsets.

    A key's partition is given by the order in which keys first appear (round robin), not by
    a hash: the same sequence of steps then puts every key in the same partition, whatever
    random ids the run made."""

    partitions: int = 1
    logs: dict[str, list[list[Record]]] = field(default_factory=dict)
    committed: dict[tuple[str, str, int], int] = field(default_factory=dict)
    _slots: dict[bytes | None, int] = field(default_factory=dict)

    def partition_of(self, key: bytes | None) -> int:
        if key not in self._slots:
            self._slots[key] = len(self._slots) % self.partitions
        return self._slots[key]

    def append(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> Record:
        log = self.logs.setdefault(topic, [[] for _ in range(self.partitions)])
        p = self.partition_of(key)
        rec = Record(topic, p, len(log[p]), key, value, list(headers), 0)
        log[p].append(rec)
        return rec

    def messages(self, topic: str) -> list[Record]:
        return [r for part in self.logs.get(topic, []) for r in part]

    def pending(self, group: str, topics: Sequence[str]) -> dict[tuple[str, int], list[Record]]:
        """What `group` has not committed yet, per (topic, partition), in log order."""
        out: dict[tuple[str, int], list[Record]] = {}
        for topic in topics:
            for p, log in enumerate(self.logs.get(topic, [])):
                rest = log[self.committed.get((group, topic, p), 0) :]
                if rest:
                    out[(topic, p)] = rest
        return out

    def backlog(self, group: str, topics: Sequence[str]) -> int:
        return sum(len(v) for v in self.pending(group, topics).values())

    def fetch(
        self,
        group: str,
        topics: Sequence[str],
        limit: int,
        rng: random.Random | None = None,
    ) -> list[Record]:
        """A batch as a consumer would get it: from each partition a run of records in log
        order. Without `rng`, partitions in turn; with it, a random subset of the partitions
        (an assignment after a rebalance), random run lengths and a random interleaving."""
        pending = self.pending(group, topics)
        if not pending:
            return []
        keys = sorted(pending)
        if rng is None:
            runs = [list(pending[k]) for k in keys]
        else:
            chosen = [k for k in keys if rng.random() < 0.7] or [rng.choice(keys)]
            runs = [pending[k][: rng.randint(1, len(pending[k]))] for k in chosen]
        batch: list[Record] = []
        while runs and len(batch) < limit:
            i = 0 if rng is None else rng.randrange(len(runs))
            run = runs.pop(i)
            batch.append(run.pop(0))
            if run:  # in turn without rng; back where it was with one
                runs.insert(len(runs) if rng is None else i, run)
        return batch

    def commit(self, group: str, records: Sequence[Record]) -> None:
        """Offsets stored after the commit: the next fetch starts after the last one."""
        for r in records:
            key = (group, r.topic, r.partition)
            self.committed[key] = max(self.committed.get(key, 0), r.offset + 1)

    def rewind(self, group: str, topic: str, partition: int, by: int) -> int:
        """Lose `by` committed offsets (a reset group, a commit that never reached Kafka):
        those records come again. Returns how many will."""
        key = (group, topic, partition)
        now = self.committed.get(key, 0)
        self.committed[key] = max(0, now - by)
        return now - self.committed[key]


class _BusProducer:
    """What the relay sees as its Kafka producer: `produce_all` appends to the bus."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.refuse_from: int | None = None
        self.crash_after_produce = False

    def produce_all(
        self,
        records: Sequence[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]],
        timeout_s: float = 0.0,
    ) -> list[str | None]:
        results: list[str | None] = []
        for i, (topic, key, value, headers) in enumerate(records):
            if self.refuse_from is not None and i >= self.refuse_from:
                results.append("simulated: NOT_ENOUGH_REPLICAS")
                continue
            self.bus.append(topic, key, value, headers)
            results.append(None)
        if self.crash_after_produce:
            raise RelayCrashed("relay died after producing, before marking the rows sent")
        return results

    def close(self, timeout_s: float = 0.0) -> None:
        return None


class VirtualClock:
    """The saga's time: starts at the real time of a reset, moves only by `advance`."""

    def __init__(self) -> None:
        self.at = utcnow()

    def now(self) -> datetime:
        return self.at


# --- the harness ---------------------------------------------------------------------------


def _at_virtual_now(handle: Handler, clock: VirtualClock) -> Handler:
    def handle_at(tx: Tx, events: list[Any]) -> None:
        tx.now = clock.now()
        handle(tx, events)

    return handle_at


@dataclass
class _Service:
    spec: ServiceSpec
    conn: psycopg.Connection[Any]
    processor: Processor
    retrier: Retrier
    relay: Relay
    producer: _BusProducer


class SagaHarness:
    """The services of `specs` over one `Bus`, one step at a time (see the module's doc)."""

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        dsns: Mapping[str, str],
        settings: Settings,
        *,
        partitions: int = 1,
        forward: RetryPolicy = FORWARD,
        compensation: RetryPolicy = COMPENSATION,
        retry_tick_s: float = 1.0,
        on_reset: Callable[[datetime], None] | None = None,
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.settings = replace(settings, db_dsns={**settings.db_dsns, **dsns})
        self.forward = forward
        self.compensation = compensation
        self.retry_tick_s = retry_tick_s
        self.clock = VirtualClock()
        self.bus = Bus(partitions)
        self._on_reset = on_reset
        self.inbox = True
        self._services: dict[str, _Service] = {}
        for name in self.specs:
            conn = psycopg.connect(self.settings.dsn(name), autocommit=True)
            self._services[name] = self._wire(self.specs[name], conn)

    def _wire(self, spec: ServiceSpec, conn: psycopg.Connection[Any]) -> _Service:
        policies = {
            t: self.compensation if t in spec.compensations else self.forward for t in spec.consumes
        }
        settings = self.settings
        if not self.inbox:  # a window of one partition vouches for nothing (eventing/inbox.py)
            settings = replace(settings, inbox_retention_s=settings.inbox_partition_s)
        processor = Processor(
            spec.name,
            spec.consumes,
            _at_virtual_now(spec.handle, self.clock),
            settings,
            policies,
            archives=spec.archives,
        )
        producer = _BusProducer(self.bus)
        # The relay's own publish_once over the bus: a duck-typed producer, as Kafka's
        # wrapper has only produce_all and close for it to call.
        relay = Relay(self.settings.dsn(spec.name), cast(EventProducer, producer), batch=500)
        return _Service(spec, conn, processor, Retrier(processor), relay, producer)

    @property
    def names(self) -> list[str]:
        return list(self.specs)

    def close(self) -> None:
        for s in self._services.values():
            s.conn.close()
        if "payment" in self.specs:
            from payment_svc.handlers import gateway

            gateway(self.settings.dsn("payment")).close()

    def reset(self, *, partitions: int | None = None, inbox: bool = True) -> None:
        """Back to empty databases, an empty bus and the clock at the real time now.

        `inbox=False`: every event is outside the inbox's window, as a redelivery after a
        long outage or a consumer group reset would be, so every repeat is judged by the
        services' own records alone (README, "How long an event id must be remembered")."""
        self.clock.at = utcnow()
        self.inbox = inbox
        if self._on_reset is not None:
            self._on_reset(self.clock.at)
        self.bus = Bus(partitions or self.bus.partitions)
        for name, s in self._services.items():
            self._services[name] = self._wire(s.spec, s.conn)

    def conn(self, service: str) -> psycopg.Connection[Any]:
        return self._services[service].conn

    # -- the steps --------------------------------------------------------------------------

    def relay(
        self,
        service: str | None = None,
        *,
        crash_after_produce: bool = False,
        refuse_from: int | None = None,
    ) -> int:
        """Publish every service's unsent outbox rows (one round each) onto the bus; returns
        the rows marked sent. With a crash or a refusal, rows stay unsent for the next round."""
        sent = 0
        for s in self._pick(service):
            s.producer.crash_after_produce = crash_after_produce
            s.producer.refuse_from = refuse_from
            try:
                n = s.relay.publish_once(s.conn)
            except RelayCrashed:
                n = 0
            finally:
                s.producer.crash_after_produce = False
                s.producer.refuse_from = None
            sent += max(n, 0)
        return sent

    def deliver(
        self,
        service: str,
        *,
        limit: int | None = None,
        rng: random.Random | None = None,
        crash: Crash = Crash.NONE,
    ) -> Outcome | None:
        """One batch of `service`'s pending records through `Processor.process`; None if
        nothing was pending (or the process crashed before its commit)."""
        s = self._services[service]
        batch = self.bus.fetch(
            service, input_topics(s.spec), limit or self.settings.batch_size, rng
        )
        if not batch:
            return None
        if crash is Crash.BEFORE_COMMIT:
            with s.conn.transaction(force_rollback=True):
                s.processor.process(s.conn, batch)
            return None
        out = s.processor.process(s.conn, batch)
        if crash is not Crash.AFTER_COMMIT:
            self.bus.commit(service, batch)
        return out

    def backlog(self, service: str | None = None) -> int:
        return sum(self.bus.backlog(s.spec.name, input_topics(s.spec)) for s in self._pick(service))

    def retry(self, service: str | None = None, *, crash: Crash = Crash.NONE) -> int:
        """Time passes until every waiting retry is due (the clock moves one retry tick), then
        one pass of each service's retrier. Returns the messages tried (0: none was waiting,
        and no time passed)."""
        services = [s for s in self._pick(service) if _scalar(s.conn, _RETRYABLE)]
        if not services:
            return 0
        self.advance(self.retry_tick_s)
        tried = 0
        for s in services:
            s.conn.execute(
                "UPDATE parked SET next_attempt_at = now()"
                " WHERE state = 'retrying' AND next_attempt_at > now()"
            )
            with s.conn.transaction(force_rollback=crash is Crash.BEFORE_COMMIT):
                tried += s.retrier.run_once(s.conn)
        return tried

    def waiting_retries(self, service: str | None = None) -> int:
        """Messages waiting for a retry, whether or not a dead letter holds them back."""
        return sum(
            _scalar(s.conn, "SELECT count(*) FROM parked WHERE state = 'retrying'")
            for s in self._pick(service)
        )

    def run_timers(self, service: str | None = None, *, crash: Crash = Crash.NONE) -> int:
        """One run of every periodic task (the reaper), in its own transaction as the runtime
        runs it; returns what the tasks counted."""
        total = 0
        for s in self._pick(service):
            for task in s.spec.periodic:
                with s.conn.transaction(force_rollback=crash is Crash.BEFORE_COMMIT):
                    tx = Tx(s.conn, s.spec.name, self.settings)
                    tx.now = self.clock.now()
                    n = task.run(tx)
                    insert_outbox(s.conn, tx.rows)
                total += n if crash is Crash.NONE else 0
        return total

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward, in every database and for handlers alike."""
        self.clock.at += timedelta(seconds=seconds)
        for s in self._services.values():
            s.conn.execute("UPDATE sim_clock SET at = %s", (self.clock.at,))

    def redrive(self, service: str | None = None) -> list[dict[str, Any]]:
        """Every dead entry back to processing with a fresh budget (`saga dlq redrive --all`);
        returns the entries (service, seq, event_id, order_id, event_type)."""
        return [
            {"service": s.spec.name, **row}
            for s in self._pick(service)
            for row in RUNTIME_Q.all(s.conn, "dlq_redrive", {"seq": None, "all": True})
        ]

    def dead_letters(self, service: str | None = None) -> list[dict[str, Any]]:
        out = []
        for s in self._pick(service):
            for row in RUNTIME_Q.all(s.conn, "dlq_list", {"include_retrying": False}):
                out.append({"service": s.spec.name, **row})
        return out

    def publish(
        self,
        event: Event | None = None,
        *,
        raw: tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]] | None = None,
    ) -> Record:
        """Put a message on the bus as another system would: an event (encoded as our
        producers encode it) or raw bytes (topic, key, value, headers)."""
        if event is not None:
            from shared_events.codec import PRODUCER_OF
            from shared_events.topics import events_topic

            rec = encode(event)
            return self.bus.append(
                events_topic(PRODUCER_OF[type(event)]), rec.key, rec.value, rec.headers
            )
        assert raw is not None, "give an event or raw=(topic, key, value, headers)"
        return self.bus.append(*raw)

    def idle(self) -> bool:
        """Nothing left to do without time passing: no unsent outbox row, nothing pending."""
        for s in self._services.values():
            unsent = s.conn.execute("SELECT 1 FROM outbox WHERE sent_at IS NULL LIMIT 1")
            if unsent.fetchone() is not None:
                return False
        return self.backlog() == 0

    def step(self) -> bool:
        """One round of everything in turn: relays, consumers (until caught up), timers.
        Returns whether anything moved."""
        moved = False
        while self.relay() > 0:
            moved = True
        for name in self.names:
            while self.deliver(name) is not None:
                moved = True
            while self.relay(name) > 0:
                moved = True
        if self.run_timers() > 0:
            moved = True
        return moved

    def settle(self, *, retries: bool = True, max_rounds: int = 500) -> int:
        """Run until quiet: every row published and consumed, every retry run until it
        succeeds or is dead-lettered (`retries`). Returns the rounds it took."""
        for rounds in range(1, max_rounds + 1):
            if self.step():
                continue
            if retries and self.retry() > 0:
                continue
            return rounds
        raise AssertionError(
            f"not quiet after {max_rounds} rounds: backlog {self.backlog()}, "
            f"retries waiting {self.waiting_retries()}"
        )

    def _pick(self, service: str | None) -> list[_Service]:
        return list(self._services.values()) if service is None else [self._services[service]]

    # -- the checkout world ---------------------------------------------------------------

    def set_stock(self, sku: str, qty: int, price_minor: int = 1000) -> None:
        """A SKU in the order service's price list and inventory's stock (`saga stock set`)."""
        from inventory_svc.repository import set_stock
        from order_svc.repository import Q as ORDER_Q

        ORDER_Q.execute(
            self.conn("order"),
            "set_price",
            {"sku": sku, "price_minor": price_minor, "currency": "USD"},
        )
        set_stock(self.conn("inventory"), sku, qty, "harness")

    def place(
        self,
        items: Mapping[str, int],
        *,
        card: str = "tok_ok",
        country: str = "US",
        customer: str = "harness",
        key: str | None = None,
    ) -> uuid.UUID:
        """A checkout through the order service's own placement (as the API places it)."""
        from order_svc.placement import CheckoutRequest, place_order

        req = CheckoutRequest.from_dict(
            {
                "customer_id": customer,
                "items": [{"sku": s, "qty": q} for s, q in items.items()],
                "card_token": card,
                "ship_to": {"country": country},
            }
        )
        return place_order(self.conn("order"), req, key).order_id

    def gateway(self, mode: str, latency_ms: int = 0) -> None:
        """The simulated payment gateway `down`, `slow` (latency per call) or `up`; a fault
        lasts until changed (its window is in virtual time)."""
        from payment_svc.gateway import clear_fault, set_fault

        if mode == "up":
            clear_fault(self.conn("payment"))
        else:
            set_fault(self.conn("payment"), mode, for_s=10 * 365 * 86400, latency_ms=latency_ms)

    def trace(self, order_id: uuid.UUID) -> dict[str, Any]:
        """`saga trace ORDER_ID --json` over the scratch databases."""
        from saga_cli.trace import build_trace

        conns = {name: s.conn for name, s in self._services.items()}
        t = build_trace(self.conn("order"), self.settings, order_id, conns)
        assert t is not None, f"order {order_id} unknown to the order service"
        return t.as_dict()

    def audit(self) -> AuditReport:
        """`saga audit` over the scratch databases, for a quiet system: every order that is
        not terminal must be waiting on a named dead letter."""
        from saga_cli.audit import run_audit

        return run_audit(self.settings, older_than_s=-math.inf, settle_s=0.0)

    def stock_of(self, sku: str) -> dict[str, int]:
        row = (
            self.conn("inventory")
            .execute("SELECT on_hand, reserved, shipped FROM stock WHERE sku = %s", (sku,))
            .fetchone()
        )
        assert row is not None, f"no stock row for {sku}"
        return {"on_hand": row[0], "reserved": row[1], "shipped": row[2]}

    def rows(self, service: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.conn(service).execute(sql, params).fetchall()


def checkout_specs(
    names: Sequence[str] = SERVICES,
) -> list[ServiceSpec]:
    from saga_cli.services import spec_for

    return [spec_for(n) for n in names]


@contextmanager
def checkout_harness(
    settings: Settings | None = None,
    *,
    partitions: int = 1,
    durable: bool = False,
    prefix: str = "",
    **harness: Any,
) -> Iterator[SagaHarness]:
    """The four services of the checkout on scratch databases, dropped afterwards (`durable`:
    commits wait for the disk, as the services' own do)."""
    cfg = harness_settings(settings)
    specs = checkout_specs()
    with ScratchDatabases(cfg.pg_admin_dsn, specs, cfg, prefix, durable=durable) as dbs:
        h = SagaHarness(
            specs,
            {name: dbs.dsn(name) for name in dbs.names},
            cfg,
            partitions=partitions,
            on_reset=dbs.reset,
            **harness,
        )
        try:
            h.reset()
            yield h
        finally:
            h.close()


__all__ += ["checkout_specs"]
