"""The notebook widgets, driven as JupyterLab would drive them (button clicks, typed
text) but without a browser: the live view, the approval panel, the ledger explorer."""

from __future__ import annotations

import asyncio
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from meshflow_nb import (
    AgentResult,
    ApprovalConfigError,
    Decision,
    EventType,
    GateRequest,
    MeshEvent,
    MeshflowError,
    Node,
    Policy,
    PolicyMode,
    ReplayLedger,
    RiskTier,
    Role,
    WorkflowDefinition,
)
from meshflow_nb.notebook import ApprovalPanel, LedgerExplorer, LiveView, run_live
from meshflow_nb.notebook.drawing import STATE_FILLS, legend_html
from meshflow_nb.notebook.explorer import DAMAGED_STYLE
from meshflow_nb.notebook.live import WouldBlockKernelError
from meshflow_nb.notebook.liveview import TABLE_COLUMNS
from meshflow_nb.pipelines import build_capstone_pipeline

TASK = "solid-state batteries"


@pytest.fixture(autouse=True)
def _mock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    monkeypatch.delenv("MESHFLOW_HITL", raising=False)
    monkeypatch.delenv("MESHFLOW_REVIEWER", raising=False)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def ledger_decision(ledger: ReplayLedger, run_id: str) -> dict:
    events = [e for e in ledger.events(run_id) if e.type.value in ("gate_resume", "gate_reject")]
    assert len(events) == 1
    return {"type": events[0].type.value, **events[0].payload}


def start(tmp_path: Path, panel: ApprovalPanel, **kwargs):
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    workflow = ledger.attach(build_capstone_pipeline(**kwargs))
    return ledger, workflow.start(TASK, approver=panel)


@pytest.mark.parametrize("approve", [True, False])
def test_buttons_decide_the_gate_in_the_reviewers_name(tmp_path: Path, approve: bool) -> None:
    panel = ApprovalPanel(environ={})
    ledger, handle = start(tmp_path, panel)
    wait_until(lambda: panel.waiting)
    assert not panel.approve_button.disabled
    assert "Approve this draft" in panel.question.value and "EXTERNAL_IO" in panel.question.value
    assert "What the analyses found" in panel.draft.value  # the writer's draft
    panel.reviewer.value = "Ada Lovelace"
    panel.reason.value = "checked the figures"
    (panel.approve_button if approve else panel.reject_button).click()
    result = handle.result(10)
    assert result.status.value == ("completed" if approve else "rejected_at_gate")
    publisher = result.nodes.get("publisher")
    assert (publisher is not None and publisher.status == "completed") is approve
    recorded = ledger_decision(ledger, result.run_id)
    assert recorded["reviewer"] == "Ada Lovelace"
    assert recorded["channel"] == "notebook"
    assert recorded["reason"] == "checked the figures"
    assert panel.approve_button.disabled and panel.reject_button.disabled
    assert "Ada Lovelace" in panel.text()


def test_a_click_without_a_reviewer_decides_nothing(tmp_path: Path) -> None:
    panel = ApprovalPanel(environ={})
    _, handle = start(tmp_path, panel)
    wait_until(lambda: panel.waiting)
    panel.approve_button.click()
    assert panel.waiting and not handle.done()
    assert "Type your name in Reviewer" in panel.status.value
    panel.reviewer.value = "Grace"
    panel.reject_button.click()
    assert handle.result(10).status.value == "rejected_at_gate"


def test_the_gate_timeout_ends_the_wait(tmp_path: Path) -> None:
    panel = ApprovalPanel(environ={})
    ledger, handle = start(tmp_path, panel, gate_timeout_s=0.3)
    result = handle.result(10)
    assert result.status.value == "rejected_at_gate"
    assert ledger_decision(ledger, result.run_id)["channel"] == "timeout"
    assert not panel.waiting and panel.approve_button.disabled
    assert "in time" in panel.text()


@pytest.mark.parametrize(("kwargs", "environ", "approved", "source"), [
    ({"decision": "reject"}, {}, False, "decision='reject'"),
    ({}, {"MESHFLOW_HITL": "approve"}, True, "MESHFLOW_HITL=approve"),
])
def test_headless_decisions_are_shown_and_recorded_as_headless(
        tmp_path: Path, kwargs: dict, environ: dict, approved: bool, source: str) -> None:
    panel = ApprovalPanel(**kwargs, environ=environ)
    assert panel.approve_button not in panel.widget.children  # nobody to click
    ledger, handle = start(tmp_path, panel)
    result = handle.result(10)
    recorded = ledger_decision(ledger, result.run_id)
    assert recorded["channel"] == "headless" and recorded["approved"] is approved
    assert source in recorded["reason"]
    assert source in panel.text()


@pytest.mark.parametrize(("kwargs", "environ", "name", "value"), [
    ({"decision": "maybe"}, {}, "decision", "maybe"),
    ({}, {"MESHFLOW_HITL": "perhaps"}, "MESHFLOW_HITL", "perhaps"),
    ({}, {"MESHFLOW_HITL": "store"}, "MESHFLOW_HITL", "store"),  # the panel is no store
])
def test_a_bad_decision_is_refused_before_anything_runs(
        kwargs: dict, environ: dict, name: str, value: str) -> None:
    with pytest.raises(ApprovalConfigError) as caught:
        ApprovalPanel(**kwargs, environ=environ)
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r} is not a decision; set {name} to 'approve' "
                              "or 'reject', or leave it unset to decide with the buttons")
    assert "store" not in message.removeprefix(f"{name}={value!r}")
    assert caught.value.field == name and isinstance(caught.value, ValueError)


def test_a_long_draft_is_cut_and_says_so() -> None:
    panel = ApprovalPanel("approve", environ={})
    request = GateRequest("r1", "gate", "x" * 5000, "Publish?", ("publish",), RiskTier.EXTERNAL_IO)
    asyncio.run(panel(request))
    assert "x" * 4000 + "… (the first 4000 characters)" in panel.draft.value
    assert "Draft: " + "x" * 300 + "… (the first 300 characters)" in panel.text()


def test_result_refuses_to_block_the_kernel_while_the_panel_waits(tmp_path: Path) -> None:
    live = run_live(build_capstone_pipeline(), TASK, show=False)
    live.panel.reviewer.value = "Ada"
    wait_until(lambda: live.panel.waiting)
    with pytest.raises(WouldBlockKernelError, match="await live") as caught:
        live.result()
    assert isinstance(caught.value, MeshflowError) and isinstance(caught.value, RuntimeError)
    live.panel.approve_button.click()
    assert live.result(10).status.value == "completed"


def fan_out(width: int) -> WorkflowDefinition:
    workflow = WorkflowDefinition("wide").add_node(Node("start", lambda c: "go", Role.PLANNER))
    workflow.add_node(Node("join", lambda c: "done", Role.CRITIC))
    for i in range(width):
        workflow.add_node(Node(f"n{i}", lambda c: "x", Role.EXECUTOR))
        workflow.add_edge("start", f"n{i}").add_edge(f"n{i}", "join")
    return workflow


def test_a_200_node_run_is_redrawn_a_few_times_not_per_event() -> None:
    workflow = fan_out(200)
    view = LiveView(workflow, throttle_s=0.25)
    result = workflow.run(TASK, on_event=view)
    events = len(result.events)
    assert events > 400
    assert view.redraws < events / 20, (view.redraws, events)
    # the last redraw shows the end: every node done, all rows counted
    assert view._graph.value.count(STATE_FILLS["done"]) >= 202
    assert view.model.totals["status"] == "completed"
    assert f"of {events} events" in view._table.value  # only the newest rows are drawn


def test_replay_from_the_ledger_gives_the_live_picture(tmp_path: Path) -> None:
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    workflow = ledger.attach(build_capstone_pipeline())
    live = LiveView(workflow)
    result = workflow.run(TASK, approver=ApprovalPanel("approve", environ={}), on_event=live)
    replayed = LiveView(workflow).replay(ledger.events(result.run_id))
    assert replayed.model.states == live.model.states
    assert replayed.model.totals["node_executions"] == live.model.totals["node_executions"]
    assert replayed.text().splitlines()[:8] == live.text().splitlines()[:8]


def test_explorer_highlights_a_tamper_after_verify_again(tmp_path: Path) -> None:
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    workflow = ledger.attach(build_capstone_pipeline())
    result = workflow.run(TASK, approver=ApprovalPanel("approve", environ={}))
    explorer = LedgerExplorer(ledger, workflow=workflow)
    assert "VALID" in explorer.summary.value and DAMAGED_STYLE not in explorer.table.value
    ledger.flush()
    with duckdb.connect(ledger.location) as db:
        db.execute("""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2""")
    explorer.verify_button.click()
    assert "DAMAGED" in explorer.summary.value and "seq 2: edited" in explorer.summary.value
    assert DAMAGED_STYLE.split(";")[0] in explorer.table.value
    assert "edited" in explorer.text()
    explorer.runs.value = result.run_id
    explorer.replay_pace_s = 0
    explorer.replay_button.click()
    assert explorer.replayed is not None
    wait_until(lambda: explorer.replayed.model.totals["status"] == "completed")
    assert explorer.replayed.widget in explorer.replay_box.children


def test_replay_without_the_workflow_draws_the_recorded_nodes(tmp_path: Path) -> None:
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    workflow = ledger.attach(build_capstone_pipeline())
    result = workflow.run(TASK, approver=ApprovalPanel("reject", environ={}))
    explorer = LedgerExplorer(ledger, run_id=result.run_id, replay_pace_s=0)
    view = explorer.replay()
    assert set(view.model.states) == {"researcher", "analyst_a", "analyst_b", "writer",
                                      "quality_gate", "hitl_gate"}
    assert view.model.states["hitl_gate"].state == "rejected"
    assert "human gate" in view.model.svg()
    with pytest.raises(ValueError, match="choose a run"):
        LedgerExplorer(ledger).replay()


# --- what a learner sees: legend, event table, draft, header ------------------------


class Elements(HTMLParser):
    """Every start tag of an HTML text, with its attributes and the text inside it."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[list[str]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        texts: list[str] = []
        self.found.append((tag, {k: v or "" for k, v in attrs}, texts))
        if tag not in ("br", "hr", "img", "input", "meta", "link"):
            self._open.append(texts)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for texts in self._open:
            texts.append(data)

    def tags(self, tag: str) -> list[tuple[dict[str, str], str]]:
        return [(attrs, "".join(texts)) for t, attrs, texts in self.found if t == tag]


def css(style: str) -> dict[str, str]:
    """An inline style attribute as {property: value}."""
    pairs = (part.split(":", 1) for part in style.split(";") if ":" in part)
    return {k.strip().lower(): v.strip().lower() for k, v in pairs}


def contrast(first: str, second: str) -> float:
    """The WCAG 2 contrast ratio of two #rrggbb colours (1 to 21)."""
    def luminance(colour: str) -> float:
        channels = [int(colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
                   for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_ratio_matches_the_wcag_reference_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


def test_every_state_has_a_whole_readable_chip_in_the_legend() -> None:
    view = LiveView(build_capstone_pipeline())
    for legend in (view._legend.value, view.html()):
        page = Elements(legend)
        box = css(next(a["style"] for a, _ in page.tags("div")
                       if "meshflow-legend" in a.get("class", "")))
        assert box["display"] == "flex" and box["flex-wrap"] == "wrap"  # wraps, never clips
        chips = {text: css(a["style"]) for a, text in page.tags("span")
                 if "meshflow-chip" in a.get("class", "")}
        assert set(chips) == set(STATE_FILLS)  # each state's full name, e.g. "rejected"
        for state, style in chips.items():
            assert style["background"] == STATE_FILLS[state]
            assert contrast(style["background"], style["color"]) >= 4.5, state
            assert style["white-space"] == "nowrap" and style["display"] == "inline-block"
            assert "overflow" not in style and "width" not in style
    assert view._legend in view.widget.children[2].children[0].children
    assert view._legend.layout.width == "100%"
    assert legend_html() == view._legend.value


def test_the_event_tables_header_stays_on_top_of_a_bounded_scroll_area() -> None:
    workflow = fan_out(40)
    view = LiveView(workflow)
    workflow.run(TASK, on_event=view)
    for table in (view._table.value, view.html()):
        page = Elements(table)
        scroll = css(next(a["style"] for a, _ in page.tags("div")
                          if "meshflow-events-scroll" in a.get("class", "")))
        assert re.fullmatch(r"\d+px", scroll["max-height"])
        assert scroll["overflow-y"] in ("auto", "scroll")
        headers = page.tags("th")
        assert tuple(text for _, text in headers) == tuple(TABLE_COLUMNS)
        for attrs, _ in headers:
            style = css(attrs["style"])
            assert style["position"] == "sticky" and style["top"] == "0"
            assert style["background"]  # opaque: rows scroll under it, not through it
        assert len(page.tags("tr")) == len(view.model.rows) + 1


HOSTILE_DRAFT = """# Findings

Solid-state cells need **attention** to dendrites and *interfaces*.

- higher energy density
- slower charging

<script>alert(1)</script>

<img src=x onerror=alert(1)>

See [x](javascript:alert(1)) and [the review](https://example.org/review).
"""


def test_a_markdown_draft_renders_as_markdown_and_nothing_hostile_survives() -> None:
    panel = ApprovalPanel("approve", environ={})
    request = GateRequest("r1", "gate", HOSTILE_DRAFT, "Publish?", ("publish",),
                          RiskTier.EXTERNAL_IO)
    asyncio.run(panel(request))
    for shown in (panel.draft.value, panel.html()):
        page = Elements(shown)
        assert ({}, "attention") in page.tags("strong")
        assert [text for _, text in page.tags("li")] == ["higher energy density",
                                                          "slower charging"]
        assert [text for _, text in page.tags("h1")] == ["Findings"]
        assert not page.tags("script") and not page.tags("img")
        for tag, attrs, _ in page.found:
            assert not any(name.startswith("on") for name in attrs), (tag, attrs)
            assert not attrs.get("href", "https:").lower().startswith(("javascript", "data"))
        for hostile in ("<script", "onerror", "javascript:", "alert("):
            assert hostile not in shown.lower()
        links = page.tags("a")
        assert [(a["href"], text) for a, text in links] == [
            ("https://example.org/review", "the review")]
        assert links[0][0]["target"] == "_blank" and "noopener" in links[0][0]["rel"]
        assert "[HTML left out]" in shown  # the reviewer is told something was there
    assert "<script>alert(1)</script>" in panel.text()  # the plain text shows it as written


def test_the_draft_wraps_between_words_in_a_proportional_font() -> None:
    panel = ApprovalPanel("approve", environ={})
    draft = "A " + "supercalifragilistic" * 8 + " word.\n\n```\nkeep = 'attention'\n```\n"
    asyncio.run(panel(GateRequest("r1", "gate", draft, "Publish?", (), RiskTier.INTERNAL)))
    page = Elements(panel.draft.value)
    box = css(next(a["style"] for a, _ in page.tags("div")
                   if "meshflow-draft" in a.get("class", "")))
    assert box["overflow-wrap"] == "anywhere" and box.get("word-break", "normal") == "normal"
    assert "monospace" not in box["font-family"] and box["white-space"] == "normal"
    assert "break-all" not in panel.draft.value
    assert next(text for _, text in page.tags("p")) == "A " + "supercalifragilistic" * 8 + " word."
    (code_block, _), = page.tags("pre")  # a code block keeps its words whole too
    assert css(code_block["style"])["word-break"] == "normal"


@pytest.mark.parametrize("approve", [True, False])
def test_the_header_says_waiting_for_a_decision_while_the_gate_waits(approve: bool) -> None:
    live = run_live(build_capstone_pipeline(), TASK, show=False)
    header = live.view._totals
    wait_until(lambda: live.panel.waiting)
    wait_until(lambda: "waiting for a decision on hitl_gate" in header.value)
    assert ">running<" not in header.value
    assert "waiting for a decision on hitl_gate" in live.view.text()
    live.panel.reviewer.value = "Ada"
    (live.panel.approve_button if approve else live.panel.reject_button).click()
    result = live.result(10)
    wait_until(lambda: live.view.model.totals["status"] == result.status.value)
    assert "waiting for a decision" not in header.value
    status = "completed" if approve else "rejected_at_gate"
    assert f"<b class='meshflow-status'>{status}</b>" in header.value


def partial(seq: int, node: str, delta: str) -> MeshEvent:
    return MeshEvent(run_id="r", seq=seq, ts="2026-12-02T10:00:00+00:00",
                     type=EventType.NODE_PARTIAL, node_id=node, payload={"delta": delta})


def test_streamed_text_shows_as_the_node_writes_and_makes_no_table_rows() -> None:
    view = LiveView(build_capstone_pipeline(quality_scores=[0.9]), throttle_s=0)
    start = MeshEvent(run_id="r", seq=1, ts="2026-12-02T10:00:00+00:00",
                      type=EventType.NODE_START, node_id="writer", payload={"iteration": 1})
    view(start)
    for piece in ("# Solid-state ", "batteries <b>now</b>", " and later"):
        view(partial(1, "writer", piece))
    view._throttle.flush()
    assert len(view.model.rows) == 1                     # the start only
    shown = view._streaming.value
    assert "writer</b> is writing" in shown and "and later" in shown
    assert "<b>now</b>" not in shown and "&lt;b&gt;now" in shown   # text, never markup
    view(MeshEvent(run_id="r", seq=2, ts="2026-12-02T10:00:01+00:00",
                   type=EventType.NODE_COMPLETE, node_id="writer", output="done",
                   payload={"iteration": 1, "duration_ms": 1.0}))
    view._throttle.flush()
    assert view._streaming.value == "" and len(view.model.rows) == 2


def test_a_node_still_running_when_the_run_ends_is_drawn_cancelled_not_running() -> None:
    view = LiveView(build_capstone_pipeline(quality_scores=[0.9]), throttle_s=0)
    for seq, (kind, node, payload) in enumerate([
            (EventType.NODE_START, "analyst_a", {"iteration": 1}),
            (EventType.NODE_START, "analyst_b", {"iteration": 1}),
            (EventType.RUN_COMPLETE, None, {"status": "cancelled"})], start=1):
        view(MeshEvent(run_id="r", seq=seq, ts="2026-12-02T10:00:00+00:00", type=kind,
                       node_id=node, payload=payload))
    assert {view.model.states[n].state for n in ("analyst_a", "analyst_b")} == {"cancelled"}
    assert "cancelled" in view._legend.value


def test_the_panel_says_what_is_asking_a_gate_a_risky_node_or_an_unsure_agent() -> None:
    """The run tells the approver why it asks; the panel's title and text say it."""
    unsure = AgentResult(text="Probably waterproof.", uncertainty=0.8)
    flow = (WorkflowDefinition("asks").add_node(Node("lookup", lambda c: unsure, Role.RESEARCHER))
            .add_node(Node("send", lambda c: "sent", Role.EXECUTOR,
                           risk_tier=RiskTier.EXTERNAL_IO))
            .add_edge("lookup", "send"))
    seen: list[GateRequest] = []

    def approver(request: GateRequest) -> Decision:
        seen.append(request)
        return Decision(True, "dana", "checked")

    flow.run("t", policy=Policy(PolicyMode.STANDARD), approver=approver)
    assert [(r.node_id, r.reason) for r in seen] == [("lookup", "uncertainty"),
                                                      ("send", "risk_tier")]
    for request, title in zip(seen, ("Unsure agent lookup", "Risky node send"), strict=True):
        panel = ApprovalPanel("approve", environ={})
        asyncio.run(panel(request))
        assert panel.text().startswith(title) and f"<b>{title}</b>" in panel.question.value
