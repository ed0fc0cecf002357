"""How the CLI's JSON writes a time: ISO 8601 with its offset, or null when there is none."""

from __future__ import annotations

from datetime import datetime

__all__ = ["iso"]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
