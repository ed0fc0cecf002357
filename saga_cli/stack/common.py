"""What every part of the stack shares: its error, the progress callback, versions, timeouts.

Kept apart so that the Kafka, PostgreSQL and prerequisite modules can all use these without
importing one another.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["KAFKA_VERSION", "START_TIMEOUT_S", "STOP_TIMEOUT_S", "Echo", "StackError"]

# Also the version that stack_files/pom.xml fetches; a unit test keeps the two in step.
KAFKA_VERSION = "4.1.1"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0

# Where `up` and `down` report progress (click.echo from the CLI, nothing by default).
Echo = Callable[[str], None]


class StackError(Exception):
    """A stack operation failed; the message says what to do about it."""
