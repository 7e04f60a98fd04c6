"""Percentiles and small numeric helpers, without numpy (the plot is the only numpy user)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q` (0-100) percentile by linear interpolation, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values_us: Sequence[int]) -> dict[str, float | None]:
    """p50, p90, p99 and max of microsecond samples, in milliseconds."""
    ordered = sorted(values_us)
    result: dict[str, float | None] = {}
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        value = percentile(ordered, q)
        result[name] = None if value is None else round(value / 1000, 3)
    result["max"] = round(ordered[-1] / 1000, 3) if ordered else None
    return result


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)
