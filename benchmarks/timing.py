"""Timing helpers shared by the benchmarks: summary statistics and target verdicts."""

from __future__ import annotations

from typing import Any


def stats(samples_ns: list[int]) -> dict[str, float | int]:
    """Median, p90 (nearest rank) and min in milliseconds."""
    ordered = sorted(samples_ns)
    p90 = ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]
    middle = len(ordered) // 2
    median = (ordered[middle] if len(ordered) % 2
              else (ordered[middle - 1] + ordered[middle]) / 2)
    return {"median_ms": round(median / 1e6, 4), "p90_ms": round(p90 / 1e6, 4),
            "min_ms": round(ordered[0] / 1e6, 4), "runs": len(ordered)}


def target(what: str, value: float, limit: float) -> dict[str, Any]:
    """A figure that should stay at or below ``limit``, with its verdict."""
    return {"what": what, "value": value, "limit": limit, "met": value <= limit}
