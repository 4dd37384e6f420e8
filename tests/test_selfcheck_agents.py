"""Lesson 02's self-checks, judged against real runs of the lesson's workflows in mock
mode, and against refund desks labelled right, wrong and not at all.

Every check is called with a right answer (PASS), wrong answers, values of the wrong
type and filler (HINT): it never raises, and a HINT never gives the answer away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from meshflow_nb import (
    PRICES,
    AgentResult,
    HumanGate,
    MockAgent,
    Node,
    RiskTier,
    Role,
    RunResult,
    WorkflowDefinition,
)
from meshflow_nb.notebook import selfcheck
from meshflow_nb.notebook.selfcheck import Verdict
from meshflow_nb.notebook.selfcheck.agents import PROBE_COUNT, REFUND_DESK

TASK = "Summarise what heat pumps cost to run in a cold climate"
HAIKU = PRICES["claude-haiku-4-5"]

WRONG_TYPES = [None, ["word_count"], {"a": 1}, 9.5, float("nan"), "x" * 100_000, object(), True]
"""Values of every kind a learner might leave where a workflow, a run or a price belongs."""

FILLER = ["todo", "xxx", "lorem ipsum dolor sit amet", "a a a a a a a a", "your answer here",
          "...", "asdf"]
"""Text that fills an answer without saying anything."""


@pytest.fixture(scope="module", autouse=True)
def mock_env() -> Iterator[None]:
    """Mock agents without simulated latency, for every run of this module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        yield


def assert_hint(verdict: Verdict, *expected: str, hides: tuple[str, ...] = ()) -> None:
    """A HINT that says each of ``expected`` and none of ``hides``."""
    assert isinstance(verdict, Verdict) and not verdict.passed, verdict
    for text in expected:
        assert text in verdict.message, verdict
    for secret in hides:
        assert secret not in verdict.message, verdict


# --- exercise 1 ------------------------------------------------------------------------


def word_count_workflow(counter: Callable[..., Any], reporter: Callable[..., Any],
                        exports: tuple[str, ...] = ("word_count",)) -> WorkflowDefinition:
    """Exercise 1's workflow, with the learner's two agents."""
    return (WorkflowDefinition("word_count")
            .add_node(Node("researcher", MockAgent(Role.RESEARCHER), Role.RESEARCHER,
                           RiskTier.READ_ONLY))
            .add_node(Node("counter", counter, Role.EXECUTOR, RiskTier.READ_ONLY,
                           exports=list(exports)))
            .add_node(Node("reporter", reporter, Role.EXECUTOR, RiskTier.INTERNAL))
            .add_edge("researcher", "counter")
            .add_edge("counter", "reporter"))


def counter(ctx: Any) -> dict[str, int]:
    return {"word_count": len(ctx.inputs["researcher"].split()), "note": "counted"}


def reporter(ctx: Any) -> str:
    return f"The brief has {ctx.variables['word_count']} words."


async def async_reporter(ctx: Any) -> AgentResult:
    return AgentResult(text=f"Brief length: {ctx.variables['word_count']:,} words in all.")


def ex1(counter_agent: Callable[..., Any] = counter, reporter_agent: Callable[..., Any] = reporter,
        exports: tuple[str, ...] = ("word_count",)) -> tuple[RunResult, WorkflowDefinition]:
    """A real run of exercise 1 with these agents, and its workflow."""
    workflow = word_count_workflow(counter_agent, reporter_agent, exports)
    return workflow.run(TASK), workflow


@pytest.fixture(scope="module")
def brief_words() -> str:
    """The number of words of the mock researcher's brief: what no HINT may say."""
    run, _ = ex1()
    return str(run.nodes["counter"].variables["word_count"])


@pytest.mark.parametrize("reporter_agent", [reporter, async_reporter], ids=["def", "async def"])
def test_exported_variable_passes_a_count_read_from_the_variables(reporter_agent, brief_words):
    run, workflow = ex1(reporter_agent=reporter_agent)
    verdict = selfcheck.exported_variable(run, ex1_workflow=workflow)
    assert verdict.passed, verdict
    assert f"word_count = {brief_words}" in verdict.message


def test_exported_variable_asks_for_the_agents_first_when_the_cell_is_untouched():
    run, workflow = ex1(lambda ctx: None, lambda ctx: None, exports=())
    assert_hint(selfcheck.exported_variable(run, ex1_workflow=workflow),
                "write counter and reporter in the answer cell above")


def reads_inputs(ctx: Any) -> str:
    return f"The brief has {ctx.inputs['counter']['word_count']} words."


def counts_again(ctx: Any) -> str:
    return f"The brief has {len(ctx.outputs['researcher'].split())} words."


def insists(ctx: Any) -> str:
    assert ctx.variables["word_count"] < PROBE_COUNT, "too many words"
    return f"The brief has {ctx.variables['word_count']} words."


WRONG_EX1 = {
    "no export declared": (counter, reporter, (), "declares them, exports=[...]"),
    "reads its inputs": (counter, reads_inputs, ("word_count",), "somewhere other than ctx"),
    "counts again": (counter, counts_again, ("word_count",), "somewhere other than ctx"),
    "fails when called again": (counter, insists, ("word_count",), "failed when called again"),
    "a constant count": (lambda ctx: {"word_count": 5}, reporter, ("word_count",),
                         "is not the number of words"),
    "the count in quotes": (lambda ctx: {"word_count": "87"}, reporter, ("word_count",),
                            "should be a whole number"),
    "a float count": (lambda ctx: {"word_count": 87.0}, reporter, ("word_count",),
                      "should be a whole number"),
    "the key misspelt": (lambda ctx: {"words": 5}, reporter, ("word_count",),
                         "did not return it"),
    "no count in the sentence": (counter, lambda ctx: "The brief is rather long, I think.",
                                 ("word_count",), "does not state the count"),
    "a reporter that raises": (counter, lambda ctx: 1 / 0, ("word_count",),
                               "reporter failed (ZeroDivisionError"),
}


@pytest.mark.parametrize("case", list(WRONG_EX1))
def test_exported_variable_hints_at_each_wrong_answer(case, brief_words):
    counter_agent, reporter_agent, exports, expected = WRONG_EX1[case]
    run, workflow = ex1(counter_agent, reporter_agent, exports)
    assert_hint(selfcheck.exported_variable(run, ex1_workflow=workflow), expected,
                hides=(brief_words,))


@pytest.mark.parametrize("text", FILLER)
def test_exported_variable_refuses_filler_from_the_reporter(text, brief_words):
    run, workflow = ex1(reporter_agent=lambda ctx: text)
    assert_hint(selfcheck.exported_variable(run, ex1_workflow=workflow), "reporter's text",
                hides=(brief_words,))


def test_exported_variable_wants_the_run_of_this_workflow():
    run, _ = ex1()
    other = word_count_workflow(counter, reporter)
    other.name = "another_name"
    assert_hint(selfcheck.exported_variable(run, ex1_workflow=other),
                "ex1_result is not a run of ex1_workflow")
    assert_hint(selfcheck.exported_variable(None, ex1_workflow=other), "not a run of ex1_workflow")


def test_exported_variable_wants_its_three_nodes_in_order():
    lonely = (WorkflowDefinition("word_count")
              .add_node(Node("researcher", MockAgent(Role.RESEARCHER), Role.RESEARCHER))
              .add_node(Node("reporter", reporter, Role.EXECUTOR))
              .add_edge("researcher", "reporter"))
    assert_hint(selfcheck.exported_variable(lonely.run(TASK), ex1_workflow=lonely),
                "has no counter node")


@pytest.mark.parametrize("value", WRONG_TYPES, ids=lambda v: type(v).__name__)
def test_exported_variable_never_raises_on_a_wrong_type(value):
    run, workflow = ex1()
    for verdict in (selfcheck.exported_variable(run, ex1_workflow=value),
                    selfcheck.exported_variable(value, ex1_workflow=workflow)):
        assert isinstance(verdict, Verdict) and not verdict.passed, verdict


# --- exercise 2 ------------------------------------------------------------------------


def summariser(text: str = "The brief finds that running costs depend on climate and tariff.",
               *, tokens_in: int | None = None, tokens_out: int | None = None,
               cost: float | None = None, confidence: float | None = 0.8,
               model: str | None = HAIKU.model) -> Callable[..., Any]:
    """A summariser that returns an AgentResult; each keyword overrides one right value."""
    def agent(ctx: Any) -> AgentResult:
        brief = ctx.inputs["researcher"]
        said = brief if text == "COPY" else text
        read = len(brief) // 4 if tokens_in is None else tokens_in
        wrote = len(said) // 4 if tokens_out is None else tokens_out
        price = (read * HAIKU.input_usd_per_mtok + wrote * HAIKU.output_usd_per_mtok) / 1e6
        return AgentResult(text=said, tokens_in=read, tokens_out=wrote,
                           cost_usd=price if cost is None else cost, confidence=confidence,
                           model=model)
    return agent


def ex2(agent: Callable[..., Any]) -> RunResult:
    """A real run of exercise 2 with this summariser."""
    return (WorkflowDefinition("priced_summary")
            .add_node(Node("researcher", MockAgent(Role.RESEARCHER), Role.RESEARCHER,
                           RiskTier.READ_ONLY))
            .add_node(Node("summariser", agent, Role.EXECUTOR, RiskTier.INTERNAL))
            .add_edge("researcher", "summariser")).run(TASK)


def test_priced_result_passes_tokens_and_cost_that_reach_the_totals():
    run = ex2(summariser())
    verdict = selfcheck.priced_result(run, ex2_price=HAIKU)
    assert verdict.passed, verdict
    mine = run.nodes["summariser"]
    assert f"{mine.tokens_in + mine.tokens_out} tokens" in verdict.message
    assert f"{run.totals.tokens:,} tokens" in verdict.message
    assert "confidence 0.80" in verdict.message


def test_priced_result_takes_another_model_priced_as_that_model():
    opus = PRICES["claude-opus-4-1"]

    def agent(ctx: Any) -> AgentResult:
        brief, text = ctx.inputs["researcher"], "Running costs depend mostly on the climate."
        read, wrote = len(brief) // 4, len(text) // 4
        return AgentResult(text=text, tokens_in=read, tokens_out=wrote, model=opus.model,
                           cost_usd=(read * opus.input_usd_per_mtok
                                     + wrote * opus.output_usd_per_mtok) / 1e6, confidence=0.6)
    assert selfcheck.priced_result(ex2(agent), ex2_price=opus).passed


WRONG_EX2 = {
    "plain text": (lambda ctx: "Running costs depend on the climate and the tariff.",
                   "reported no tokens and no cost"),
    "no output tokens": (summariser(tokens_out=0), "reported no tokens_out"),
    "no cost": (summariser(cost=0.0), "but no cost_usd"),
    "no model": (summariser(model=None), "did not say which model"),
    "no confidence": (summariser(confidence=None), "gave no confidence"),
    "a model not in the table": (summariser(model="gpt-9"), "which the price table does not have"),
    "another model's name": (summariser(model="claude-opus-4-1"), "charge the prices"),
    "priced per token": (summariser(cost=0.5), "USD per million tokens"),
    "one token read": (summariser(tokens_in=1), "tokens_in = 1 does not look like"),
    "a huge token count": (summariser(tokens_out=10**9), "does not look like"),
    "tokens that are not whole": (summariser(tokens_in=12.5), "summariser failed (ConfigError"),
    "a NaN cost": (summariser(cost=float("nan")), "summariser failed (ConfigError"),
    "a confidence above 1": (summariser(confidence=1.5), "summariser failed (ConfigError"),
    "the brief copied": (summariser("COPY"), "is the researcher's brief itself"),
    "an agent that raises": (lambda ctx: {}["brief"], "summariser failed (KeyError"),
}


@pytest.mark.parametrize("case", list(WRONG_EX2))
def test_priced_result_hints_at_each_wrong_answer(case):
    agent, expected = WRONG_EX2[case]
    assert_hint(selfcheck.priced_result(ex2(agent), ex2_price=HAIKU), expected)


@pytest.mark.parametrize("text", FILLER)
def test_priced_result_refuses_filler_as_the_summary(text):
    verdict = selfcheck.priced_result(ex2(summariser(text)), ex2_price=HAIKU)
    assert_hint(verdict, "summariser's text")


@pytest.mark.parametrize("value", WRONG_TYPES, ids=lambda v: type(v).__name__)
def test_priced_result_never_raises_on_a_wrong_type(value):
    run = ex2(summariser())
    for verdict in (selfcheck.priced_result(run, ex2_price=value),
                    selfcheck.priced_result(value, ex2_price=HAIKU)):
        assert isinstance(verdict, Verdict) and not verdict.passed, verdict


def test_priced_result_wants_the_run_of_the_summariser():
    other = WorkflowDefinition("other").add_node(Node("a", lambda ctx: "x", Role.EXECUTOR))
    assert_hint(selfcheck.priced_result(other.run(TASK), ex2_price=HAIKU),
                "not a run of the summariser")


# --- exercise 3 ------------------------------------------------------------------------


RIGHT_DESK = {name: (role, tier) for name, (role, tier) in REFUND_DESK.items()}


def refund_desk(labels: dict[str, tuple[Any, RiskTier]] | None = None, *,
                edges: list[tuple[str, str]] | None = None,
                extra: bool = False, gate: bool = True) -> WorkflowDefinition:
    """The refund desk of exercise 3 with these (role, tier) labels (default: unset)."""
    labels = labels or {name: (None, RiskTier.INTERNAL) for name in REFUND_DESK}
    desk = WorkflowDefinition("refund_desk")
    for name in ("fetch_order", "draft_reply", "review_reply", "screen_reply"):
        desk.add_node(Node(name, lambda ctx: "done", *labels[name]))
    desk.add_node(HumanGate("approve", content_from="draft_reply") if gate
                  else Node("approve", lambda ctx: "ok", Role.EXECUTOR))
    for name in ("send_reply", "pay_refund"):
        desk.add_node(Node(name, lambda ctx: "done", *labels[name]))
    if extra:
        desk.add_node(Node("log_case", lambda ctx: "logged", Role.EXECUTOR))
    for source, target in edges or [("fetch_order", "draft_reply"),
                                    ("draft_reply", "review_reply"),
                                    ("review_reply", "screen_reply"),
                                    ("screen_reply", "approve"), ("approve", "send_reply"),
                                    ("approve", "pay_refund")]:
        desk.add_edge(source, target)
    return desk


def relabelled(**changes: tuple[Any, RiskTier]) -> dict[str, tuple[Any, RiskTier]]:
    """The right labels with ``changes`` in place."""
    return {**RIGHT_DESK, **changes}


def test_roles_and_tiers_passes_the_right_labels():
    verdict = selfcheck.roles_and_tiers(refund_desk=refund_desk(RIGHT_DESK))
    assert verdict.passed, verdict
    assert "pay_refund (IRREVERSIBLE)" in verdict.message


def test_roles_and_tiers_takes_a_role_written_as_text():
    labels = relabelled(review_reply=("critic", RiskTier.READ_ONLY))
    assert selfcheck.roles_and_tiers(refund_desk=refund_desk(labels)).passed


def test_roles_and_tiers_asks_for_labels_when_the_cell_is_untouched():
    assert_hint(selfcheck.roles_and_tiers(refund_desk=refund_desk()),
                "set role= and risk_tier= of each node")


WRONG_DESK = {
    "a role missing": (relabelled(fetch_order=(None, RiskTier.READ_ONLY)),
                       "fetch_order (it has no role yet)"),
    "a wrong role": (relabelled(screen_reply=(Role.CRITIC, RiskTier.READ_ONLY)),
                     "screen_reply (its role: which kind of work is it?)"),
    "a tier too low": (relabelled(pay_refund=(Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO)),
                       "pay_refund (its risk tier is too low"),
    "a tier too high": (relabelled(review_reply=(Role.CRITIC, RiskTier.INTERNAL)),
                        "review_reply (its risk tier is too high"),
    "role and tier wrong": (relabelled(send_reply=(Role.EXECUTOR, RiskTier.INTERNAL)),
                            "send_reply (its role: which kind of work is it?, its risk tier "
                            "is too low"),
    "the human role on an agent": (relabelled(draft_reply=(Role.HUMAN, RiskTier.INTERNAL)),
                                   "Role.HUMAN belongs to human gates"),
    "the same role everywhere": ({name: (Role.EXECUTOR, tier)
                                  for name, (_, tier) in RIGHT_DESK.items()},
                                 "every node of refund_desk has Role.EXECUTOR"),
}


@pytest.mark.parametrize("case", list(WRONG_DESK))
def test_roles_and_tiers_hints_at_each_wrong_label(case):
    labels, expected = WRONG_DESK[case]
    verdict = selfcheck.roles_and_tiers(refund_desk=refund_desk(labels))
    assert_hint(verdict, expected, hides=("IRREVERSIBLE", "ORCHESTRATOR", "GUARDIAN"))


def test_roles_and_tiers_counts_every_node_to_look_at():
    labels = relabelled(fetch_order=(Role.PLANNER, RiskTier.READ_ONLY),
                        send_reply=(Role.ORCHESTRATOR, RiskTier.IRREVERSIBLE))
    assert_hint(selfcheck.roles_and_tiers(refund_desk=refund_desk(labels)),
                "2 nodes of 6 to look at again: fetch_order", "; send_reply")


@pytest.mark.parametrize(("desk", "expected"), [
    (lambda: refund_desk(RIGHT_DESK, extra=True), "nodes the answer cell did not give it"),
    (lambda: refund_desk(RIGHT_DESK, gate=False), "keep the gate and the edges"),
    (lambda: refund_desk(RIGHT_DESK, edges=[("fetch_order", "draft_reply"),
                                            ("draft_reply", "review_reply"),
                                            ("review_reply", "screen_reply"),
                                            ("screen_reply", "send_reply"),
                                            ("approve", "pay_refund")]),
     "keep the gate and the edges"),
    (lambda: WorkflowDefinition("refund_desk").add_node(Node("fetch_order", lambda c: "x")),
     "refund_desk has no draft_reply"),
], ids=["a node added", "the gate made an agent", "rewired", "nodes removed"])
def test_roles_and_tiers_wants_the_desk_as_given(desk, expected):
    assert_hint(selfcheck.roles_and_tiers(refund_desk=desk()), expected)


@pytest.mark.parametrize("value", WRONG_TYPES, ids=lambda v: type(v).__name__)
def test_roles_and_tiers_never_raises_on_a_wrong_type(value):
    verdict = selfcheck.roles_and_tiers(refund_desk=value)
    assert isinstance(verdict, Verdict) and not verdict.passed, verdict


def test_each_check_reads_its_answers_by_name():
    """The names the lesson's cells use: a check called with an unknown one says so."""
    assert_hint(selfcheck.roles_and_tiers(desk=refund_desk()), "does not read desk")
    assert_hint(selfcheck.priced_result(None, None, None), "takes 1 value(s)")
