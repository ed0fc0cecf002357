"""Test hook: die by SIGKILL at a chosen point of message processing.

`SAGA_CRASH_POINT=before_commit:PaymentCharged` kills the process after the handlers of a
batch holding a PaymentCharged ran, before the database commit; `after_commit:...` kills
it after the commit, before the Kafka offsets are stored; `after_produce:...` kills the
relay after Kafka acknowledged a batch holding one, before it marks the rows sent. The
crash tests use this to hit the exact windows that effectively-once must survive. Unset in
normal operation.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

from shared_events.envelope import Event

__all__ = ["arm", "maybe_crash"]

_armed = {"point": ""}


def arm(point: str) -> None:
    """Set the crash point (SAGA_CRASH_POINT, read by the settings) for this process."""
    _armed["point"] = point


def maybe_crash(where: str, events: Iterable[Event] = (), event_types: Iterable[str] = ()) -> None:
    """SIGKILL here if the armed point is `where` and names one of these events' types."""
    _POINT = _armed["point"]
    if not _POINT:
        return
    point, _, event_type = _POINT.partition(":")
    if point == where and (
        any(e.event_type == event_type for e in events) or event_type in set(event_types)
    ):
        from eventing.logging import get_logger

        get_logger(__name__).warning("crash point reached: SIGKILL", point=_POINT)
        os.kill(os.getpid(), signal.SIGKILL)
