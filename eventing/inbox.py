"""The inbox: which consumed events are new, inside a window of bounded size.

Every event is remembered under its own `occurred_at`, in a table partitioned by that time
and kept for SAGA_INBOX_RETENTION_S (eventing/partitions.py drops whole partitions). Both
copies of one event carry the same occurred_at, so a duplicate lands in the same partition
as the original and ON CONFLICT finds it with one index probe.

An event whose occurred_at falls outside the window (older than the retention, or dated
beyond the partitions made ahead) is *unguarded*: the inbox cannot say whether it was seen,
so it is handed over as new and the services' own records decide (one reservation, one
payment, one shipment per order; the saga record checks its own steps). README, "How long
data is kept", works out why the window is long enough for every source of duplicates.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from eventing.parking import Parking
from eventing.partitions import covered, list_partitions
from eventing.queries import Queries
from eventing.settings import Settings
from shared_events.envelope import Event, utcnow

__all__ = ["Claim", "Inbox"]

Q = Queries.load("eventing")
_REFRESH_S = 1.0


class Claim:
    """What the inbox said about a list of events."""

    __slots__ = ("blocked", "fresh", "unguarded")

    def __init__(
        self,
        fresh: set[uuid.UUID],
        unguarded: set[uuid.UUID],
        blocked: frozenset[uuid.UUID] = frozenset(),
    ) -> None:
        self.fresh = fresh  # new (claimed now), including the unguarded ones
        self.unguarded = unguarded  # outside the window: new as far as the inbox can tell
        # Orders waiting behind a parked message (`claim_unblocked`): not claimed, not fresh.
        self.blocked = blocked


class Inbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._window: tuple[datetime, datetime] | None = None
        self._legacy = False
        self._checked_at = -1e9

    def _refresh(self, conn: psycopg.Connection[Any]) -> None:
        if time.monotonic() - self._checked_at < _REFRESH_S:
            return
        self._window = covered(list_partitions(conn, "inbox"), utcnow())
        self._legacy = bool(Q.scalar(conn, "inbox_legacy_present"))
        self._checked_at = time.monotonic()

    def _guarded(self, at: datetime, now: datetime) -> bool:
        if self._window is None:
            return False
        lo, hi = self._window
        step = timedelta(seconds=self.settings.inbox_partition_s)
        # One interval of margin: a partition is dropped only once it ended a whole
        # retention ago, so the one holding `at` outlives this claim even if the window
        # we read is a second old.
        floor = max(lo, now - timedelta(seconds=self.settings.inbox_retention_s) + step)
        return floor <= at < hi

    def _split(self, events: Sequence[Event]) -> tuple[dict[uuid.UUID, Event], set[uuid.UUID]]:
        now = utcnow()
        guarded: dict[uuid.UUID, Event] = {}
        unguarded: set[uuid.UUID] = set()
        for e in events:
            if self._guarded(e.occurred_at, now):
                guarded[e.event_id] = e
            else:
                unguarded.add(e.event_id)
        return guarded, unguarded

    def claim(self, conn: psycopg.Connection[Any], events: Sequence[Event]) -> Claim:
        """Claim every event in the caller's transaction; a second copy is not fresh."""
        if not events:
            return Claim(set(), set())
        self._refresh(conn)
        guarded, unguarded = self._split(events)
        fresh = set(unguarded)
        if guarded:
            rows = Q.rows(
                conn,
                "inbox_claim_many_with_legacy" if self._legacy else "inbox_claim_many",
                {
                    "event_ids": list(guarded),
                    "occurred_ats": [e.occurred_at for e in guarded.values()],
                },
            )
            fresh.update(r[0] for r in rows)
        return Claim(fresh, unguarded)

    def claim_unblocked(self, conn: psycopg.Connection[Any], events: Sequence[Event]) -> Claim:
        """As `claim`, except for events of orders that wait behind a parked message
        (eventing/parking.py): those are left unclaimed and their orders named in
        `blocked`. One statement answers both, a round trip less per batch."""
        if not events:
            return Claim(set(), set())
        self._refresh(conn)
        if self._legacy:  # only until the pre-partitioning inbox ages out: two statements
            held = frozenset(Parking.blocking_orders(conn, {e.order_id for e in events}))
            claim = self.claim(conn, [e for e in events if e.order_id not in held])
            return Claim(claim.fresh, claim.unguarded, held)
        guarded, unguarded = self._split(events)
        rows = Q.rows(
            conn,
            "inbox_claim_unblocked",
            {
                "order_ids": list({e.order_id for e in events}),
                "event_ids": list(guarded),
                "occurred_ats": [e.occurred_at for e in guarded.values()],
                "event_orders": [e.order_id for e in guarded.values()],
            },
        )
        blocked = frozenset(i for is_blocked, i in rows if is_blocked)
        fresh = {i for is_blocked, i in rows if not is_blocked}
        fresh |= {
            e.event_id for e in events if e.event_id in unguarded and e.order_id not in blocked
        }
        return Claim(fresh, unguarded, blocked)

    def forget(self) -> None:
        """Read the window again at the next claim (after maintenance changed it)."""
        self._checked_at = -1e9
