"""Order ids tell their age only when they are v7 ids with a clock datetime can hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from eventing.archive import maybe_archived
from shared_events.ids import created_at, new_id


def test_a_new_id_tells_when_it_was_made() -> None:
    assert created_at(new_id(now_ms=1_700_000_000_000)) == datetime.fromtimestamp(
        1_700_000_000, UTC
    )
    assert created_at(uuid.uuid4()) is None


def test_a_v7_id_with_a_clock_past_year_9999_tells_nothing() -> None:
    # From a fuzzed event: version 7 bits, and 48 bits of milliseconds in the year 10311.
    far = uuid.UUID("ef67faa0-2a68-7b96-9a74-a0e0e0b4bcac")
    assert far.version == 7
    assert created_at(far) is None
    # So the archive is looked into, as for any id of another system.
    assert maybe_archived(far, datetime.now(UTC), 300.0)
