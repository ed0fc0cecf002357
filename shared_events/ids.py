"""Time-ordered identifiers (UUID version 7, RFC 9562) for the ids this system creates.

Why v7 and not v4: the first 48 bits are the creation time in milliseconds, so ids made one
after another sort together. Every table keyed by them (inbox, saga record, reservations,
payments) then inserts at the right edge of its index instead of at random pages, and a
service can tell from an order id alone that the order is younger than some age, which
spares a look into the archive for every new saga (see eventing/archive.py).

Ids from other systems may be any UUID version; nothing relies on v7 for correctness, only
for speed: `created_at` returns None for them.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

__all__ = ["created_at", "new_id"]

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62


def new_id(now_ms: int | None = None) -> uuid.UUID:
    """A new UUIDv7: 48 bits of Unix milliseconds, then 74 random bits."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 used
    rand_a = (rand >> 62) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    return uuid.UUID(
        int=(ms & ((1 << 48) - 1)) << 80 | _VERSION_7 | rand_a << 64 | _VARIANT | rand_b
    )


def created_at(value: uuid.UUID) -> datetime | None:
    """When a v7 id was made (its embedded clock), or None for any other kind of UUID."""
    if value.version != 7:
        return None
    try:
        return datetime.fromtimestamp((value.int >> 80) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        # A clock past year 9999 (48 bits of milliseconds reach 10889): no v7 id this
        # system made, so it tells nothing, like an id of another kind.
        return None
