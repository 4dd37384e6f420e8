"""How the environmental layer estimates grams CO2e: its formula, units and sources.

    method = carbon_method()
    print(method.describe())          # the formula, the units, the assumptions, the sources
    method.table()                    # one row per model: its class, Wh and grams per 1k tokens
    method.grams(1000, "claude-sonnet-4-5", grid_g_per_kwh=50)   # the same tokens elsewhere

The numbers are the ones the engine uses (meshflow_nb/policy/carbon.py); this module only
shows them, so that a lesson can put the method next to the run it estimated. The
per-node tables and charts are `carbon_table`, `plot_carbon` and `plot_emissions`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from ..agents.pricing import PRICES, ModelPrice
from ..policy.carbon import GRID_G_PER_KWH, WH_PER_1K_TOKENS, carbon_grams

SOURCES = (
    "energy per token: Luccioni, Jernite and Strubell, 'Power Hungry Processing: Watts "
    "Driving the Cost of AI Deployment?' (2023), about 0.05-1 Wh per 1,000 tokens by model "
    "size; Epoch AI, 'How much energy does ChatGPT use?' (2025), about 0.3 Wh per query",
    "grid intensity: Ember, Global Electricity Review 2024, about 480 g CO2e per kWh, the "
    "world average",
)
"""Where the constants come from (docs/environmental.md gives them in full)."""
LEFT_OUT = ("data-centre overheads (PUE)", "embodied emissions of the hardware",
            "training the model", "where and when the call ran")
"""What the estimate does not include."""


@dataclass(frozen=True)
class CarbonMethod:
    """The estimate as the engine makes it: energy per 1k tokens by model class, one grid."""

    wh_per_1k_tokens: Mapping[str, float]
    grid_g_per_kwh: float
    prices: Mapping[str, ModelPrice]
    sources: tuple[str, ...] = SOURCES
    left_out: tuple[str, ...] = LEFT_OUT

    def grams(self, tokens: int, model: str | None,
              grid_g_per_kwh: float | None = None) -> float:
        """Grams CO2e for ``tokens`` on ``model``, as the engine estimates them (another
        grid intensity shows what the same work would be estimated at elsewhere)."""
        grid = self.grid_g_per_kwh if grid_g_per_kwh is None else grid_g_per_kwh
        return carbon_grams(tokens, model, grid, self.prices)

    def table(self) -> pd.DataFrame:
        """One row per model of the price table: its class, Wh and grams per 1k tokens."""
        return pd.DataFrame([{
            "model": p.model, "class": p.model_class,
            "Wh per 1k tokens": self.wh_per_1k_tokens[p.model_class],
            "g CO2e per 1k tokens": self.grams(1000, p.model),
        } for p in self.prices.values()])

    def describe(self) -> str:
        """The formula, the units, the constants and where they come from."""
        classes = ", ".join(f"{name} {wh:g} Wh" for name, wh in self.wh_per_1k_tokens.items())
        return "\n".join([
            "grams CO2e = tokens / 1000 x Wh per 1k tokens / 1000 x grid g CO2e per kWh",
            "  tokens: input + output, counted alike",
            f"  Wh per 1k tokens, by model class: {classes}",
            "    (a model not in the price table counts as medium)",
            f"  grid: {self.grid_g_per_kwh:g} g CO2e per kWh, one figure for every run",
            "sources:", *(textwrap.fill(source, 88, initial_indent="  - ",
                                        subsequent_indent="    ") for source in self.sources),
            textwrap.fill("left out: " + ", ".join(self.left_out), 88),
        ])

    def __str__(self) -> str:
        return self.describe()


def carbon_method() -> CarbonMethod:
    """The environmental layer's method, with the model classes it reads (``PRICES``)."""
    return CarbonMethod(dict(WH_PER_1K_TOKENS), GRID_G_PER_KWH, PRICES)


__all__ = ["CarbonMethod", "carbon_method"]
