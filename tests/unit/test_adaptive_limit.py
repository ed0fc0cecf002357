"""The adaptive in-flight limit on a clock the test moves: it grows while latency has room
and the limit binds, backs off in proportion to a latency spike, holds while the spike's
own sagas drain, and recovers."""

from __future__ import annotations

import pytest

from order_svc.api.adaptive import AIM, AdaptiveLimit, Measured
from order_svc.api.admission import Admission, InFlightCap


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def step(limit: AdaptiveLimit, clock: Clock, m: Measured, n: int = 1) -> int:
    for _ in range(n):
        clock.now += 0.25
        limit.update(m)
    return limit.limit


def test_ramp_up_while_the_limit_binds_and_latency_has_room() -> None:
    clock = Clock()
    limit = AdaptiveLimit(target_s=1.0, floor=50, ceiling=5000, clock=clock, aim=1.0, initial=100)
    # Admissions press against the limit, sagas end in 0.2 s: room to grow.
    grown = [step(limit, clock, Measured(0.2, 500, limit.limit)) for _ in range(20)]
    assert grown == sorted(grown) and grown[-1] > 400  # about doubling every 2.5 s
    # Growth slows as latency nears the target ...
    slow = AdaptiveLimit(target_s=1.0, floor=50, ceiling=5000, clock=clock, aim=1.0, initial=100)
    step(slow, clock, Measured(0.95, 500, 100))
    assert slow.limit <= 101
    # ... and stops at the ceiling.
    assert step(limit, clock, Measured(0.2, 500, 10**6), n=200) == 5000


def test_it_steers_to_a_setpoint_below_the_target() -> None:
    clock = Clock()
    limit = AdaptiveLimit(target_s=1.0, floor=50, ceiling=5000, clock=clock, initial=1000)
    assert limit.setpoint_s == pytest.approx(AIM * 1.0)
    # Under the target but above the setpoint: cut, so that the next windows stay under it.
    assert step(limit, clock, Measured(0.9, 800, 1000)) == int(1000 * AIM / 0.9)
    # Under the setpoint, the limit binding: it grows again once the hold has passed.
    clock.now += 1.0
    cut = limit.limit
    assert step(limit, clock, Measured(0.5, 800, cut)) > cut


def test_a_limit_nobody_reaches_does_not_grow() -> None:
    clock = Clock()
    limit = AdaptiveLimit(target_s=1.0, floor=50, ceiling=5000, clock=clock, aim=1.0, initial=400)
    assert step(limit, clock, Measured(0.1, 100, 20), n=40) == 400


def test_a_latency_spike_cuts_in_proportion_then_holds_for_one_latency() -> None:
    clock = Clock()
    limit = AdaptiveLimit(target_s=1.0, floor=50, ceiling=5000, clock=clock, aim=1.0, initial=2000)
    assert step(limit, clock, Measured(1.6, 800, 2000)) == int(2000 / 1.6)
    cut = limit.limit
    # The sagas ending in the next 1.6 s were admitted before the cut: no second cut yet.
    assert step(limit, clock, Measured(1.7, 800, 2000), n=5) == cut
    # Once that latency has passed, a spike that persists cuts again, at most by half.
    clock.now += 1.0
    assert step(limit, clock, Measured(9.0, 800, 2000)) == cut // 2


def test_never_below_the_floor_and_it_recovers() -> None:
    clock = Clock()
    limit = AdaptiveLimit(target_s=0.5, floor=50, ceiling=5000, clock=clock, aim=1.0, initial=400)
    for _ in range(30):
        clock.now += 6.0  # past every hold
        limit.update(Measured(4.0, 10, 400))
    assert limit.limit == 50
    clock.now += 6.0
    recovered = [step(limit, clock, Measured(0.1, 400, limit.limit)) for _ in range(40)]
    assert recovered[-1] > 200


def test_refusals_tell_how_long_until_a_place_frees_up() -> None:
    clock = Clock()
    limit = AdaptiveLimit(target_s=1.0, floor=10, ceiling=100, clock=clock, aim=1.0, initial=10)
    cap = InFlightCap(10)
    admission = Admission(None, cap, adaptive=limit)
    admission.measured(Measured(3.0, 2.0, 40))  # 2 sagas end per second, far over
    assert cap.cap == limit.limit == 10  # at the floor
    cap.refreshed(cap.refreshing(), 40)
    refusal = admission.check()
    assert refusal is not None and refusal.reason == "too_many_in_flight"
    # 31 over the limit, draining at 2/s: about 16 s, not a blind "1".
    assert refusal.retry_after_s == 16


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        AdaptiveLimit(target_s=1.0, floor=100, ceiling=10, clock=Clock())
    with pytest.raises(ValueError, match="aim"):
        AdaptiveLimit(target_s=1.0, floor=10, ceiling=100, clock=Clock(), aim=1.5)
