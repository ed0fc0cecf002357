"""Retry budgets and backoff: exponential with full jitter, capped.

Full jitter (sleep = uniform(0, min(cap, base * 2**n))) spreads retries of many messages
that failed together, so a recovering dependency is not hit by a synchronized storm. The
budgets below are the defaults; SAGA_RETRY_{FORWARD,COMPENSATION}_* set them (settings).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["COMPENSATION", "FORWARD", "RetryPolicy", "backoff_s"]


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1-based)."""
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0, ceiling)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    max_age_s: float
    base_delay_s: float
    max_delay_s: float

    def next_delay_s(self, attempt: int) -> float:
        return backoff_s(attempt, self.base_delay_s, self.max_delay_s)

    def exhausted(self, attempts: int, first_failed_at: datetime, now: datetime) -> bool:
        return attempts >= self.max_attempts or now - first_failed_at >= timedelta(
            seconds=self.max_age_s
        )


# Forward steps give up sooner: the saga then compensates or waits in the DLQ.
FORWARD = RetryPolicy(8, 300.0, 0.2, 30.0)
# Compensations (refunds, releases) must not be dropped: a far longer budget.
COMPENSATION = RetryPolicy(30, 3600.0, 0.5, 120.0)
