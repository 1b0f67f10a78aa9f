"""Small statistics used by every measurement: percentiles and latency summaries.

The benchmark reports medians and ratios taken in one run (the machine is shared and noisy);
absolute times are printed for context, never compared with a fixed threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation between closest ranks.

    The same definition as ``numpy.percentile(values, q)`` (method ``linear``): for sorted
    values ``v`` of length ``n``, rank ``r = q/100 * (n - 1)``, interpolated between
    ``v[floor(r)]`` and ``v[ceil(r)]``.

    Raises:
        ValueError: ``values`` is empty or ``q`` is outside [0, 100].
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside [0, 100]")
    ordered = sorted(values)
    rank = q / 100.0 * (len(ordered) - 1)
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summarize_ms(samples_ms: Sequence[float]) -> dict[str, Any]:
    """Count, mean, min, p50, p90, p99 and max of latency samples in milliseconds."""
    if not samples_ms:
        raise ValueError("no samples")
    return {
        "n": len(samples_ms),
        "mean_ms": round(sum(samples_ms) / len(samples_ms), 3),
        "min_ms": round(min(samples_ms), 3),
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p90_ms": round(percentile(samples_ms, 90), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "max_ms": round(max(samples_ms), 3),
    }


def ratio(numerator: float | None, denominator: float | None, digits: int | None = 3) -> float | None:
    """``numerator / denominator`` rounded to ``digits`` decimals (None: unrounded, for display, which
    rounds it once itself); None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    value = numerator / denominator
    return value if digits is None else round(value, digits)


def growth_percent(baseline: float, value: float) -> float:
    """Relative growth of ``value`` over ``baseline`` in percent.

    Raises:
        ValueError: ``baseline`` is not positive.
    """
    if baseline <= 0:
        raise ValueError("baseline must be positive")
    return round((value - baseline) / baseline * 100.0, 2)
