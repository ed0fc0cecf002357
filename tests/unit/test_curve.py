"""What the curve reports about its own peak: whether the points held it."""

from __future__ import annotations

from saga_cli.curve import held_by_points


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
