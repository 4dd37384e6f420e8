"""The notebook's view of cross-run learning (meshflow_nb.notebook.learning_view): the
store beside a ledger, revisions and learning of a run, and revisions over runs plotted,
from real mock runs of the capstone."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from meshflow_nb import ConfigError, Policy, fixed_approver
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import learned, learning_store, plot_revisions, revisions
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

APPROVE = fixed_approver(True, "tester", "approved in a test")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Two learning runs on one fresh ledger, then one with the layer off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        ledger = ReplayLedger(tmp_path_factory.mktemp("view") / "view.duckdb")
        pipeline = ledger.attach(build_capstone_pipeline())

        def run(on: bool = True):
            return pipeline.run(CAPSTONE_TASK, approver=APPROVE,
                                policy=Policy(enable_cross_run_learning=on))

        yield SimpleNamespace(ledger=ledger, first=run(), second=run(), off=run(False))


def test_the_store_is_the_one_beside_the_ledger(runs: SimpleNamespace) -> None:
    store = learning_store(runs.ledger)
    assert store.location.endswith("view.learning.duckdb")
    assert learning_store(runs.ledger.location).location == store.location
    assert set(store.to_dataframe().run_id) == {runs.first.run_id, runs.second.run_id}
    with pytest.raises(ConfigError, match="belongs to a ledger"):
        learning_store(42)


def test_revisions_and_learned_read_the_run(runs: SimpleNamespace) -> None:
    assert [revisions(r) for r in (runs.first, runs.second, runs.off)] == [1, 0, 1]
    assert revisions(runs.first.events, node="researcher") == 0
    assert [learned(r) for r in (runs.first, runs.off)] == [True, False]
    assert learned([e for e in runs.first.events if e.type.value != "run_start"]) is None


def test_plot_revisions_draws_a_line_per_series(runs: SimpleNamespace) -> None:
    figure = plot_revisions({"on": [runs.first, runs.second], "off": [runs.off]}, resets=[2])
    assert figure.text() == "on             1 0\noff            1\nstore emptied before run 2"
    assert len(figure.axes[0].lines) == 3  # two series and the reset line
    assert figure._repr_png_().startswith(b"\x89PNG")


@pytest.mark.parametrize(("series", "says"), [
    ([1, 2], "draws series of runs"), ({}, "draws series of runs"),
    ({1: []}, "labels of the series should be text"), ({"on": []}, "should be a list of runs"),
    ({"on": "run"}, "should be a list of runs"),
])
def test_plot_revisions_says_what_to_pass(series: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        plot_revisions(series)
