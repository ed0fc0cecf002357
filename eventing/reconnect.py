"""Reconnecting with backoff: the one helper for every loop that waits out an outage.

A loop that talks to something that can go away (its database, Kafka, a port that a
previous instance still holds) retries with full-jitter exponential backoff
(`eventing.retry.backoff_s`), wakes at once when the service stops, and says so once per
outage, not once per attempt: a warning when the first attempt fails (with the error and
the caller's fields), an info line when an attempt succeeds again (after how long, after
how many attempts). A success resets the backoff.

Two ways to use it:

- `run(op, transient)` calls `op` until it returns, retrying the `transient` exceptions.
  An `op` that is a long-running loop says it is connected by calling `succeeded()`
  itself; if it does not, a failure after `healthy_after_s` of running starts a new outage.
- A loop of the caller's own calls `failed(error, **fields)` after a failed attempt (it
  waits the backoff; False: stopped meanwhile) and `succeeded()` after a good one; or
  `note(...)` where the failure is seen and `wait(stop)` where the loop waits.

One instance per loop (per thread): it keeps that loop's outage.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from eventing.logging import get_logger
from eventing.retry import backoff_s

__all__ = ["Reconnect", "Stop"]

T = TypeVar("T")
_log = get_logger(__name__)


class Stop(Protocol):
    """What a loop waits on: `threading.Event` (or a fake one in tests)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def _described(error: BaseException | str | None) -> dict[str, Any]:
    if error is None:
        return {}
    return {"error": error if isinstance(error, str) else str(error).strip()}


class Reconnect:
    """One loop's outages of one dependency: backoff, the stop, one line each way.

    `outage` is the warning logged when an outage starts (None: the caller logs for
    itself), `resumed` the info line when it ends (None: none). `log` is the caller's
    logger, so the lines come from the caller's module."""

    def __init__(
        self,
        outage: str | None,
        *,
        resumed: str | None = None,
        stop: Stop | None = None,
        base_s: float = 0.2,
        cap_s: float = 5.0,
        healthy_after_s: float = 30.0,
        log: Any = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.outage = outage
        self.resumed = resumed
        self.stop: Stop = stop if stop is not None else threading.Event()
        self.base_s = base_s
        self.cap_s = cap_s
        self.healthy_after_s = healthy_after_s
        self.attempts = 0  # failed attempts in the current outage; 0: none
        self.delay_s = 0.0  # the backoff after the last failed attempt
        self._log = log if log is not None else _log
        self._clock = clock
        self._rng = rng
        self._since = 0.0

    def note(self, error: BaseException | str | None = None, **fields: Any) -> None:
        """Count one failed attempt and choose its backoff; the first of an outage is
        logged, with the error, `fields` and the backoff."""
        self.attempts += 1
        self.delay_s = backoff_s(self.attempts, self.base_s, self.cap_s, self._rng)
        if self.attempts > 1:
            return
        self._since = self._clock()
        if self.outage is not None:
            self._log.warning(
                self.outage, **_described(error), **fields, retry_in_s=round(self.delay_s, 2)
            )

    def wait(self, stop: Stop | None = None) -> bool:
        """Wait the backoff of the last failed attempt, or until `stop` (default: the one
        given at construction) is set. True: try again; False: stopped."""
        return not (stop if stop is not None else self.stop).wait(self.delay_s)

    def failed(self, error: BaseException | str | None = None, **fields: Any) -> bool:
        """`note` then `wait`: True to try again, False when stopped meanwhile."""
        self.note(error, **fields)
        return self.wait()

    def succeeded(self) -> None:
        """The dependency answers: an outage in progress ends, with one line."""
        if self.attempts and self.resumed is not None:
            self._log.info(
                self.resumed,
                after_s=round(self._clock() - self._since, 1),
                attempts=self.attempts,
            )
        self.attempts = 0

    def run(
        self,
        op: Callable[[], T],
        transient: tuple[type[BaseException], ...],
        **fields: Any,
    ) -> T | None:
        """Call `op` until it returns (its result) or the stop is set while backing off
        (None). Only `transient` exceptions are retried; any other propagates. `op` is
        called at least once, even when the stop is already set."""
        while True:
            started = self._clock()
            try:
                result = op()
            except transient as exc:
                if self.attempts and self._clock() - started >= self.healthy_after_s:
                    self.attempts = 0  # it had been up for a while: a new outage
                if not self.failed(exc, **fields):
                    return None
                continue
            self.succeeded()
            return result
