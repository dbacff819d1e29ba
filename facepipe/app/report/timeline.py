"""The per-identity timeline strips (inline SVG) and the time axis above them.

Inline SVG rather than an image or a charting script: the page must stay a single
file that opens offline under a CSP that allows nothing external.
"""

from __future__ import annotations

import math

from facepipe.app.report.formatting import fmt_tick, fmt_time

TIMELINE_W = 1000  # SVG user units across the whole video
LOST_FILL = "#f6c9c9"  # lost frame ranges, on the strips and in the legend


def nice_tick(duration: float) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about eight ticks."""
    raw = duration / 8 if duration > 0 else 1
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if step * magnitude >= raw:
            return step * magnitude
    return 10 * magnitude


def segments(times: list[float], gap: float) -> list[tuple[float, float]]:
    """Merge sorted appearance times closer than ``gap`` into ``(start, end)`` runs.

    One mark per run instead of one per sampled frame keeps the SVG small for long
    videos and reads as "on screen from ... to ...".
    """
    runs: list[list[float]] = []
    for t in sorted(times):
        if runs and t - runs[-1][1] <= gap * 1.01:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return [(a, b) for a, b in runs]


def timeline(
    times: list[float], duration: float, step_s: float, color: str, lost: list[tuple[float, float]]
) -> str:
    """An inline SVG strip across the whole video with a mark at every appearance."""
    scale = TIMELINE_W / duration if duration > 0 else 0
    parts = [
        f'<svg class=tl viewBox="0 0 {TIMELINE_W} 20" preserveAspectRatio="none" '
        f'role="img" aria-label="appearances over time">',
        f'<rect width="{TIMELINE_W}" height="20" fill="#eef1f5"/>',
    ]
    if duration > 0:
        tick = nice_tick(duration)
        for k in range(1, int(duration / tick) + 1):
            x = k * tick * scale
            if x < TIMELINE_W - 1:
                parts.append(f'<rect x="{x:.2f}" width="1" height="20" fill="#dde2ea"/>')
    for a, b in lost:
        width = max((b - a) * scale, 2)
        parts.append(f'<rect x="{a * scale:.2f}" width="{width:.2f}" height="20" fill="{LOST_FILL}"/>')
    for a, b in segments(times, step_s):
        width = max((b - a + step_s) * scale, 2.0)
        parts.append(
            f'<rect class=mark x="{a * scale:.2f}" y="2" width="{width:.2f}" height="16" fill="{color}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def axis(duration: float) -> str:
    """Time labels for the strips, aligned with them (same columns as a card)."""
    if duration <= 0:
        return ""
    tick = nice_tick(duration)
    labels = []
    for k in range(int(duration / tick) + 1):
        t = k * tick
        if t > duration * 0.93 and k:
            break  # leave room for the end label
        labels.append(f'<span style="left:{100 * t / duration:.3f}%">{fmt_tick(t, duration)}</span>')
    labels.append(f'<span class=end style="left:100%">{fmt_time(duration)}</span>')
    return f'<div class=axisrow aria-hidden="true"><div></div><div class=axis>{"".join(labels)}</div></div>'
