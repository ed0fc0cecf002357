"""An in-flight limit for sagas that follows their latency toward a target.

A fixed cap fits one machine and one load: set high, a flash crowd fills it and every
accepted saga waits seconds; set low, a faster machine idles. This limit is found instead,
in the manner of TCP Vegas and gradient concurrency limiters, from what the saga record
measures every 0.15 s (order_svc/api/serving.py): the p99 of placed-to-terminal over the
sagas that ended in the last window, how many end per second, and how many are in flight.

The limit steers the window's p99 to a setpoint below the target (`aim`, 80 % of it), not to
the target itself: a controller that holds the window's p99 at the target leaves every
other window above it, so the p99 over a whole run, the figure a user sees, would exceed the
target (by 11-21 % in `saga bench --curve` runs when it steered to the target).

- Latency above the setpoint: the limit shrinks in proportion (setpoint / p99, at most halving),
  then holds for one latency period, because the sagas that end now were admitted one
  latency ago and would otherwise be counted against the limit again and again.
- Latency under the setpoint while the limit is what holds admissions back (in flight near
  it): the limit grows by up to 10 % a step, in proportion to the headroom left.
- Otherwise it holds: a limit nobody reaches tells nothing about capacity.

It stays within [floor, ceiling] (SAGA_HTTP_MIN_IN_FLIGHT, SAGA_HTTP_MAX_IN_FLIGHT). Every
API process computes it from the same database figures and checks it against the same
database count, so several processes enforce one limit (each may overshoot by what it
admitted since its last count, 0.15 s worth).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AIM", "AdaptiveLimit", "Measured"]

Clock = Callable[[], float]

# Grow only when admissions come close to the limit: 80 % of it in flight.
_BINDING = 0.8
_GROWTH = 0.10
# The setpoint as a share of the target: room for the window-to-window spread of the p99.
AIM = 0.8


@dataclass(frozen=True)
class Measured:
    """The saga record's figures over the last window."""

    p99_s: float | None  # of sagas that ended in the window; None if none did
    completed_per_s: float
    in_flight: int


class AdaptiveLimit:
    def __init__(
        self,
        target_s: float,
        floor: int,
        ceiling: int,
        clock: Clock,
        initial: int | None = None,
        aim: float = AIM,
    ) -> None:
        if target_s <= 0 or floor < 1 or ceiling < floor or not 0 < aim <= 1:
            raise ValueError(
                f"latency target ({target_s}) must be > 0, 1 <= floor ({floor}) <= "
                f"ceiling ({ceiling}) and 0 < aim ({aim}) <= 1"
            )
        self.target_s = target_s
        self.setpoint_s = target_s * aim
        self.floor = floor
        self.ceiling = ceiling
        self._clock = clock
        self._limit = float(initial if initial is not None else max(floor, ceiling // 10))
        self._hold_until = -math.inf
        self.last: Measured | None = None

    @property
    def limit(self) -> int:
        return int(self._limit)

    def update(self, m: Measured) -> int:
        """Take one measurement; returns the new limit."""
        self.last = m
        now = self._clock()
        p99 = m.p99_s
        if p99 is not None and p99 > self.setpoint_s:
            if now >= self._hold_until:
                factor = max(0.5, self.setpoint_s / p99)
                self._limit = max(float(self.floor), self._limit * factor)
                self._hold_until = now + min(p99, 5.0)
        elif m.in_flight >= _BINDING * self._limit and now >= self._hold_until:
            headroom = 1.0 if p99 is None else 1.0 - p99 / self.setpoint_s
            step = max(1.0, self._limit * _GROWTH * headroom)
            self._limit = min(float(self.ceiling), self._limit + step)
        return self.limit

    def wait_s(self) -> float:
        """How long until a place frees up at the measured drain rate."""
        m = self.last
        if m is None or m.completed_per_s <= 0:
            return 1.0
        excess = max(1, m.in_flight - self.limit + 1)
        return excess / m.completed_per_s
