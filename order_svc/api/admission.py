"""Admission control for checkouts: a token bucket and a cap on in-flight sagas.

Pure bookkeeping (no I/O, the clock is injected) so the rules can be tested exactly; the
HTTP layer asks before placing an order and tells afterwards whether one was created.

Why both: the rate limit smooths bursts to what the pipeline can absorb per second, the
in-flight cap bounds the backlog itself. Under a flash sale the rate alone would still let
the backlog grow whenever the services fall behind; the cap stops that, so the latency of
an accepted order stays bounded and the surplus is refused early, with a hint when to retry.

Defaults (eventing/settings.py): SAGA_HTTP_RATE_LIMIT=2000 checkouts/s with bursts of
SAGA_HTTP_RATE_BURST=500, twice the 1,000/s design target so the rate only clips abuse;
SAGA_HTTP_MAX_IN_FLIGHT=5000, about 5 s of work at the target rate, past which an accepted
order would wait longer than its client should. 0 turns either limit off.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from order_svc.api.adaptive import AdaptiveLimit, Measured

__all__ = ["Admission", "InFlightCap", "Refusal", "TokenBucket", "retry_after_s"]

Clock = Callable[[], float]


def retry_after_s(wait_s: float) -> int:
    """Retry-After is whole seconds; never 0, which clients read as "retry now"."""
    return max(1, math.ceil(wait_s))


class TokenBucket:
    """`rate` requests/s on average, bursts of up to `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate ({rate}) must be > 0 and burst ({burst}) at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0.0 if a token was taken, else the seconds until one will be there."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now
            # The epsilon absorbs float error: refilled tenths must add up to a whole token.
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return (1.0 - self._tokens) / self.rate


class InFlightCap:
    """At most `cap` sagas not yet terminal (PENDING or CANCELLING).

    Counting them in the database on every request would cost a query per checkout, so the
    count is refreshed in the background (`refreshing` + `refreshed`), and what this process
    did since is added to it: placements still running (not committed, so not counted) and
    orders created since the refresh began (maybe counted, maybe not: assume not). The
    estimate may count a few orders twice until the next refresh; it never misses one, so
    the cap holds even against a burst that lands between two refreshes.
    """

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError(f"in-flight cap ({cap}) must be at least 1")
        self.cap = cap
        self._lock = threading.Lock()
        self._counted = 0  # sagas in flight by the last refresh
        self._running = 0  # admitted, placement not finished
        self._created = 0  # running total of orders created by finished placements
        self._mark = 0  # `_created` when the last refresh began

    def _estimate(self) -> int:
        return self._counted + self._running + self._created - self._mark

    @property
    def estimate(self) -> int:
        with self._lock:
            return self._estimate()

    def try_admit(self) -> bool:
        """Room for one more? Then it is taken: call `done` when the placement ends."""
        with self._lock:
            if self._estimate() >= self.cap:
                return False
            self._running += 1
            return True

    def done(self, created: bool) -> None:
        """The placement ended; `created` False if it made no saga (invalid, replay, error)."""
        with self._lock:
            self._running -= 1
            self._created += created

    def refreshing(self) -> int:
        """Call just before counting in the database; pass the result to `refreshed`."""
        with self._lock:
            return self._created

    def refreshed(self, mark: int, in_flight: int) -> None:
        with self._lock:
            self._counted = in_flight
            self._mark = mark


@dataclass(frozen=True)
class Refusal:
    reason: str  # "rate_limited" | "too_many_in_flight" | "busy" (the API's own queue)
    retry_after_s: int
    message: str


class Admission:
    """Both limits together; either may be off (None). With `adaptive`, the in-flight cap
    is the limit it finds (order_svc/api/adaptive.py), and Retry-After follows the drain rate."""

    def __init__(
        self,
        bucket: TokenBucket | None,
        cap: InFlightCap | None,
        cap_retry_after_s: int = 1,
        adaptive: AdaptiveLimit | None = None,
    ) -> None:
        self.bucket = bucket
        self.cap = cap
        self.adaptive = adaptive
        # How long a client should back off when the backlog is full: a place frees up as
        # soon as any saga ends, and they end all the time; a longer hint leaves room idle.
        self.cap_retry_after_s = cap_retry_after_s

    def measured(self, m: Measured) -> None:
        """New figures from the saga record: the adaptive limit moves, the cap with it."""
        if self.adaptive is not None and self.cap is not None:
            self.cap.cap = self.adaptive.update(m)

    def check(self) -> Refusal | None:
        """None: go ahead, and call `done` afterwards. Else: the refusal to answer with."""
        # The cap first: a request it refuses must not spend a token of the rate.
        if self.cap is not None and not self.cap.try_admit():
            return Refusal(
                "too_many_in_flight",
                retry_after_s(self.adaptive.wait_s())
                if self.adaptive is not None
                else self.cap_retry_after_s,
                f"{self.cap.cap} checkouts are already in progress; retry later",
            )
        if self.bucket is not None:
            wait = self.bucket.take()
            if wait > 0:
                if self.cap is not None:
                    self.cap.done(created=False)
                return Refusal(
                    "rate_limited",
                    retry_after_s(wait),
                    f"more than {self.bucket.rate:g} checkouts/s; retry later",
                )
        return None

    def done(self, created: bool) -> None:
        if self.cap is not None:
            self.cap.done(created)
