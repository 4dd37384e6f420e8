"""The self-check framework and lesson 16's checks, judged against real runs of the
capstone in mock mode (approve and reject) on fresh ledgers.

Every check is called with a right answer (PASS), wrong answers, values of the wrong
type and filler (HINT): it never raises, and a HINT never gives the answer away.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import numpy as np
import pytest

from meshflow_nb import HumanInLoopConfig, Policy, PolicyMode, RiskTier, fixed_approver
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import explore, selfcheck
from meshflow_nb.notebook.selfcheck import Verdict, hint, passed, self_check
from meshflow_nb.notebook.selfcheck.expect import Count, ListOf, MappingOf, OneOf, Pair, Text
from meshflow_nb.notebook.selfcheck.text import filler_reason, first_duplicate
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

DECISIONS = ("approve", "reject")
COUNTS = {"approve": (9, 1), "reject": (7, 1)}
"""(nodes_executed, loop_iterations) of the capstone with quality scores 0.6 then 0.85:
approved, every node ran and the gate too; rejected, the gate and the publisher did not
complete."""

WRONG_TYPES = [None, ["output"], {"a": 1}, 9.5, "nine", object(), True]
"""Values of every kind a learner might type where another kind belongs."""

FILLER = ["todo", "xxx", "lorem ipsum dolor sit amet", "a a a a a a a a",
          "stuff stuff stuff stuff", "   ", "your answer here", "asdf"]
"""Text that fills a cell without saying anything."""

RIGHT_CHECKLIST = {
    "agents": [
        ("Replace each mock agent with a real LLM call through the anthropic SDK", "High"),
        ("Add retries with backoff for rate limits and transient API failures", "Medium"),
        ("Load versioned prompt templates from a prompt store", "Medium"),
    ],
    "secrets": [
        ("Read ANTHROPIC_API_KEY from the environment, never from source", "Low"),
        ("Keep every credential in a secrets manager such as Vault", "Medium"),
        ("Rotate the API keys on a schedule", "Low"),
    ],
    "ledger": [
        ("Point MESHFLOW_LEDGER_DB at a PostgreSQL database", "Medium"),
        ("Apply database migrations before deploying a new pipeline version", "Medium"),
        ("Configure ledger backups with point-in-time recovery", "Medium"),
    ],
    "hitl": [
        ("Send approval requests to reviewers through a webhook or Slack bot", "High"),
        ("Reject automatically when nobody decides within 24 hours", "Low"),
        ("Attribute every approval to a named human reviewer", "Low"),
    ],
    "observability": [
        ("Export spans to an OpenTelemetry backend such as Grafana Tempo", "Medium"),
        ("Alert on blocked verdicts, expensive nodes and long quality loops", "Medium"),
        ("Write structured logs keyed by run_id", "Low"),
    ],
    "infrastructure": [
        ("Containerise the pipeline with Docker", "Medium"),
        ("Schedule recurring runs on Kubernetes CronJobs", "High"),
        ("Set CPU and memory limits per container", "Low"),
        ("Run a staging environment against a shadow ledger", "High"),
    ],
}
RIGHT_RISK = ("Secrets management is the riskiest gap: an API key left in source leaks with "
              "the code, and whoever finds it can run up costs or read our data.")


@pytest.fixture(scope="module")
def mock_env() -> Iterator[None]:
    """Mock agents without simulated latency, for every run of this module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        yield


def policy(**changes: Any) -> Policy:
    """The lesson's governance, in short: REGULATED, budgets, learning, a gate before
    EXTERNAL_IO."""
    return Policy(mode=PolicyMode.REGULATED, budget_usd=5.0, carbon_budget_g=500.0,
                  enable_cross_run_learning=True,
                  human_in_loop=HumanInLoopConfig(enabled=True,
                                                  tier_threshold=RiskTier.EXTERNAL_IO),
                  **changes)


def capstone(folder: Path, file: str, **options: Any) -> Any:
    """The capstone on a fresh ledger file of its own (so a fresh learning store too)."""
    options.setdefault("policy", policy())
    ledger = ReplayLedger(str(folder / f"{file}.duckdb"))
    return ledger, ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85],
                                                         **options))


def approver(decision: str) -> Any:
    return fixed_approver(decision == "approve", "tester", f"{decision} in a test")


@pytest.fixture(scope="module")
def runs(mock_env: None, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Real runs, one of each kind the lesson's exercises judge."""
    tmp = tmp_path_factory.mktemp("selfcheck")
    found = SimpleNamespace(result={}, events={})
    for decision in DECISIONS:
        _, pipeline = capstone(tmp, f"run-{decision}")
        found.result[decision] = pipeline.run(CAPSTONE_TASK, approver=approver(decision))
        _, pipeline = capstone(tmp, f"stream-{decision}")
        found.events[decision] = list(pipeline.stream(CAPSTONE_TASK,
                                                      approver=approver(decision)))
    _, broken = capstone(tmp, "broken", human_gate=False, name="production_pipeline_no_gate")
    found.rejected = broken.run(CAPSTONE_TASK)
    _, found.fixed_pipeline = capstone(tmp, "fixed")
    found.fixed_events = first_node(found.fixed_pipeline)
    _, found.policy_off = capstone(tmp, "policy-off", policy=Policy("dev"), human_gate=False)
    found.policy_off_events = first_node(found.policy_off)
    found.tampered, found.restored, found.untouched = tamper(tmp)
    return found


def first_node(pipeline: Any) -> list[Any]:
    """The events of a run up to its first node_complete, as exercise 3's cell streams."""
    events = []
    for event in pipeline.stream(CAPSTONE_TASK):
        events.append(event)
        if event.type.value == "node_complete":
            break
    return events


def tamper(tmp: Path) -> tuple[Any, Any, Any]:
    """Exercise 4 for real: a run, its export, an UPDATE behind the ledger's back, and
    the export loaded into a fresh ledger."""
    ledger, pipeline = capstone(tmp, "ex4")
    run = pipeline.run(CAPSTONE_TASK, approver=approver("approve"))
    export = ledger.export_run(run.run_id)
    untouched = explore(ledger)
    ledger.flush()
    with duckdb.connect(ledger.location) as attacker:
        attacker.execute("""UPDATE ledger_entries SET output = '{"t": 1}' WHERE seq = 2""")
    restored = ReplayLedger(str(tmp / "ex4-restored.duckdb"))
    restored.import_run(export)
    return explore(ledger), restored.verify_chain(), untouched


def assert_pass(verdict: Verdict, *phrases: str) -> None:
    assert isinstance(verdict, Verdict), verdict
    assert verdict.passed, str(verdict)
    assert str(verdict).startswith("PASS: ")
    for phrase in phrases:
        assert phrase in verdict.message, str(verdict)


def assert_hint(verdict: Verdict, *phrases: str, hides: Any = None) -> None:
    """A HINT naming each phrase; with ``hides``, the right answer is not in it."""
    assert isinstance(verdict, Verdict), verdict
    assert not verdict.passed, str(verdict)
    assert str(verdict).startswith("HINT: ")
    for phrase in phrases:
        assert phrase in verdict.message, str(verdict)
    if hides is not None:
        assert str(hides) not in verdict.message, str(verdict)


# --- exercise 1: node_map ---------------------------------------------------------------


@pytest.mark.parametrize("decision", DECISIONS)
def test_node_map_passes_the_counts_of_the_learners_run(runs: SimpleNamespace,
                                                        decision: str) -> None:
    nodes, loops = COUNTS[decision]
    verdict = selfcheck.node_map(runs.result[decision], nodes_executed=nodes,
                                 loop_iterations=loops)
    assert_pass(verdict, f"{nodes} node executions and {loops} loop iteration"
                         + ("" if loops == 1 else "s"))
    assert ("publisher never ran" in verdict.message) is (decision == "reject")


def test_node_map_accepts_a_count_computed_with_numpy(runs: SimpleNamespace) -> None:
    assert_pass(selfcheck.node_map(runs.result["approve"], nodes_executed=np.int64(9),
                                   loop_iterations=np.int64(1)))


@pytest.mark.parametrize(("nodes", "loops", "says"), [
    (7, 1, "you counted each node once"),
    (6, 1, "count the node_complete rows"),
    (9, 2, "count the loop_iteration rows"),
    (9, 0, "count the loop_iteration rows"),
    (0, 0, "nodes_executed"),
])
def test_node_map_points_at_the_event_table_for_wrong_counts(runs: SimpleNamespace, nodes: int,
                                                             loops: int, says: str) -> None:
    assert_hint(selfcheck.node_map(runs.result["approve"], nodes_executed=nodes,
                                   loop_iterations=loops), says, hides=9)


def test_node_map_says_a_rejected_run_ran_fewer_nodes(runs: SimpleNamespace) -> None:
    """The approve count in a reject run: the HINT says why the learner's run differs."""
    assert_hint(selfcheck.node_map(runs.result["reject"], nodes_executed=9, loop_iterations=1),
                "rejected at the gate", "count the node_complete rows", hides=7)


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_node_map_answers_any_value_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    verdict = selfcheck.node_map(runs.result["approve"], nodes_executed=value,
                                 loop_iterations=1)
    expected = "set nodes_executed" if value is None else "should be a whole number"
    assert_hint(verdict, expected)


def test_node_map_says_quoted_numbers_are_text(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.node_map(runs.result["approve"], nodes_executed="9",
                                   loop_iterations=1), "drop the quotes")


def test_node_map_refuses_negative_counts(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.node_map(runs.result["approve"], nodes_executed=-9,
                                   loop_iterations=1), "cannot be negative")


@pytest.mark.parametrize("given", [None, "result", [], {"run": 1}, 3])
def test_node_map_needs_a_run_to_judge(given: Any) -> None:
    assert_hint(selfcheck.node_map(given, nodes_executed=9, loop_iterations=1), "ex1_result")


def test_node_map_refuses_a_run_where_no_node_ran(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.node_map(runs.rejected, nodes_executed=0, loop_iterations=0),
                "no node ran")


# --- exercise 2: stream_labels ----------------------------------------------------------


def test_stream_labels_passes_output_of_an_approved_stream(runs: SimpleNamespace) -> None:
    assert_pass(selfcheck.stream_labels(runs.events["approve"], final_output_field="output"),
                "1 loop iteration;", "published content in 'output'")


def test_stream_labels_says_a_rejected_run_published_nothing(runs: SimpleNamespace) -> None:
    """Reject mode: the field is right, and the check says plainly that it is null."""
    verdict = selfcheck.stream_labels(runs.events["reject"], final_output_field="output")
    assert_pass(verdict, "null", "rejected the draft at the gate", "nothing was published")
    assert "carries" not in verdict.message


@pytest.mark.parametrize("spelling", ["output", " Output ", "run_complete.output",
                                      "event['output']", "`output`"])
def test_stream_labels_accepts_ways_of_writing_the_field(runs: SimpleNamespace,
                                                         spelling: str) -> None:
    assert_pass(selfcheck.stream_labels(runs.events["approve"], final_output_field=spelling))


@pytest.mark.parametrize(("field", "says"), [
    ("payload", "not the one with the published content"),
    ("type", "not the one with the published content"),
    ("status", "inside run_complete's payload"),
    ("content", "not a field of the run_complete event"),
    ("result", "not a field of the run_complete event"),
])
def test_stream_labels_points_at_the_json_line_for_wrong_fields(runs: SimpleNamespace,
                                                                field: str, says: str) -> None:
    assert_hint(selfcheck.stream_labels(runs.events["approve"], final_output_field=field),
                says, hides="'output'")


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_stream_labels_answers_any_value_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    verdict = selfcheck.stream_labels(runs.events["approve"], final_output_field=value)
    assert not verdict.passed
    if not isinstance(value, str):
        assert_hint(verdict, "set final_output_field" if value is None
                    else "should be one field name in quotes")


@pytest.mark.parametrize("value", FILLER)
def test_stream_labels_refuses_filler(runs: SimpleNamespace, value: str) -> None:
    assert_hint(selfcheck.stream_labels(runs.events["approve"], final_output_field=value))


def test_stream_labels_refuses_a_phrase(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.stream_labels(runs.events["approve"],
                                        final_output_field="the output field"), "not a phrase")


def test_stream_labels_needs_a_loop_iteration_in_the_stream(runs: SimpleNamespace) -> None:
    """A stream of a run that needed no revision (a learned run) misses a kind of event."""
    no_loop = [e for e in runs.events["approve"] if e.type.value != "loop_iteration"]
    assert_hint(selfcheck.stream_labels(no_loop, final_output_field="output"),
                "no loop_iteration")


def test_stream_labels_needs_a_whole_run(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.stream_labels(runs.events["approve"][:-1],
                                        final_output_field="output"), "run_complete")
    assert_hint(selfcheck.stream_labels(runs.events["approve"] + runs.events["reject"],
                                        final_output_field="output"), "more than one run")


@pytest.mark.parametrize("given", [None, [], "events", [1, 2, 3], {"a": 1}])
def test_stream_labels_needs_events_to_judge(given: Any) -> None:
    assert_hint(selfcheck.stream_labels(given, final_output_field="output"))


# --- exercise 3: preflight_fix ----------------------------------------------------------


def fix_verdict(runs: SimpleNamespace, rule: Any = "P001", **changes: Any) -> Verdict:
    values = {"rejected": runs.rejected, "fixed_events": runs.fixed_events,
              "violated_rule": rule, "fixed_pipeline": runs.fixed_pipeline, **changes}
    return selfcheck.preflight_fix(**values)


@pytest.mark.parametrize("rule", ["P001", "p001", " P001 ", "P001 ungated-risky-node",
                                  "[P001 ungated-risky-node]"])
def test_preflight_fix_passes_the_rule_and_a_real_fix(runs: SimpleNamespace, rule: str) -> None:
    """Found: this could never PASS (a rejected report is falsy; the message read
    ``.status`` of the list of events)."""
    assert_pass(fix_verdict(runs, rule), "P001 ungated-risky-node", "gets past pre-flight")


@pytest.mark.parametrize(("rule", "says"), [
    ("P003", "not in the rejection report"),
    ("S001", "not in the rejection report"),
    ("ungated-risky-node", "that is the rule's name"),
    ("the publisher", "is not a rule id"),
])
def test_preflight_fix_points_at_the_report_for_wrong_rules(runs: SimpleNamespace, rule: str,
                                                            says: str) -> None:
    assert_hint(fix_verdict(runs, rule), says, hides="P001")


def test_preflight_fix_refuses_switching_the_policy_off(runs: SimpleNamespace) -> None:
    """Found: a run that got past pre-flight under another policy passed."""
    assert_hint(fix_verdict(runs, fixed_events=runs.policy_off_events,
                            fixed_pipeline=runs.policy_off), "another policy")


def test_preflight_fix_needs_the_fixed_run(runs: SimpleNamespace) -> None:
    assert_hint(fix_verdict(runs, fixed_events=[]), "no run yet")
    assert_hint(fix_verdict(runs, fixed_events=runs.fixed_events[:1]), "no node started")


def test_preflight_fix_refuses_a_fix_that_pre_flight_rejects(runs: SimpleNamespace) -> None:
    assert_hint(fix_verdict(runs, fixed_events=runs.rejected.events),
                "rejected your fixed pipeline too")


def test_preflight_fix_refuses_events_of_another_workflow(runs: SimpleNamespace) -> None:
    stream = runs.events["approve"][:3]
    renamed = build_capstone_pipeline(quality_scores=[0.6, 0.85], policy=policy(),
                                      name="another")
    assert_hint(fix_verdict(runs, fixed_events=stream, fixed_pipeline=renamed),
                "another workflow")


def test_preflight_fix_refuses_a_fix_that_drops_a_step(runs: SimpleNamespace) -> None:
    short = build_capstone_pipeline(quality_scores=[0.6, 0.85], policy=policy())
    short.nodes = [n for n in short.nodes if n.id != "publisher"]
    assert_hint(fix_verdict(runs, fixed_pipeline=short), "has no publisher")


def test_preflight_fix_needs_the_broken_run_first(runs: SimpleNamespace) -> None:
    assert_hint(fix_verdict(runs, rejected=runs.result["approve"]), "MISCONFIGURE = True")


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_preflight_fix_answers_any_value_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(fix_verdict(runs, value), "violated_rule")
    assert_hint(fix_verdict(runs, fixed_pipeline=value), "fixed_pipeline")


@pytest.mark.parametrize("value", FILLER)
def test_preflight_fix_refuses_filler(runs: SimpleNamespace, value: str) -> None:
    assert_hint(fix_verdict(runs, value), "violated_rule")


# --- exercise 4: tamper_detected --------------------------------------------------------


def test_tamper_detected_passes_the_real_tamper_and_restore(runs: SimpleNamespace) -> None:
    assert_pass(selfcheck.tamper_detected(runs.tampered, runs.restored),
                "seq 2 found edited", "VALID")
    assert_pass(selfcheck.tamper_detected(runs.tampered.check, runs.restored))


def test_tamper_detected_hints_without_damage_or_restore(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.tamper_detected(runs.untouched, runs.restored), "DAMAGED")
    assert_hint(selfcheck.tamper_detected(runs.tampered, runs.tampered), "fresh ledger")


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_tamper_detected_answers_any_value_with_a_hint(runs: SimpleNamespace,
                                                       value: Any) -> None:
    assert_hint(selfcheck.tamper_detected(value, runs.restored), "tampered")
    assert_hint(selfcheck.tamper_detected(runs.tampered, value), "restored")


# --- exercise 5: production_checklist ---------------------------------------------------


def checklist_verdict(checklist: Any = None, risk: Any = RIGHT_RISK) -> Verdict:
    chosen = RIGHT_CHECKLIST if checklist is None else checklist
    return selfcheck.production_checklist(checklist=chosen, highest_risk=risk)


def test_production_checklist_passes_a_real_checklist() -> None:
    assert_pass(checklist_verdict(), "19 items in 6 categories")


def test_production_checklist_accepts_lists_and_any_case_of_effort() -> None:
    relaxed = {cat: [[text, effort.lower()] for text, effort in items]
               for cat, items in RIGHT_CHECKLIST.items()}
    assert_pass(checklist_verdict(relaxed))


def test_production_checklist_refuses_fifteen_copies_of_filler() -> None:
    """Found: fifteen copies of ("x", "Low") with "a a a a a a a a" passed."""
    copies = {cat: [("x", "Low")] * 3 for cat in RIGHT_CHECKLIST}
    assert_hint(checklist_verdict(copies, "a a a a a a a a"), "too short")
    sentences = {cat: [("Replace the mock agents with real calls", "Low")] * 3
                 for cat in RIGHT_CHECKLIST}
    assert_hint(checklist_verdict(sentences), "repeats")


def test_production_checklist_refuses_the_same_item_across_categories() -> None:
    moved = {**RIGHT_CHECKLIST, "hitl": [*RIGHT_CHECKLIST["hitl"],
                                         ("rotate the API keys on a schedule!", "Low")]}
    assert_hint(checklist_verdict(moved), "checklist['hitl'][3] repeats checklist['secrets'][2]")


def test_production_checklist_says_which_categories_are_empty() -> None:
    partial = {"agents": RIGHT_CHECKLIST["agents"], "secrets": RIGHT_CHECKLIST["secrets"],
               "ledger": [], "hitl": []}
    assert_hint(checklist_verdict(partial), "add items under ledger, hitl, observability, "
                                            "infrastructure")


def test_production_checklist_counts_items() -> None:
    few = {cat: items[:2] for cat, items in RIGHT_CHECKLIST.items()}
    assert_hint(checklist_verdict(few), "12 items so far", "at least 15")


def test_production_checklist_wants_each_effort_estimated() -> None:
    same = {cat: [(text, "Medium") for text, _ in items] for cat, items in RIGHT_CHECKLIST.items()}
    assert_hint(checklist_verdict(same), "same effort")


@pytest.mark.parametrize("item", ["Replace each mock agent", ("Use a real model",),
                                  ("Use a real model", "Low", "extra"), ("Use a real model",
                                                                         "Easy"),
                                  ("Use a real model", 1), (None, "Low"), 42])
def test_production_checklist_answers_any_item_with_a_hint(item: Any) -> None:
    """Found: items given as plain strings raised "too many values to unpack"."""
    broken = {**RIGHT_CHECKLIST, "agents": [item, *RIGHT_CHECKLIST["agents"]]}
    assert_hint(checklist_verdict(broken), "checklist['agents'][0]")


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_production_checklist_answers_any_value_with_a_hint(value: Any) -> None:
    says = "add items under agents" if value is None or isinstance(value, dict) else "checklist"
    assert_hint(checklist_verdict(value if value is not None else {}), says)
    assert_hint(checklist_verdict(risk=value), "highest_risk")


@pytest.mark.parametrize("risk", [*FILLER, "Secrets.", "the ledger is bad",
                                  "I think this one is the most important thing of all, really"])
def test_production_checklist_wants_a_reasoned_gap_from_the_list(risk: str) -> None:
    assert_hint(checklist_verdict(risk=risk), "highest_risk")


# --- the framework ----------------------------------------------------------------------


@self_check(given={"run": Count("a number a lesson cell made")},
            answers={"guess": Count("your guess"), "why": Text("why", min_words=4)})
def guessing(run: int, guess: int, why: str) -> Verdict:
    """A check for the framework's own tests: the guess is the run's number."""
    if guess == 13:
        raise RuntimeError("a bug in the judge")
    if guess == 14:
        return "not a verdict"  # type: ignore[return-value]
    return passed("right") if guess == run else hint("look again")


def test_a_check_reads_the_answers_it_is_not_given_from_the_notebook(
        monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = {"guess": 3, "why": "because the table shows three"}
    monkeypatch.setattr("meshflow_nb.notebook.selfcheck.framework._notebook_namespace",
                        lambda: notebook)
    assert_pass(guessing(3))
    assert_pass(guessing(run=3))
    notebook["run"] = 3
    assert_pass(guessing())
    assert_hint(guessing(guess=4), "look again")


def test_a_missing_answer_variable_is_a_hint() -> None:
    assert_hint(guessing(3), "guess and why are not defined", "run the answer cell")
    assert_hint(guessing(3, guess=3), "why is not defined")
    assert_hint(guessing(), "run is not there yet")


def test_unset_answers_are_named_together_with_what_they_are() -> None:
    assert_hint(guessing(3, guess=None, why="  "), "set guess (your guess) and why (why)")


def test_an_error_inside_a_judge_is_a_hint_not_a_traceback() -> None:
    assert_hint(guessing(3, guess=13, why="a reason in four words"), "could not judge",
                "RuntimeError")
    assert_hint(guessing(3, guess=14, why="a reason in four words"), "gave no verdict")


def test_a_check_called_wrongly_is_a_hint() -> None:
    assert_hint(guessing(1, 2, 3), "takes 1 value")
    assert_hint(guessing(3, guess=3, why="four words of reason", extra=1), "does not read extra")


def test_a_check_keeps_its_name_and_docstring() -> None:
    assert guessing.__name__ == "guessing"
    assert guessing.__doc__.startswith("A check for the framework")
    assert repr(guessing) == "<self-check guessing(run, guess, why)>"
    assert str(passed("x")) == "PASS: x" and repr(hint("y")) == "HINT: y"


def test_every_lesson_check_answers_a_call_with_nothing() -> None:
    for check in (selfcheck.node_map, selfcheck.stream_labels, selfcheck.preflight_fix,
                  selfcheck.tamper_detected, selfcheck.production_checklist):
        assert_hint(check(), "not")


@pytest.mark.parametrize(("expect", "value", "says"), [
    (Count(), "3", "drop the quotes"),
    (Count(), 2.0, "not the number 2.0"),
    (Text(), ["x"], "not a list of 1 item"),
    (Text(), object(), "not an object"),
    (OneOf(["Low", "High"]), "Mid", "one of 'Low' or 'High'"),
    (Pair(Text(), Count(), names=("text", "count"), example="('x', 1)"), "x", "a pair"),
    (ListOf(Text(), unique_by=str), ["one", "One!"], "x[1] repeats x[0]"),
    (ListOf(Count(), min_len=2), [1], "at least 2"),
    (MappingOf(Count(), required=["a", "b"]), {"a": 1}, "add entries under b"),
    (MappingOf(Count()), {1: 1}, "keys of x should be text"),
])
def test_expectations_say_what_kind_of_value_they_want(expect: Any, value: Any,
                                                       says: str) -> None:
    @self_check(answers={"x": expect})
    def judge(x: Any) -> Verdict:
        """Passes whatever the expectation lets through."""
        return passed("fine")

    assert_hint(judge(x=value), says)


@pytest.mark.parametrize("text", FILLER)
def test_filler_is_found(text: str) -> None:
    assert filler_reason(text, min_words=2, min_distinct=2)


@pytest.mark.parametrize("text", [
    "Rotate the API keys on a schedule",
    "Use a secrets manager for all credentials",
    RIGHT_RISK,
    "P001",
])
def test_real_answers_are_not_filler(text: str) -> None:
    assert filler_reason(text) is None


def test_duplicates_ignore_case_punctuation_numbers_and_order() -> None:
    assert first_duplicate(["Use Docker images", "1. use docker images!", "x"]) == (0, 1)
    assert first_duplicate(["images: use Docker", "Use Docker images"]) == (0, 1)
    assert first_duplicate(["Use Docker", "Use Kubernetes"]) is None
