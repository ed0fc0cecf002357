"""The latency curve's picture: a well-formed SVG with one dot per point and series."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from saga_cli.curve_svg import curve_svg


def _point(fraction: float, done: float, p50: float, p99: float) -> dict[str, object]:
    return {
        "fraction": fraction,
        "sagas_per_s": done,
        "latency_ms": {"p50": p50, "p95": (p50 + p99) / 2, "p99": p99},
    }


def test_the_curve_is_a_readable_svg_with_every_point() -> None:
    result = {
        "peak_sagas_per_s": 812.4,
        "points": [
            _point(0.25, 200, 90, 180),
            _point(0.5, 405, 110, 240),
            _point(1.0, 790, 380, 980),
            _point(2.0, 801, 420, 1150),
            {"fraction": 3.0, "offered_per_s": 0},  # a point that completed nothing
        ],
    }
    svg = curve_svg(result, "latency <against> throughput")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert len(root.findall(f"{ns}circle")) == 4 * 3  # four points, p50/p95/p99
    assert len(root.findall(f"{ns}polyline")) == 3
    texts = [t.text or "" for t in root.iter(f"{ns}text")]
    assert "latency <against> throughput" in texts  # escaped in the file, read back as text
    assert any("812" in t for t in texts) and "200%" in texts
