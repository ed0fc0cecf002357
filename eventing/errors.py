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


class PartitionMissing(psycopg.OperationalError):
    """A write found no partition for its time: maintenance is behind (or was not run).

    An OperationalError on purpose: every loop already retries those with backoff, which is
    right here, since the maintenance thread makes the partition within a pass; the message
    is never parked or dead-lettered for it.
    """


def missing_partition(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.errors.CheckViolation) and "no partition of relation" in str(exc)


def reraise_missing_partition(exc: BaseException) -> None:
    if missing_partition(exc):
        raise PartitionMissing(
            f"{str(exc).strip()}; the maintenance thread makes partitions ahead of time, so "
            "this resolves within a pass (if it persists, check that the service's "
            "maintenance runs: its warnings name what fails)"
        ) from exc


__all__ += ["PartitionMissing", "missing_partition", "reraise_missing_partition"]
