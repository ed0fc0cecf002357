"""The reconnect helper: one line per outage, backoff that resets, the stop honoured."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from eventing.reconnect import Reconnect


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeStop:
    """A stop event whose waits pass on the fake clock; set after `set_after` waits."""

    def __init__(self, clock: Clock, set_after: int | None = None) -> None:
        self.clock = clock
        self.set_after = set_after
        self.waits: list[float] = []
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        self.clock.now += timeout
        if self.set_after is not None and len(self.waits) >= self.set_after:
            self._set = True
        return self._set


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))


def failing(times: int, exc: type[Exception] = ConnectionError) -> Callable[[], str]:
    calls = {"n": 0}

    def op() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc(f"refused #{calls['n']}")
        return "ok"

    return op


def helper(stop: FakeStop, log: Log, clock: Clock, **kw: Any) -> Reconnect:
    return Reconnect(
        "db down",
        resumed="db back",
        stop=stop,
        log=log,
        clock=clock,
        rng=random.Random(7),
        **kw,
    )


def r_run(r: Reconnect, op: Callable[[], str]) -> str | None:
    return r.run(op, (ConnectionError,))


def test_an_outage_is_one_line_when_it_starts_and_one_when_it_ends() -> None:
    clock, log = Clock(), Log()
    stop = FakeStop(clock)
    r = helper(stop, log, clock, base_s=0.2, cap_s=5.0)
    assert r.run(failing(5), (ConnectionError,), batch=3) == "ok"
    [(level, event, fields), (level2, event2, fields2)] = log.lines
    assert (level, event) == ("warning", "db down")
    assert fields["error"] == "refused #1" and fields["batch"] == 3
    assert fields["retry_in_s"] == round(stop.waits[0], 2)
    assert (level2, event2) == ("info", "db back")
    assert fields2 == {"after_s": round(sum(stop.waits), 1), "attempts": 5}
    assert r.attempts == 0


def test_backoff_is_full_jitter_exponential_and_a_success_resets_it() -> None:
    clock, log = Clock(), Log()
    stop = FakeStop(clock)
    r = helper(stop, log, clock, base_s=0.1, cap_s=1.0)
    r.run(failing(6), (ConnectionError,))
    for attempt, waited in enumerate(stop.waits, start=1):
        assert 0 <= waited <= min(1.0, 0.1 * 2 ** (attempt - 1))
    stop.waits.clear()
    r.run(failing(1), (ConnectionError,))  # a new outage: from the first step again
    assert len(stop.waits) == 1 and stop.waits[0] <= 0.1
    assert [e for _, e, _ in log.lines] == ["db down", "db back", "db down", "db back"]


def test_a_stop_while_backing_off_ends_the_run_without_another_attempt() -> None:
    clock, log = Clock(), Log()
    stop = FakeStop(clock, set_after=2)
    op = failing(100)
    calls: list[int] = []

    def counted() -> str:
        calls.append(1)
        return op()

    assert r_run(helper(stop, log, clock), counted) is None
    assert len(calls) == 2 and len(stop.waits) == 2
    assert [e for _, e, _ in log.lines] == ["db down"]  # no resumption: it never came back


def test_the_operation_runs_once_even_when_already_stopped() -> None:
    """The consumer finishes its batch after SIGTERM: a stop only cuts the backoff short."""
    clock, log = Clock(), Log()
    stop = FakeStop(clock)
    stop.set()
    assert r_run(helper(stop, log, clock), failing(0)) == "ok"
    assert r_run(helper(stop, log, clock), failing(1)) is None
    assert len(stop.waits) == 1


def test_other_exceptions_propagate_at_once() -> None:
    clock, log = Clock(), Log()
    stop = FakeStop(clock)
    with pytest.raises(KeyError):
        helper(stop, log, clock).run(failing(1, KeyError), (ConnectionError,))
    assert stop.waits == [] and log.lines == []


def test_a_loop_says_it_is_connected_and_a_later_failure_is_a_new_outage() -> None:
    clock, log = Clock(), Log()
    stop = FakeStop(clock)
    r = helper(stop, log, clock)
    rounds = {"n": 0}

    def body() -> None:  # a long-running loop: connects, works, loses the connection
        rounds["n"] += 1
        if rounds["n"] in (1, 2, 4):
            raise ConnectionError("connect refused")
        r.succeeded()  # connected
        clock.now += 5.0
        if rounds["n"] == 3:
            raise ConnectionError("server closed the connection")

    r.run(body, (ConnectionError,))
    assert [(e, f.get("error"), f.get("attempts")) for _, e, f in log.lines] == [
        ("db down", "connect refused", None),
        ("db back", None, 2),
        ("db down", "server closed the connection", None),
        ("db back", None, 2),
    ]


def test_a_failure_after_a_long_healthy_run_is_a_new_outage() -> None:
    """An operation that never says it is connected: time up counts as recovery."""
    clock, log = Clock(), Log()
    stop = FakeStop(clock)
    r = helper(stop, log, clock, healthy_after_s=30.0)
    rounds = {"n": 0}

    def body() -> None:
        rounds["n"] += 1
        if rounds["n"] == 2:
            clock.now += 60.0  # up for a minute, then lost
        if rounds["n"] < 4:
            raise ConnectionError(f"lost #{rounds['n']}")

    r.run(body, (ConnectionError,))
    assert [(e, f.get("error")) for _, e, f in log.lines] == [
        ("db down", "lost #1"),
        ("db down", "lost #2"),
        ("db back", None),
    ]


def test_note_and_wait_split_the_failure_from_the_backoff() -> None:
    """As the relay does: the failure is seen in one place, the loop waits in another."""
    clock, log = Clock(), Log()
    r = Reconnect("kafka down", resumed="kafka back", log=log, clock=clock, base_s=0.1, cap_s=5.0)
    for _ in range(3):
        r.note("broker refused", topic="orders.events")
    assert [(e, f["error"], f["topic"]) for _, e, f in log.lines] == [
        ("kafka down", "broker refused", "orders.events")
    ]
    stop = FakeStop(clock, set_after=1)
    assert r.wait(stop) is False and stop.waits == [r.delay_s] and r.delay_s <= 0.4
    r.succeeded()
    r.succeeded()  # no outage in progress: nothing more to say
    assert [e for _, e, _ in log.lines] == ["kafka down", "kafka back"]


def test_failed_says_whether_to_try_again_and_a_silent_helper_logs_nothing() -> None:
    clock, log = Clock(), Log()
    stop = FakeStop(clock, set_after=2)
    r = Reconnect(None, stop=stop, log=log, clock=clock)
    assert r.failed(OSError("busy")) is True
    assert r.failed(OSError("busy")) is False
    r.succeeded()
    assert log.lines == [] and r.attempts == 0
