"""Text for the page: HTML escaping and the few number and time formats the report uses.

Kept apart from the page builders so every section formats a time, a count or a
parameter the same way (a screen time in a card must read exactly like the tick
labels and the headline figures).
"""

from __future__ import annotations

import html
from typing import Any


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML content and inside quoted attributes."""
    return html.escape(str(value), quote=True)


def fmt_time(seconds: float) -> str:
    """``8.8 s`` under a minute, then ``m:ss``, then ``h:mm:ss``."""
    seconds = max(0.0, float(seconds))
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def fmt_tick(seconds: float, duration: float) -> str:
    """An axis label: short clips label round seconds (``5 s``), longer ones clock times."""
    if duration < 59.95:
        return f"{seconds:g} s"
    return fmt_time(seconds)


def fmt_num(value: Any) -> str:
    """A funnel figure: integers with thousands separators; anything else (odd summaries) as text."""
    return f"{value:,}" if isinstance(value, int) else esc(value)


def fmt_param(value: Any) -> str:
    """A run parameter as a person reads it: unset is "default", flags on/off, sizes ``W x H``."""
    if value is None:
        return "<span class=muted>default</span>"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return esc(f"{value:g}")
    if isinstance(value, list):
        return esc(" x ".join(str(v) for v in value))
    return esc(value)
