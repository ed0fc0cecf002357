"""How handlers tell the runtime what went wrong, so it knows whether to retry."""

from __future__ import annotations

import psycopg

__all__ = ["PermanentError", "TransientError", "classify"]


class TransientError(Exception):
    """Worth retrying later: a dependency is unavailable, a timeout, a lost connection."""


class PermanentError(Exception):
    """Retrying cannot help: the message goes to the dead-letter queue at once."""


def classify(exc: BaseException) -> str:
    """'transient' or 'permanent'.

    Unexpected exceptions count as permanent: a bug does not fix itself with retries, and
    the DLQ keeps the message for a redrive once the code is fixed.
    """
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return "transient"
    if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
        return "transient"
    return "permanent"
