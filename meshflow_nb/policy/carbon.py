"""Environmental accounting: grams CO2e of a node from its tokens.

    grams = tokens / 1000 x Wh per 1k tokens (by model class) / 1000 x grid g CO2e per kWh

The assumptions and their sources are in docs/environmental.md; units are checked by
a test (the course's upstream framework carried a x1000 error here).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..agents.pricing import PRICES, ModelPrice

WH_PER_1K_TOKENS: Mapping[str, float] = {"small": 0.1, "medium": 0.3, "large": 1.0}
"""Energy per 1,000 tokens processed, in watt-hours, by model class."""

GRID_G_PER_KWH = 480.0
"""World-average grid carbon intensity, grams CO2e per kilowatt-hour."""


def carbon_grams(tokens: int, model: str | None, grid_g_per_kwh: float = GRID_G_PER_KWH,
                 prices: Mapping[str, ModelPrice] | None = None) -> float:
    """Grams CO2e for ``tokens`` processed by ``model`` (unknown models count as medium)."""
    table = PRICES if prices is None else prices
    model_class = table[model].model_class if model in table else "medium"
    kwh = tokens / 1000 * WH_PER_1K_TOKENS[model_class] / 1000
    return kwh * grid_g_per_kwh
