"""The latency curve as an SVG file: readable in any browser, no plotting library needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["curve_svg"]

_W, _H = 720, 440
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 30, 40, 60
_SERIES = (("p50", "#2b7bb9"), ("p95", "#e0a020"), ("p99", "#c0392b"))


def _nice(top: float) -> float:
    """A round axis maximum at or above `top`."""
    if top <= 0:
        return 1.0
    step = 10.0 ** len(str(int(top))) / 10
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * factor >= top:
            return float(step * factor)
    return float(step * 10)


def curve_svg(result: dict[str, Any], title: str) -> str:
    """Latency (p50, p95, p99) against completed sagas/s, one dot per point of the curve."""
    points: Sequence[dict[str, Any]] = [p for p in result["points"] if "latency_ms" in p]
    x_max = _nice(max([p["sagas_per_s"] for p in points] + [result["peak_sagas_per_s"]]))
    y_max = _nice(max(p["latency_ms"]["p99"] for p in points) if points else 1.0)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(v: float) -> float:
        return _LEFT + v / x_max * plot_w

    def y(v: float) -> float:
        return _TOP + plot_h - v / y_max * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="22" text-anchor="middle" font-size="14">{_text(title)}</text>',
    ]
    for i in range(6):  # grid and axis labels
        gx, gy = _LEFT + plot_w * i / 5, _TOP + plot_h * i / 5
        out.append(f'<line x1="{gx:.1f}" y1="{_TOP}" x2="{gx:.1f}" y2="{_TOP + plot_h}" '
                   'stroke="#eee"/>')  # fmt: skip
        out.append(f'<line x1="{_LEFT}" y1="{gy:.1f}" x2="{_LEFT + plot_w}" y2="{gy:.1f}" '
                   'stroke="#eee"/>')  # fmt: skip
        out.append(f'<text x="{gx:.1f}" y="{_TOP + plot_h + 18}" text-anchor="middle">'
                   f"{x_max * i / 5:.0f}</text>")  # fmt: skip
        out.append(f'<text x="{_LEFT - 8}" y="{gy + 4:.1f}" text-anchor="end">'
                   f"{y_max * (5 - i) / 5:.0f}</text>")  # fmt: skip
    out.append(f'<text x="{_LEFT + plot_w / 2}" y="{_H - 18}" text-anchor="middle">'
               "completed sagas/s</text>")  # fmt: skip
    out.append(f'<text transform="translate(18,{_TOP + plot_h / 2}) rotate(-90)" '
               'text-anchor="middle">latency placed to terminal (ms)</text>')  # fmt: skip
    peak = x(result["peak_sagas_per_s"])
    out.append(f'<line x1="{peak:.1f}" y1="{_TOP}" x2="{peak:.1f}" y2="{_TOP + plot_h}" '
               'stroke="#888" stroke-dasharray="4 3"/>')  # fmt: skip
    out.append(f'<text x="{peak + 4:.1f}" y="{_TOP + 12}" fill="#666">sustained peak '
               f'{result["peak_sagas_per_s"]:.0f}/s</text>')  # fmt: skip
    ordered = sorted(points, key=lambda p: p["fraction"])
    for n, (name, color) in enumerate(_SERIES):
        coords = [(x(p["sagas_per_s"]), y(p["latency_ms"][name])) for p in ordered]
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{color}"/>'
                for cx, cy in coords]  # fmt: skip
        lx = _LEFT + 10 + n * 70
        out.append(f'<rect x="{lx}" y="{_TOP + 6}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{lx + 16}" y="{_TOP + 16}">{name}</text>')
    for p in ordered:  # each point's share of the peak, above its p99
        out.append(
            f'<text x="{x(p["sagas_per_s"]):.1f}" y="{y(p["latency_ms"]["p99"]) - 8:.1f}" '
            f'text-anchor="middle" fill="#444">{p["fraction"]:.0%}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
