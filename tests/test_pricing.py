"""The one price table: cache prices, statuses, and the MESHFLOW_PRICES override, with
the careless and hostile files an operator might point it at."""

from __future__ import annotations

import math

import pytest

from meshflow_nb import AnthropicAgent, ConfigError, ModelPrice, Role
from meshflow_nb.agents.pricing import (
    LIVE_MODEL,
    PRICES,
    PRICES_CHECKED,
    cost_usd,
    current_models,
    current_prices,
    price_for,
)


def test_cache_writes_and_reads_are_priced_apart_from_input():
    plain = cost_usd("claude-haiku-4-5", 1_000_000, 0)
    written = cost_usd("claude-haiku-4-5", 0, 0, cache_write_tokens=1_000_000)
    read = cost_usd("claude-haiku-4-5", 0, 0, cache_read_tokens=1_000_000)
    assert (plain, written, read) == (1.0, 1.25, pytest.approx(0.10))


def test_a_row_without_cache_prices_uses_anthropics_multipliers():
    row = ModelPrice("mine", 2.0, 10.0, "medium")
    assert (row.cache_write, row.cache_read) == (2.5, pytest.approx(0.2))


def test_every_row_is_dated_and_the_retired_ones_name_a_current_replacement():
    assert PRICES_CHECKED == "2026-12-02"
    for row in PRICES.values():
        if row.status != "current" and row.model != "mock-free":
            assert PRICES[row.replacement].status == "current", row.model
    assert "claude-sonnet-4-5" not in current_models() and LIVE_MODEL in current_models()
    assert price_for(LIVE_MODEL).forced_tool_choice and price_for(LIVE_MODEL).sampling


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "3", True])
def test_a_price_that_is_not_a_sum_of_money_is_refused(bad):
    with pytest.raises(ConfigError, match="input_usd_per_mtok"):
        ModelPrice("m", bad, 1.0, "small")


def test_an_unknown_status_is_refused():
    with pytest.raises(ConfigError, match="status"):
        ModelPrice("m", 1.0, 1.0, "small", status="sunset")


def test_meshflow_prices_lays_rows_over_the_table(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text('{"claude-sonnet-5-5": {"cache_read_usd_per_mtok": 0.05},'
                    ' "gateway-model": {"input_usd_per_mtok": 3, "output_usd_per_mtok": 15,'
                    ' "model_class": "medium"}}')
    monkeypatch.setenv("MESHFLOW_PRICES", str(path))
    table = current_prices()
    assert table["claude-sonnet-5-5"].cache_read == 0.05
    assert table["claude-sonnet-5-5"].input_usd_per_mtok == 2.0      # the rest kept
    assert AnthropicAgent(Role.RESEARCHER, model="gateway-model").price.output_usd_per_mtok == 15
    assert PRICES["claude-sonnet-5-5"].cache_read == 0.10            # the table itself unchanged


@pytest.mark.parametrize(("content", "what"), [
    ("not json", "is not JSON"), ("[1, 2]", "no object of models"),
    ('{"m": 5}', "not an object"), ('{"m": {"input_usd_per_mtok": 1, "colour": "red"}}',
                                    "unknown fields ['colour']"),
    ('{"m": {"input_usd_per_mtok": 1}}', "lacks"),
    ('{"m": {"input_usd_per_mtok": -1, "output_usd_per_mtok": 1, "model_class": "small"}}',
     "USD >= 0"),
    ("", "is not JSON"), ("\xff\xfe", "is not JSON"),
])
def test_a_bad_prices_file_is_one_clear_error_naming_the_variable(tmp_path, monkeypatch,
                                                                   content, what):
    path = tmp_path / "prices.json"
    path.write_bytes(content.encode("latin-1"))
    monkeypatch.setenv("MESHFLOW_PRICES", str(path))
    with pytest.raises(ConfigError) as caught:
        current_prices()
    assert what in str(caught.value) and (
        "MESHFLOW_PRICES" in str(caught.value) or "ModelPrice" in str(caught.value))


def test_a_missing_prices_file_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHFLOW_PRICES", str(tmp_path / "nowhere.json"))
    with pytest.raises(ConfigError, match="cannot be read"):
        current_prices()
