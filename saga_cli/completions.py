"""Sagas of one bench run that ended, counted window by window as they end.

A soak cannot measure at the end what a short bench measures at the end: with a compressed
retention the archive drops the run's first orders long before the last ones are placed.
So completions are counted while they happen, tick after tick, over consecutive windows of
`terminal_at` (database clock) that never overlap and leave no gap:

- a window ends `lag_s` before the database's now: `terminal_at` is the start of the
  transaction that ended the saga, which commits a little later, and a row that commits
  after we counted its window would be missed for good;
- the scan is bounded below by `created_at`, so that it does not read the whole run every
  tick: any order that ends after a snapshot of the in-flight orders was in flight then (or
  placed after it), so it was placed no earlier than the oldest of them, give or take a
  placing transaction (`_PLACING_SLACK`).

Latencies go into a bounded histogram (1 % wide buckets) for the whole run, and are kept
exactly for the current window only: memory does not grow with the run's length.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

__all__ = ["CompletionCounter", "LatencyHistogram", "Window", "percentile"]

_PLACING_SLACK = timedelta(seconds=60)
_GROWTH = 1.01

_IN_FLIGHT = """
SELECT now() AS at, count(*) AS n, min(created_at) AS oldest FROM orders
WHERE customer_id = %(customer)s AND status IN ('PENDING', 'CANCELLING')
"""

_ENDED = """
SELECT extract(epoch FROM terminal_at - created_at)::float8 * 1000, status, cancel_reason,
       terminal_at
FROM orders_all
WHERE customer_id = %(customer)s AND created_at >= %(since)s
  AND terminal_at > %(lo)s AND terminal_at <= %(hi)s
"""


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class LatencyHistogram:
    """Latencies in buckets 1 % wide: percentiles within 1 %, in constant memory."""

    buckets: Counter[int] = field(default_factory=Counter)
    count: int = 0
    max_ms: float = 0.0

    def add(self, ms: float) -> None:
        self.buckets[math.floor(math.log(max(ms, 0.01), _GROWTH))] += 1
        self.count += 1
        self.max_ms = max(self.max_ms, ms)

    def quantile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank, seen = q * (self.count - 1), 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen > rank:
                return min(math.pow(_GROWTH, b + 0.5), self.max_ms)  # the bucket's middle
        return self.max_ms


@dataclass
class Window:
    """Sagas that ended in one window of `terminal_at`."""

    start: datetime
    end: datetime
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    def p99_ms(self) -> float | None:
        return percentile(sorted(self.latencies_ms), 0.99)


class CompletionCounter:
    """Counts the run's ended sagas over consecutive windows; see the module's docstring."""

    def __init__(self, dsn: str, customer: str) -> None:
        self._dsn, self.customer = dsn, customer
        self.conn = self._connect()
        (start,) = self._rows("SELECT now()", {})[0]
        self.start: datetime = start
        self.counted_until: datetime = start
        self.window = Window(start, start)
        self.total = 0
        self.histogram = LatencyHistogram()
        self.outcomes: Counter[str] = Counter()
        self.in_flight = 0
        self.now: datetime = start
        self.last_terminal: datetime = start
        # (snapshot time, oldest order in flight then or the snapshot time if none), oldest first
        self._snapshots: deque[tuple[datetime, datetime]] = deque()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)

    def _rows(self, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        # Once more on a new connection when the old one broke: a soak of hours should
        # outlive a dropped connection, and these reads can simply be repeated (nothing
        # is counted until they return).
        try:
            return self.conn.execute(query, params).fetchall()
        except psycopg.OperationalError:
            self.conn.close()
            self.conn = self._connect()
            return self.conn.execute(query, params).fetchall()

    def close(self) -> None:
        self.conn.close()

    def _snapshot(self) -> datetime:
        at, n, oldest = self._rows(_IN_FLIGHT, {"customer": self.customer})[0]
        self.in_flight = int(n)
        self._snapshots.append((at, oldest or at))
        return at  # type: ignore[no-any-return]

    def _since(self, lo: datetime) -> datetime:
        # The latest snapshot taken no later than `lo`: every saga ending after `lo` was in
        # flight then, or not yet placed.
        while len(self._snapshots) > 1 and self._snapshots[1][0] <= lo:
            self._snapshots.popleft()
        if self._snapshots and self._snapshots[0][0] <= lo:
            return self._snapshots[0][1] - _PLACING_SLACK
        return self.start - _PLACING_SLACK

    def advance(self, limit: datetime, lag: timedelta) -> datetime:
        """Count what ended after `counted_until`, up to `limit` but no later than the
        database's now - `lag`; returns how far it has counted."""
        now = self._snapshot()
        self.now = now
        until = min(limit, now - lag)
        if until <= self.counted_until:
            return self.counted_until
        rows = self._rows(
            _ENDED,
            {
                "customer": self.customer,
                "since": self._since(self.counted_until),
                "lo": self.counted_until,
                "hi": until,
            },
        )
        for ms, status, reason, ended in rows:
            self.last_terminal = max(self.last_terminal, ended)
            self.window.latencies_ms.append(ms)
            self.histogram.add(ms)
            self.outcomes[f"{status}({reason})" if reason else status] += 1
        self.total += len(rows)
        self.counted_until = self.window.end = until
        return until

    def close_window(self) -> Window:
        """The window counted so far; the next one starts where it ended."""
        done = self.window
        self.window = Window(self.counted_until, self.counted_until)
        return done
