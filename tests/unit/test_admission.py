"""Admission control: the token bucket and the in-flight cap, on a clock the test moves."""

from __future__ import annotations

import pytest

from order_svc.api.admission import Admission, InFlightCap, TokenBucket, retry_after_s


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_allows_a_burst_then_refuses_with_the_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.1)
    clock.advance(0.05)
    assert bucket.take() == pytest.approx(0.05)


def test_bucket_refills_at_its_rate_and_never_beyond_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=2, clock=clock)
    bucket.take(), bucket.take()
    clock.advance(0.5)  # one token back
    assert bucket.take() == 0.0
    assert bucket.take() > 0
    clock.advance(3600)  # a long quiet spell still only buys a burst
    assert [bucket.take() == 0.0 for _ in range(3)] == [True, True, False]


def test_bucket_sustains_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100, burst=1, clock=clock)
    admitted = 0
    for _ in range(10_000):  # 10 s of attempts every millisecond
        clock.advance(0.001)
        admitted += bucket.take() == 0.0
    assert 999 <= admitted <= 1001


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 5), (10, 0)])
def test_bucket_refuses_nonsense_limits(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=rate, burst=burst, clock=FakeClock())


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (0.999, 1), (1.0, 1), (1.2, 2), (7.5, 8)])
def test_retry_after_is_whole_seconds_and_never_zero(wait: float, header: int) -> None:
    assert retry_after_s(wait) == header


def test_cap_counts_admissions_on_top_of_the_last_refresh() -> None:
    cap = InFlightCap(5)
    cap.refreshed(cap.refreshing(), 3)
    assert [cap.try_admit() for _ in range(3)] == [True, True, False]
    assert cap.estimate == 5


def test_requests_that_create_nothing_give_their_place_back() -> None:
    cap = InFlightCap(1)
    assert cap.try_admit()
    assert not cap.try_admit()
    cap.done(created=False)  # e.g. a replay of an existing order, or an unknown SKU
    assert cap.estimate == 0
    assert cap.try_admit()


def test_created_orders_count_until_a_refresh_sees_them_end() -> None:
    cap = InFlightCap(10)
    for _ in range(10):
        assert cap.try_admit()
    for _ in range(10):
        cap.done(created=True)
    assert cap.estimate == 10
    assert not cap.try_admit()
    # the sagas ended: the database now counts 2 in flight, ours included
    cap.refreshed(cap.refreshing(), 2)
    assert cap.estimate == 2
    assert cap.try_admit()


def test_a_placement_running_during_a_refresh_is_still_counted() -> None:
    cap = InFlightCap(3)
    assert cap.try_admit() and cap.try_admit() and cap.try_admit()
    # the count runs before those placements commit: the database sees none of them
    cap.refreshed(cap.refreshing(), 0)
    assert cap.estimate == 3
    assert not cap.try_admit()
    for _ in range(3):
        cap.done(created=True)
    assert not cap.try_admit()  # committed now, and still in flight
    cap.refreshed(cap.refreshing(), 3)  # the next count sees them
    assert cap.estimate == 3


def test_orders_created_while_the_count_runs_are_not_lost() -> None:
    cap = InFlightCap(10)
    assert cap.try_admit() and cap.try_admit()
    mark = cap.refreshing()
    cap.done(created=True)  # committed while the count query runs: maybe not in it
    cap.done(created=True)
    cap.refreshed(mark, 7)  # assume the count missed them
    assert cap.estimate == 9
    assert cap.try_admit()
    assert not cap.try_admit()


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InFlightCap(0)


def test_admission_reports_which_limit_refused() -> None:
    clock = FakeClock()
    cap = InFlightCap(2)
    admission = Admission(TokenBucket(rate=1, burst=3, clock=clock), cap)
    assert admission.check() is None
    assert admission.check() is None
    full = admission.check()
    assert full is not None
    assert (full.reason, full.retry_after_s) == ("too_many_in_flight", 1)
    assert "2 checkouts are already in progress" in full.message
    admission.done(created=False)  # one of the two created nothing
    assert admission.check() is None  # the refusal above spent no token: this is the 3rd
    admission.done(created=False)
    assert cap.estimate == 1
    limited = admission.check()  # the burst of 3 is spent
    assert limited is not None
    assert (limited.reason, limited.retry_after_s) == ("rate_limited", 1)
    assert "1 checkouts/s" in limited.message
    assert cap.estimate == 1  # refused by the rate: its place under the cap is given back


def test_retry_after_follows_the_rate() -> None:
    clock = FakeClock()
    admission = Admission(TokenBucket(rate=0.2, burst=1, clock=clock), None)
    assert admission.check() is None
    refusal = admission.check()
    assert refusal is not None and refusal.retry_after_s == 5
    clock.advance(5)
    assert admission.check() is None


def test_limits_can_be_off() -> None:
    admission = Admission(None, None)
    assert all(admission.check() is None for _ in range(10_000))
    admission.done(created=True)
