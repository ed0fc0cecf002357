"""`saga dlq` as an operator types it: ids it cannot read, entries that do not exist.

Poison input, a refund that runs out of retries, its redrive by two operators at once and
the trace and audit meanwhile run in one process in tests/sim/test_dlq.py (the harness, the
same `saga_cli.dlq` functions).
"""

from __future__ import annotations

import pytest

from tests.conftest import SagaRunner

pytestmark = pytest.mark.e2e


def test_bad_and_unknown_dlq_ids_get_clear_errors(run_saga: SagaRunner, stack: object) -> None:
    bad = run_saga("dlq", "show", "payments-12")
    assert bad.returncode == 2
    assert "not a DLQ entry id" in bad.stderr and "payment:12" in bad.stderr
    unknown = run_saga("dlq", "redrive", "payment:999999999")
    assert unknown.returncode == 1
    assert "there is no DLQ entry payment:999999999" in unknown.stderr
    neither = run_saga("dlq", "redrive")
    assert neither.returncode == 2 and "give one entry ID" in neither.stderr
