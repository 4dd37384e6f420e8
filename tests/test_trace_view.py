"""The trace view: real runs export their spans to a real OTLP receiver on 127.0.0.1, and
the view picks one run's trace, tabulates it and draws it as a timeline per node."""

from __future__ import annotations

import pytest

from meshflow_nb import ConfigError, fixed_approver
from meshflow_nb.notebook import plot_trace, trace_of, trace_table, trace_text
from meshflow_nb.pipelines import build_capstone_pipeline
from meshflow_nb.telemetry import OtlpReceiver

pytestmark = pytest.mark.usefixtures("mock_mode")


@pytest.fixture(scope="module")
def traced() -> tuple[list, list]:
    """Two capstone runs, approved and rejected at the gate, and every span they exported."""
    with pytest.MonkeyPatch.context() as env, OtlpReceiver() as receiver:
        env.setenv("MESHFLOW_MOCK", "1")
        env.setenv("MESHFLOW_MOCK_LATENCY", "0")
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        pipeline = build_capstone_pipeline()
        runs = [pipeline.run("t", approver=fixed_approver(verdict, "dana", "test"))
                for verdict in (True, False)]
        receiver.wait_for(sum(r.totals.node_executions + 1 for r in runs), timeout_s=10)
        return runs, list(receiver.spans)


def test_trace_of_picks_one_runs_trace(traced: tuple) -> None:
    (approved, rejected), spans = traced
    trace = trace_of(spans, approved.run_id)
    assert {s.trace_id for s in trace} == {trace[0].trace_id}
    assert trace[0].name == "invoke_workflow production_pipeline"
    assert [s.start_ns for s in trace] == sorted(s.start_ns for s in trace)
    names = [s.name for s in trace]
    assert names.count("invoke_agent writer") == 2 and "invoke_agent publisher" in names
    assert "invoke_agent publisher" not in [s.name for s in trace_of(spans, rejected.run_id)]


@pytest.mark.parametrize(("spans", "run_id", "says"), [
    ("both", None, "come from 2 traces"),
    ("both", "nope", "no span of run nope"),
    ("none", None, "no spans"),
    ("text", None, "not str"),
    ("numbers", None, "int 1 is not a span"),
])
def test_anything_else_is_a_config_error_that_says_what_to_pass(traced: tuple, spans: str,
                                                                run_id: str | None,
                                                                says: str) -> None:
    given = {"both": traced[1], "none": [], "text": "spans", "numbers": [1, 2]}[spans]
    with pytest.raises(ConfigError, match=says):
        trace_of(given, run_id)


def test_the_table_has_a_row_per_span_and_the_gen_ai_attributes(traced: tuple) -> None:
    (approved, _), spans = traced
    table = trace_table(trace_of(spans, approved.run_id))
    assert len(table) == approved.totals.node_executions + 1
    assert {"span", "start_s", "duration_s", "gen_ai.agent.name",
            "gen_ai.usage.output_tokens"} <= set(table.columns)
    writers = table[table["gen_ai.agent.name"] == "writer"]
    assert list(writers["gen_ai.usage.output_tokens"]) == [
        n.tokens_out for n in [e for e in approved.events
                               if e.type.value == "node_complete" and e.node_id == "writer"]]


def test_the_figure_has_a_row_per_node_and_prints_the_span_tree(traced: tuple) -> None:
    (approved, _), spans = traced
    trace = trace_of(spans, approved.run_id)
    figure = plot_trace(trace)
    rows = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert rows[0] == "invoke_workflow production_pipeline"
    assert rows.count("writer") == 1 and "human_gate hitl_gate" in rows
    text = figure.text()
    assert text == trace_text(trace) and text.startswith("trace of 10 spans")
    assert "\n    invoke_agent researcher" in text   # indented under the root
    assert figure._repr_png_().startswith(b"\x89PNG")
