"""Test hook: die by SIGKILL at a chosen point of message processing.

`SAGA_CRASH_POINT=before_commit:PaymentCharged` kills the process after the handlers of a
batch holding a PaymentCharged ran, before the database commit; `after_commit:...` kills
it after the commit, before the Kafka offsets are stored. The crash tests use this to hit
the exact windows that effectively-once must survive. Unset in normal operation.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

from shared_events.envelope import Event

__all__ = ["maybe_crash"]

_POINT = os.environ.get("SAGA_CRASH_POINT", "")


def maybe_crash(where: str, events: Iterable[Event]) -> None:
    if not _POINT:
        return
    point, _, event_type = _POINT.partition(":")
    if point == where and any(e.event_type == event_type for e in events):
        from eventing.logging import get_logger

        get_logger(__name__).warning("crash point reached: SIGKILL", point=_POINT)
        os.kill(os.getpid(), signal.SIGKILL)
