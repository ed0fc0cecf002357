"""Turning consumed records into local transactions: inbox + effect + outbox, atomically.

Fast path: a whole batch in one transaction (one commit for many events). If any handler
fails, the batch is rolled back and replayed on the slow path, where each event gets a
savepoint so the failing one can be parked or dead-lettered while the others commit.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg

from eventing import tracing
from eventing.archive import ArchivedTable, maybe_archived, restore
from eventing.crashpoints import maybe_crash
from eventing.errors import reraise_missing_partition
from eventing.inbox import Inbox
from eventing.kafka.clients import Record
from eventing.logging import for_event, get_logger
from eventing.outbox import OutboxRow, insert_outbox
from eventing.parking import Parking
from eventing.retry import RetryPolicy
from eventing.settings import Settings
from eventing.tx import Handler, Tx
from shared_events.codec import PoisonMessage, decode, header_value, model_from_headers
from shared_events.envelope import Event, utcnow

__all__ = ["Decoded", "Outcome", "Processor", "decode_record"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Decoded:
    record: Record
    event: Event | None
    poison: PoisonMessage | None


def decode_record(
    rec: Record, consumes: frozenset[type[Event]] | None = None, service: str | None = None
) -> Decoded:
    """Decode `rec`; one whose headers name a type we do not consume, or that we produced
    ourselves (a service has already recorded what it emits), is not decoded at all."""
    if service is not None and header_value(rec.headers, "producer") == service:
        return Decoded(rec, None, None)
    model = model_from_headers(rec.headers)
    if consumes is not None and model is not None and model not in consumes:
        return Decoded(rec, None, None)
    try:
        return Decoded(rec, decode(rec.value, rec.headers, model), None)
    except PoisonMessage as exc:
        return Decoded(rec, None, exc)


_OUTCOME = {
    "handled": "handled",
    "duplicates": "duplicate",
    "parked": "parked",
    "dead": "dead",
    "ignored": "ignored",
}


@dataclass
class Outcome:
    handled: int = 0
    duplicates: int = 0
    parked: int = 0
    dead: int = 0
    ignored: int = 0
    events: list[Event] = field(default_factory=list)
    # (topic, outcome label) -> records: what the metrics count.
    by_topic: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, kind: str, topic: str, n: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + n)
        self.by_topic[(topic, _OUTCOME[kind])] += n


class _HandlerFailed(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Processor:
    def __init__(
        self,
        service: str,
        consumes: frozenset[type[Event]],
        handle: Handler,
        settings: Settings,
        policies: Mapping[type[Event], RetryPolicy] | None = None,
        archives: tuple[ArchivedTable, ...] = (),
    ) -> None:
        self.service = service
        self.consumes = consumes
        self.handle = handle
        self.settings = settings
        self.policies = policies or {}
        self.archives = archives
        self.parking = Parking(service)
        self.inbox = Inbox(settings)

    def policy_for(self, event_type: type[Event]) -> RetryPolicy:
        return self.policies.get(event_type, self.settings.retry_forward)

    # -- one event -------------------------------------------------------------------

    def _run_handler(
        self, conn: psycopg.Connection[Any], events: list[Event], unguarded: set[uuid.UUID]
    ) -> list[OutboxRow]:
        self._restore(conn, events)
        tx = Tx(conn, self.service, self.settings, cause=events[0] if len(events) == 1 else None)
        tx.unguarded = frozenset(unguarded)
        with tracing.handling(self.service, events) as spans:
            tx.traceparents = spans.contexts
            self.handle(tx, events)
        return tx.rows

    def _restore(self, conn: psycopg.Connection[Any], events: list[Event]) -> None:
        """Bring back archived records of these orders: handlers read active tables only."""
        if not self.archives:
            return
        now = utcnow()
        after = self.settings.archive_after_s
        ids = {e.order_id for e in events if maybe_archived(e.order_id, now, after)}
        if ids and restore(conn, self.archives, ids):
            log.info("records of settled orders brought back from the archive", orders=len(ids))

    def apply_one(self, conn: psycopg.Connection[Any], event: Event) -> bool:
        """Inbox claim + effect + outbox inside the caller's transaction; False if a duplicate."""
        claim = self.inbox.claim(conn, [event])
        if event.event_id not in claim.fresh:
            return False
        insert_outbox(conn, self._run_handler(conn, [event], claim.unguarded))
        return True

    def stale(self, event: Event) -> str | None:
        """Why `event` must not be applied (too old to be checked against our records)."""
        horizon = utcnow() - timedelta(seconds=self.settings.stale_after_s)
        if event.occurred_at >= horizon:
            return None
        return (
            f"stale: occurred at {event.occurred_at.isoformat()}, more than "
            f"SAGA_ARCHIVE_AFTER_S + SAGA_ARCHIVE_RETENTION_S ({self.settings.stale_after_s:g}"
            " s) ago; the records that would show whether it was already applied may be gone,"
            " so it is not applied (a repeat could charge or ship twice)"
        )

    # -- a batch ---------------------------------------------------------------------

    def process(self, conn: psycopg.Connection[Any], records: list[Record]) -> Outcome:
        items = [decode_record(r, self.consumes, self.service) for r in records]
        try:
            try:
                return self._fast(conn, items)
            except _HandlerFailed as failed:
                log.info(
                    "batch replayed one event at a time",
                    batch=len(records),
                    error=str(failed.cause),
                )
                return self._slow(conn, items)
        except psycopg.errors.CheckViolation as exc:  # the outbox or inbox had no partition
            reraise_missing_partition(exc)
            raise

    def _wanted(self, d: Decoded) -> bool:
        # A service has already recorded what it emits: its own events are never handled
        # (usually dropped before decoding, by their `producer` header).
        return (
            d.event is not None
            and type(d.event) in self.consumes
            and d.event.producer != self.service
        )

    def _triage(
        self, conn: psycopg.Connection[Any], d: Decoded, blocked: set[uuid.UUID], out: Outcome
    ) -> Event | None:
        """Set aside what must not be handled now; return the event to handle, if any."""
        if d.poison is not None:
            self._dead_letter_poison(conn, d, out)
            return None
        if d.event is None or not self._wanted(d):
            out.add("ignored", d.record.topic)  # another service's event on a shared topic
            return None
        stale = self.stale(d.event)
        if stale is not None:
            self._dead_letter_stale(conn, d, stale, out)
            return None
        if d.event.order_id in blocked:
            self._park_behind(conn, d, out)
            return None
        return d.event

    def _blocked(self, conn: psycopg.Connection[Any], items: list[Decoded]) -> set[uuid.UUID]:
        wanted = {d.event.order_id for d in items if d.event is not None and self._wanted(d)}
        return self.parking.blocking_orders(conn, wanted)

    def _fast(self, conn: psycopg.Connection[Any], items: list[Decoded]) -> Outcome:
        out = Outcome()
        with conn.transaction():
            pairs = [(d, ev) for d in items if (ev := self._triage(conn, d, set(), out))]
            claim = self.inbox.claim_unblocked(
                conn, list({e.event_id: e for _, e in pairs}.values())
            )
            fresh = claim.fresh
            fresh_events: list[Event] = []
            for d, ev in pairs:
                if ev.order_id in claim.blocked:
                    self._park_behind(conn, d, out)
                elif ev.event_id not in fresh:
                    out.add("duplicates", d.record.topic)
                else:
                    fresh.discard(ev.event_id)  # a second copy in this batch is a duplicate
                    fresh_events.append(ev)
                    out.by_topic[(d.record.topic, "handled")] += 1
            outbox: list[OutboxRow] = []
            if fresh_events:
                try:
                    outbox = self._run_handler(conn, fresh_events, claim.unguarded)
                except psycopg.OperationalError:
                    raise
                except Exception as exc:
                    reraise_missing_partition(exc)
                    raise _HandlerFailed(exc) from exc
            out.handled = len(fresh_events)
            out.events = fresh_events
            insert_outbox(conn, outbox)
            maybe_crash("before_commit", out.events)
        return out

    def _slow(self, conn: psycopg.Connection[Any], items: list[Decoded]) -> Outcome:
        out = Outcome()
        with conn.transaction():
            blocked = self._blocked(conn, items)
            for d in items:
                ev = self._triage(conn, d, blocked, out)
                if ev is None:
                    continue
                with for_event(ev):
                    try:
                        with conn.transaction():
                            if self.apply_one(conn, ev):
                                out.add("handled", d.record.topic)
                                out.events.append(ev)
                            else:
                                out.add("duplicates", d.record.topic)
                    except psycopg.OperationalError:
                        raise
                    except Exception as exc:
                        reraise_missing_partition(exc)
                        self._park_failed(conn, d, exc, out)
                        blocked.add(ev.order_id)
            maybe_crash("before_commit", out.events)
        return out

    # -- setting messages aside (eventing/parking.py owns how) -----------------------------

    def _dead_letter_poison(self, conn: psycopg.Connection[Any], d: Decoded, out: Outcome) -> None:
        assert d.poison is not None
        self.parking.dead(
            conn,
            d.record,
            kind=d.poison.kind,
            reason=d.poison.reason,
            blocks=False,
            message="poison message dead-lettered",
            action="inspect with `saga dlq show`",
        )
        out.add("dead", d.record.topic)

    def _dead_letter_stale(
        self, conn: psycopg.Connection[Any], d: Decoded, reason: str, out: Outcome
    ) -> None:
        self.parking.dead(
            conn,
            d.record,
            kind="stale",
            reason=reason,
            event=d.event,
            blocks=False,
            message="stale event dead-lettered",
            action="inspect with `saga dlq show`; it is not applied on redrive either",
        )
        out.add("dead", d.record.topic)

    def _park_behind(self, conn: psycopg.Connection[Any], d: Decoded, out: Outcome) -> None:
        assert d.event is not None
        with for_event(d.event):
            self.parking.behind(conn, d.record, d.event)
        out.add("parked", d.record.topic)

    def _park_failed(
        self, conn: psycopg.Connection[Any], d: Decoded, exc: BaseException, out: Outcome
    ) -> None:
        ev = d.event
        assert ev is not None
        verdict = self.parking.verdict(exc, self.policy_for(type(ev)), attempts=1)
        if verdict.dead:
            self.parking.dead(conn, d.record, kind=verdict.kind, reason=verdict.error, event=ev)
            out.add("dead", d.record.topic)
        else:
            self.parking.retry_later(conn, d.record, ev, verdict)
            out.add("parked", d.record.topic)
