"""What to say about an order id the saga record does not hold (any more).

Ended orders are archived SAGA_ARCHIVE_AFTER_S after they end and dropped with their
archive partition after SAGA_ARCHIVE_RETENTION_S. An id we made ourselves is a UUIDv7,
which carries its creation time: for it we can say that it is older than that window
rather than unknown.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from eventing.settings import Settings
from shared_events.envelope import utcnow
from shared_events.ids import created_at

__all__ = ["beyond_retention", "missing_order"]


def _kept_s(settings: Settings) -> float:
    return settings.archive_after_s + settings.archive_retention_s


def beyond_retention(order_id: uuid.UUID, settings: Settings) -> bool:
    """True when the id itself shows the order is older than everything we keep."""
    born = created_at(order_id)
    return born is not None and born < utcnow() - timedelta(seconds=_kept_s(settings))


def missing_order(order_id: uuid.UUID, settings: Settings) -> str:
    kept = (
        f"orders are kept for SAGA_ARCHIVE_AFTER_S + SAGA_ARCHIVE_RETENTION_S "
        f"({_kept_s(settings):g} s) after they end"
    )
    if beyond_retention(order_id, settings):
        born = created_at(order_id)
        assert born is not None
        return (
            f"order {order_id} was created at {born:%Y-%m-%d %H:%M:%S}Z, longer ago than "
            f"{kept}: its record has been deleted"
        )
    return (
        f"no order {order_id} in the order database (placed elsewhere and not seen yet, or "
        f"older than {kept})"
    )
