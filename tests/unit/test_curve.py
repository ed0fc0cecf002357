"""What the curve reports about its own peak: whether the points held it."""

from __future__ import annotations

from typing import Any, cast

import pytest

from saga_cli import curve
from saga_cli.curve import held_by_points, hold_rate


def _point(fraction: float, done: float) -> dict[str, float]:
    return {"fraction": fraction, "sagas_per_s": done}


def test_the_most_the_high_points_completed_against_the_probe() -> None:
    points = [_point(0.25, 114), _point(0.5, 229), _point(0.8, 341), _point(1.0, 317)]
    assert held_by_points(points, 459) == {"sagas_per_s": 341, "of_peak": 0.743}


def test_light_points_do_not_count_and_no_high_point_says_nothing() -> None:
    assert held_by_points([_point(0.25, 500), _point(2.0, 90)], 100) == {
        "sagas_per_s": 90,
        "of_peak": 0.9,
    }
    assert held_by_points([_point(0.5, 50)], 100) is None
    assert held_by_points([_point(1.0, 0)], 0) is None


def test_the_hold_offers_more_than_the_probe_did_but_never_more_than_it_offered() -> None:
    assert hold_rate(266.0, 3000.0) == 399.0
    assert hold_rate(2500.0, 3000.0) == 3000.0


def test_the_peak_is_what_the_settled_hold_completed_not_the_probes_burst(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offered: list[tuple[float, str]] = []

    def fake_point(
        cfg: object, url: str, rate: float, plan: object, groups: object, say: object,
        label: str,
    ) -> dict[str, Any]:  # fmt: skip
        offered.append((rate, label))
        # The machine does 300/s in a burst and 240/s sustained; right after the burst,
        # while admission settles, it completes 180/s.
        done = {"peak probe": 300.0, "peak settle": 180.0}.get(label, min(rate, 240.0))
        return {"sagas_per_s": done, "refused_429": 0, "offered_per_s": rate}

    monkeypatch.setattr(curve, "_point", fake_point)
    plan = curve.CurvePlan((0.5, 2.0), 30.0, 3000.0, 8, 60.0)
    result = curve.run_curve(cast(Any, None), "", plan, {}, lambda _: None)
    assert offered == [
        (3000.0, "peak probe"),
        (450.0, "peak settle"),
        (450.0, "peak hold"),
        (120.0, "50%"),
        (480.0, "200%"),
    ]
    assert result["peak_sagas_per_s"] == 240.0
    assert result["peak_probe"]["sagas_per_s"] == 300.0
    assert result["peak_settle"]["sagas_per_s"] == 180.0
    assert result["peak_hold"]["offered_rate"] == 450.0
    assert result["held_by_points"] == {"sagas_per_s": 240.0, "of_peak": 1.0}
