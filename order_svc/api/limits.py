"""What the checkout API accepts: enforced by `app`, published by `openapi`."""

from __future__ import annotations

__all__ = ["MAX_BODY_BYTES", "MAX_KEY_LEN"]

# A POST /orders body over this is refused with 413.
MAX_BODY_BYTES = 64 * 1024
# An Idempotency-Key header: 1 to this many printable characters.
MAX_KEY_LEN = 255
