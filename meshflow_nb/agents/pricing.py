"""Model list prices, so every run can put a dollar figure on its tokens.

`PRICES` is a read-only table of public list prices (USD per million tokens; see
docs/mock-mode.md for source and date). Every lookup takes an optional ``prices``
mapping so a policy can pass its own table instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import ConfigError, MeshflowError


@dataclass(frozen=True)
class ModelPrice:
    """What one model costs per million tokens, and its size class."""

    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    model_class: str
    """"small" | "medium" | "large"; used for energy and carbon estimates."""


class UnknownModelError(MeshflowError, KeyError):
    """A model that is not in the price table; the message lists the known ones."""

    def __init__(self, model: str, known: list[str]) -> None:
        super().__init__(model)
        self.model = model
        self.known = known

    def __str__(self) -> str:
        return (
            f"No price for model {self.model!r}. Known models: {', '.join(self.known)}. "
            "To add one, pass prices={**PRICES, name: ModelPrice(name, in_usd, "
            "out_usd, model_class)} (USD per million tokens)."
        )


DEFAULT_MODEL = "claude-sonnet-4-5"

PRICES: Mapping[str, ModelPrice] = MappingProxyType(
    {
        price.model: price
        for price in (
            ModelPrice("claude-haiku-4-5", 1.0, 5.0, "small"),
            ModelPrice("claude-sonnet-4-5", 3.0, 15.0, "medium"),
            ModelPrice("claude-opus-4-1", 15.0, 75.0, "large"),
            ModelPrice("mock-free", 0.0, 0.0, "small"),
        )
    }
)


def price_for(model: str, prices: Mapping[str, ModelPrice] | None = None) -> ModelPrice:
    """The price of ``model`` in ``prices`` (default `PRICES`)."""
    table = PRICES if prices is None else prices
    try:
        return table[model]
    except KeyError:
        raise UnknownModelError(model, sorted(table)) from None


def cost_usd(
    model: str,
    tokens_in: int,
    tokens_out: int,
    prices: Mapping[str, ModelPrice] | None = None,
) -> float:
    """USD cost of one call: tokens times the per-million-token list price."""
    if tokens_in < 0 or tokens_out < 0:
        raise ConfigError("token counts cannot be negative", argument="tokens_in/tokens_out")
    price = price_for(model, prices)
    return (
        tokens_in * price.input_usd_per_mtok + tokens_out * price.output_usd_per_mtok
    ) / 1_000_000
