"""Model list prices and what each model accepts: one table for mock and live agents.

`PRICES` holds Anthropic's public list prices in USD per million tokens, with prompt
cache writes (5-minute) and cache reads priced apart, as read from
https://platform.claude.com/docs/en/about-claude/pricing on `PRICES_CHECKED` (see
docs/live-mode.md). Each row also says whether the model is current, legacy or retired
(and what replaces it), and whether it accepts forced tool choice and sampling
parameters: the 5.x models answer both with a 400, so a live agent leaves them out.

Every lookup takes an optional ``prices`` mapping so a policy can pass its own table;
`current_prices()` is the table with the rows of ``MESHFLOW_PRICES`` (a JSON file) laid
over it, which is how an operator adds a model or corrects a price without a release.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError, MeshflowError

PRICES_VAR = "MESHFLOW_PRICES"
PRICES_CHECKED = "2026-12-02"
PRICES_SOURCE = "https://platform.claude.com/docs/en/about-claude/pricing"
STATUSES = ("current", "legacy", "retired")


@dataclass(frozen=True)
class ModelPrice:
    """What one model costs per million tokens, its size class and what it accepts."""

    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    model_class: str
    """"small" | "medium" | "large"; used for energy and carbon estimates."""
    cache_write_usd_per_mtok: float | None = None
    """5-minute prompt-cache writes; None: 1.25 x the input price, Anthropic's rule."""
    cache_read_usd_per_mtok: float | None = None
    """Prompt-cache hits; None: 0.1 x the input price."""
    status: str = "current"
    """"current", "legacy" (still answers, not recommended) or "retired" (answers 404)."""
    replacement: str | None = None
    """What to move to when this model is legacy or retired."""
    forced_tool_choice: bool = False
    """True if the model accepts tool_choice {"type": "tool"}; else the agent asks in words."""
    sampling: bool = True
    """False if the model rejects temperature (the 5.x models answer it with a 400)."""

    def __post_init__(self) -> None:
        for name in ("input_usd_per_mtok", "output_usd_per_mtok", "cache_write_usd_per_mtok",
                     "cache_read_usd_per_mtok"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float))
                                          and not isinstance(value, bool)
                                          and math.isfinite(value) and value >= 0):
                raise ConfigError(f"ModelPrice.{name} must be a number of USD >= 0, got "
                                  f"{value!r}", argument=f"ModelPrice.{name}",
                                  fix="give USD per million tokens, e.g. 3.0")
        if self.status not in STATUSES:
            raise ConfigError(f"ModelPrice.status must be one of {', '.join(STATUSES)}, got "
                              f"{self.status!r}", argument="ModelPrice.status")

    @property
    def cache_write(self) -> float:
        """USD per million cache-write tokens."""
        if self.cache_write_usd_per_mtok is None:
            return self.input_usd_per_mtok * 1.25
        return self.cache_write_usd_per_mtok

    @property
    def cache_read(self) -> float:
        """USD per million cache-read tokens."""
        if self.cache_read_usd_per_mtok is None:
            return self.input_usd_per_mtok * 0.1
        return self.cache_read_usd_per_mtok


class UnknownModelError(MeshflowError, KeyError):
    """A model that is not in the price table; the message lists the known ones. Not
    retried by the circuit breaker: the table will not learn the model meanwhile."""

    retryable = False

    def __init__(self, model: str, known: list[str]) -> None:
        super().__init__(model)
        self.model = model
        self.known = known

    def __str__(self) -> str:
        return (
            f"No price for model {self.model!r}. Known models: {', '.join(self.known)}. "
            f"To add one, point {PRICES_VAR} at a JSON file such as "
            f'{{"{self.model}": {{"input_usd_per_mtok": 3, "output_usd_per_mtok": 15, '
            '"model_class": "medium"}}, or pass prices={**PRICES, name: ModelPrice(name, '
            "in_usd, out_usd, model_class)} (USD per million tokens)."
        )


DEFAULT_MODEL = "claude-sonnet-4-5"
"""The model the mock agents say they imitate (its figures are the course's recorded
numbers, so it stays although the real model is retired)."""
LIVE_MODEL = "claude-haiku-4-5"
"""The live default: current, the cheapest that takes forced tool choice and temperature."""

PRICES: Mapping[str, ModelPrice] = MappingProxyType(
    {
        price.model: price
        for price in (
            ModelPrice("claude-opus-5-5", 4.0, 20.0, "large", 5.0, 0.20, sampling=False),
            ModelPrice("claude-sonnet-5-5", 2.0, 10.0, "medium", 2.50, 0.10, sampling=False),
            ModelPrice("claude-sonnet-5", 2.0, 10.0, "medium", 2.50, 0.20, status="legacy",
                       replacement="claude-sonnet-5-5", sampling=False),
            ModelPrice("claude-haiku-5-5", 0.10, 0.50, "small", 0.125, 0.01, sampling=False),
            ModelPrice("claude-haiku-4-5", 1.0, 5.0, "small", 1.25, 0.10,
                       forced_tool_choice=True),
            ModelPrice("claude-sonnet-4-6", 3.0, 15.0, "medium", 3.75, 0.30, status="legacy",
                       replacement="claude-sonnet-5-5", forced_tool_choice=True),
            ModelPrice("claude-opus-4-7", 5.0, 25.0, "large", 6.25, 0.50, status="legacy",
                       replacement="claude-opus-5-5", sampling=False),
            ModelPrice("claude-sonnet-4-5", 3.0, 15.0, "medium", 3.75, 0.30, status="retired",
                       replacement="claude-sonnet-5-5", forced_tool_choice=True),
            ModelPrice("claude-opus-4-1", 15.0, 75.0, "large", 18.75, 1.50, status="retired",
                       replacement="claude-opus-5-5", forced_tool_choice=True),
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
    *,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
) -> float:
    """USD cost of one call: each kind of token times its per-million list price.

    ``tokens_in`` are the uncached input tokens; cache writes and reads come apart.
    """
    counts = (tokens_in, tokens_out, cache_write_tokens, cache_read_tokens)
    if any(count < 0 for count in counts):
        raise ConfigError("token counts cannot be negative", argument="tokens_in/tokens_out")
    price = price_for(model, prices)
    return (
        tokens_in * price.input_usd_per_mtok + tokens_out * price.output_usd_per_mtok
        + cache_write_tokens * price.cache_write + cache_read_tokens * price.cache_read
    ) / 1_000_000


def current_models(prices: Mapping[str, ModelPrice] | None = None) -> list[str]:
    """The ids of the models that are neither retired nor the free mock row."""
    table = PRICES if prices is None else prices
    return sorted(m for m, p in table.items() if p.status != "retired" and m != "mock-free")


def current_prices(environ: Mapping[str, str] | None = None) -> Mapping[str, ModelPrice]:
    """`PRICES` with the rows of the ``MESHFLOW_PRICES`` JSON file laid over it."""
    path = (os.environ if environ is None else environ).get(PRICES_VAR, "").strip()
    if not path:
        return PRICES
    return MappingProxyType({**PRICES, **_read_overrides(Path(path))})


_ROW_FIELDS = {f.name for f in fields(ModelPrice)} - {"model"}


def _read_overrides(path: Path) -> dict[str, ModelPrice]:
    """The rows of a prices file: {model: {input_usd_per_mtok: ..., ...}}."""
    fix = ('it must be JSON like {"my-model": {"input_usd_per_mtok": 3, '
           '"output_usd_per_mtok": 15, "model_class": "medium"}}')
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{PRICES_VAR}={path} cannot be read ({err.strerror})",
                          argument=PRICES_VAR, fix="point it at a JSON file, or unset it") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{PRICES_VAR}={path} is not JSON ({err})", argument=PRICES_VAR,
                          fix=fix) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{PRICES_VAR}={path} holds no object of models", argument=PRICES_VAR,
                          fix=fix)
    return {model: _row(path, model, row, fix) for model, row in data.items()}


def _row(path: Path, model: str, row: Any, fix: str) -> ModelPrice:
    if not isinstance(row, dict) or not _ROW_FIELDS.issuperset(row):
        unknown = sorted(set(row) - _ROW_FIELDS) if isinstance(row, dict) else []
        what = f"unknown fields {unknown}" if unknown else "not an object"
        raise ConfigError(f"{PRICES_VAR}={path}: model {model!r} has {what}",
                          argument=PRICES_VAR, fix=fix)
    base = PRICES.get(model)
    merged = {**({k: getattr(base, k) for k in _ROW_FIELDS} if base else {}), **row}
    try:
        return ModelPrice(model=model, **merged)
    except ConfigError as err:  # a bad value (ConfigError is a TypeError too: first)
        raise ConfigError(f"{PRICES_VAR}={path}: model {model!r}: {err}", argument=PRICES_VAR,
                          fix=fix) from None
    except TypeError:
        raise ConfigError(f"{PRICES_VAR}={path}: model {model!r} lacks input_usd_per_mtok, "
                          "output_usd_per_mtok or model_class", argument=PRICES_VAR,
                          fix=fix) from None
