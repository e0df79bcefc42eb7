"""Values as display text: one format for numbers, counts, durations and missing values everywhere."""

from __future__ import annotations

import json
from typing import Any

NOT_AVAILABLE = "not available"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_value(value: float, signed: bool = False) -> str:
    """Integers with thousands separators; floats with 4 decimals below 100 and 1 decimal from 100 up. A signed
    change that rounds to zero prints as ``+0.0000``, not ``-0.0000``."""
    sign = "+" if signed else ""
    if isinstance(value, int):
        return f"{value:{sign},}"
    if abs(value) >= 100:
        return f"{value:{sign},.1f}"
    if signed and round(value, 4) == 0:
        value = 0.0
    return f"{value:{sign}.4f}"


def format_length(value: Any) -> str:
    """A count that may be a statistic (mean, percentile): no decimals when whole, else one."""
    if not is_number(value):
        return plain(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def format_duration(seconds: Any) -> str:
    if not is_number(seconds):
        return plain(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def plain(value: Any) -> str:
    """Any JSON value as display text; missing values read "not available"."""
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_number(value):
        return format_value(value)
    if isinstance(value, list):
        return ", ".join(plain(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def humanize(key: str) -> str:
    """A JSON key as a label: ``best_val_loss`` → ``best val loss``."""
    return key.replace("_", " ")
