"""Durations as operators type them: 500ms, 30s, 5m, 1h (a bare number is seconds)."""

from __future__ import annotations

import re

import click

__all__ = ["as_seconds", "format_duration", "parse_duration"]

_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float:
    """Seconds in `value`; ValueError with an example of what is accepted."""
    m = _PATTERN.fullmatch(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a duration: write e.g. 500ms, 30s, 5m or 1h")
    return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.3g}s"
    return f"{seconds / 60:.1f}m"


def as_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A click option callback: `--for 30s` arrives in the command as 30.0."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
