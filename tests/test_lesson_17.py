"""Lesson 17 as a learner does it: the notebook under papermill (approve and reject, with
answers right and wrong, and once on a real PostgreSQL server), its self-checks on real
production sessions with right answers, wrong answers and junk, and the terminal twin."""

from __future__ import annotations

import ast
import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hands_on_runner import ledger_statuses, run_hands_on
from lesson_runner import ROOT, cell_errors, execute, printed, verdicts
from pg_cluster import find_bindir

from meshflow_nb import (
    HumanInLoopConfig,
    Policy,
    PolicyMode,
    RiskTier,
    RunResult,
    WorkflowDefinition,
    fixed_approver,
)
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import WebhookInbox, selfcheck, trace_of
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline
from meshflow_nb.telemetry import OtlpReceiver

LESSON = ROOT / "lessons" / "17_going_to_production.ipynb"
SCRIPT = ROOT / "hands_on" / "17_going_to_production.py"
DECISION_SEQ = 19
"""Where the capstone's gate decision is in its run: the same for approve and reject."""
PG_PASSWORD = "hunter2-not-shown"
JUNK = [None, [1], {"a": 1}, 3.5, "some text", object(), True]
"""Values of the wrong kind for every answer: each one a HINT, never an exception."""

SLOWEST = ("agent_spans = [s for s in trace if s.name.startswith('invoke_agent ')]\n"
           "slowest = max(agent_spans, key=lambda s: s.end_ns - s.start_ns)\n"
           "slowest_agent = slowest.attributes['gen_ai.agent.name']\n"
           "slowest_tokens = slowest.attributes['gen_ai.usage.output_tokens']")
"""Exercise 3 as a learner who reads the spans in code answers it."""


def checklist_cell(postgres: bool) -> str:
    """Exercise 4's answer cell, right for a session on DuckDB or on PostgreSQL."""
    ledger = (("done", "section 1 put the ledger on the PostgreSQL server") if postgres else
              ("not yet", "the ledger is still a DuckDB file, no DSN was given"))
    return (
        "checklist = {\n"
        "    'live agents': ('not yet', 'mock agents, no API key in this lesson'),\n"
        f"    'postgres ledger': {ledger!r},\n"
        "    'approval webhook': ('done', 'the inbox verified the signed notice, decided "
        "via webhook'),\n"
        "    'otlp export': ('done', 'spans carrying the run id reached the receiver'),\n"
        "    'conformance': ('done' if report['conformant'] else 'not yet', "
        "'the last line of the level 3 report'),\n"
        "}\n"
        "next_step = ('Live agents next: with a real key and model the whole pipeline stops "
        "being a rehearsal')")


def right_answers(postgres: bool = False) -> dict[str, str]:
    """The answer cells as a learner who got everything right fills them in."""
    return {
        "ex1_ledger": "ex1_ledger = ReplayLedger(ledger_dsn or str(WORK / 'ada.duckdb'))",
        "ex1_check": "ex1_check = ex1_ledger.verify_chain(ex1_result.run_id)",
        "my_name": "my_name = 'Ada Lovelace'\nex2_verdict = 'reject'",
        "decision_seq": f"decision_seq = {DECISION_SEQ}",
        "slowest_agent": SLOWEST,
        "checklist": checklist_cell(postgres),
    }


WRONG = {
    "ex1_ledger": "ex1_ledger = ReplayLedger(ledger_path)",
    "ex1_check": "ex1_check = ex1_ledger.verify_chain()",
    "my_name": "my_name = 'Ada'\nex2_verdict = 'maybe'",
    "slowest_agent": "slowest_agent = 'invoke_workflow production_pipeline'\n"
                     "slowest_tokens = 4072",
    "checklist": "checklist = {step: ('done', f'we did the {step} step today') for step in "
                 "['live agents', 'postgres ledger', 'approval webhook', 'otlp export', "
                 "'conformance']}\n"
                 "next_step = 'Nothing at all is left here: the pipeline is finished and shipped'",
}
"""The answer cells filled in wrong: the lesson's own ledger file, a decision that is no
decision, the root span for an agent's, and every step claimed done."""

RUNS = {"right-approve": ("approve", right_answers()), "right-reject": ("reject", right_answers()),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> dict[str, nbformat.NotebookNode]:
    """The lesson each way of RUNS, and once more on a database of the suite's PostgreSQL
    server (when one is installed) with postgres_dsn set, all at the same time."""
    base = tmp_path_factory.mktemp("lesson17")
    jobs = {name: (LESSON, base / name, decision, answers)
            for name, (decision, answers) in RUNS.items()}
    if find_bindir() is not None:   # a password the server ignores (trust), never shown
        url = request.getfixturevalue("pg_cluster").create_database().replace(
            "postgres@", f"postgres:{PG_PASSWORD}@", 1)
        jobs["postgres"] = (LESSON, base / "postgres", "approve", right_answers(postgres=True),
                            {"postgres_dsn": url})
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        done = dict(zip(jobs, pool.map(lambda job: execute(*job), jobs.values()), strict=True))
    if "postgres" in done:
        done["postgres"].metadata["dsn"] = jobs["postgres"][4]["postgres_dsn"]
    return done


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed: dict, name: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 4 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    moved, decided, slowest, ready = answered
    assert "your run's 23 entries are in the DuckDB ledger you chose" in moved
    assert f"entry {DECISION_SEQ} of your run records 'Ada Lovelace' rejecting through webhook" \
        in decided
    assert slowest.startswith("PASS: invoke_agent ") and "output tokens" in slowest
    assert "of 5 steps done, each as its evidence shows" in ready


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    moved, decided, slowest, ready = verdicts(notebook)
    assert moved == ("HINT: ex1_ledger is production.duckdb, a file other runs use too: name "
                     "a DuckDB file of your own for this exercise")
    assert decided.startswith("HINT: ex2_verdict should be one of 'approve' or 'reject'")
    assert slowest.startswith("HINT: that span is not an invoke_agent span")
    assert ready.startswith("HINT: checklist['live agents'] does not match what this session")


@pytest.mark.parametrize(("name", "gate", "entries"), [
    ("right-approve", "gate_resume by you via webhook", 23),
    ("right-reject", "gate_reject by you via webhook", 20)])
def test_the_lesson_shows_each_step_from_its_evidence(executed: dict, name: str, gate: str,
                                                      entries: int) -> None:
    text = printed(executed[name])
    for shown in ("no PostgreSQL given: the ledger is the DuckDB file "
                  "production17/production.duckdb",
                  "signed with a guessed secret: 401", "no signature:                 401",
                  "inbox listening on 127.0.0.1: True", f"the ledger records: {gate}",
                  "the inbox:          verified the notice, HTTP 204",
                  "the run's POST:     delivered, HTTP 204",
                  f"Ledger chain VALID: {entries} entries in 1 run checked.",
                  "2 x invoke_agent writer", "1 x human_gate hitl_gate",
                  "L3  PASS  ledger_db", "L3  PASS  approvals", "L3  PASS  approval_webhook",
                  "L3  PASS  otlp_export", "L3  SKIP  live_mode",
                  "2 test notices from conformance"):
        assert shown in text, shown
    published = "1 x invoke_agent publisher" in text
    assert published is (name == "right-approve")


def test_no_secret_and_no_port_in_the_outputs(executed: dict) -> None:
    committed = nbformat.read(LESSON, as_version=4)
    checked = [c for c in committed.cells if "nbval-check-output" in c.metadata.get("tags", [])]
    text = json.dumps([c.outputs for c in checked])
    assert checked and not re.search(r"127\.0\.0\.1:\d", text) and "sha256=" not in text
    assert not re.search(r"[0-9a-f]{64}", printed(executed["right-approve"]))  # the secret's form


def test_the_ledger_and_the_store_live_in_the_lessons_own_folder(executed: dict) -> None:
    folder = Path(executed["right-approve"].metadata.papermill.output_path).parent
    assert (folder / "production17" / "production.duckdb").exists()
    assert ledger_statuses(folder / "production17" / "production.duckdb") == [
        "completed", "rejected_at_gate"]   # section 4, then exercise 2 (exercise 1: its own)


def test_the_lesson_moves_its_ledger_to_postgres(executed: dict) -> None:
    if "postgres" not in executed:
        pytest.skip("no PostgreSQL server installed")
    notebook = executed["postgres"]
    assert not cell_errors(notebook)
    text = printed(notebook)
    dsn = notebook.metadata["dsn"]
    assert "the ledger is on PostgreSQL" in text and "backend: PostgreSQL" in text
    assert PG_PASSWORD not in text and "L3  PASS  ledger_db" in text
    moved, decided, slowest, ready = verdicts(notebook)
    assert "are in the PostgreSQL ledger you chose" in moved
    assert all(v.startswith("PASS: ") for v in (decided, slowest, ready)), (decided, ready)
    statuses = list(ReplayLedger(dsn).runs().status)
    assert statuses == ["completed", "completed", "rejected_at_gate"]


# --- the self-checks on real production sessions ---------------------------------------


@dataclass
class Session:
    """What the lesson's cells make: the ledger, the inbox, runs decided through it, the
    spans the receiver got, and a real conformance report."""

    folder: Path
    ledger: ReplayLedger
    pipeline: WorkflowDefinition
    inbox: WebhookInbox
    runs: dict[str, RunResult]
    trace: list[Any]
    spans: list[Any]
    report: dict[str, Any]


def production_policy(webhook: str) -> Policy:
    """The lesson's production policy, without the layers these checks do not read."""
    return Policy(mode=PolicyMode.REGULATED, budget_usd=5.0, carbon_budget_g=500.0,
                  enable_cross_run_learning=False, immutable_audit=True,
                  human_in_loop=HumanInLoopConfig(enabled=True,
                                                  tier_threshold=RiskTier.EXTERNAL_IO,
                                                  approval_webhook=webhook, timeout_s=30))


def webhook_run(pipeline: WorkflowDefinition, inbox: WebhookInbox, approved: bool,
                reviewer: str) -> RunResult:
    """One run whose gate is decided through the inbox, as section 4 decides it."""
    handle = pipeline.start(CAPSTONE_TASK, approver=inbox.approver())
    inbox.decide(inbox.wait_for_notice(handle.run_id), approved=approved, reviewer=reviewer)
    return handle.result(timeout=30)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """A production session on 127.0.0.1 as the lesson sets it up, with two runs."""
    folder = tmp_path_factory.mktemp("production")
    with pytest.MonkeyPatch.context() as env, ExitStack() as servers:
        for name, value in {"MESHFLOW_MOCK": "1", "MESHFLOW_MOCK_LATENCY": "0",
                            "MESHFLOW_WEBHOOK_SECRET": secrets.token_hex(16),
                            "MESHFLOW_APPROVALS_DIR": str(folder / "approvals"),
                            "MESHFLOW_LEDGER_DB": str(folder / "production.duckdb"),
                            "OTEL_BSP_SCHEDULE_DELAY": "50"}.items():
            env.setenv(name, value)
        for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MESHFLOW_HITL"):
            env.delenv(name, raising=False)
        inbox = servers.enter_context(WebhookInbox())
        receiver = servers.enter_context(OtlpReceiver())
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        ledger = ReplayLedger(folder / "production.duckdb")
        pipeline = ledger.attach(build_capstone_pipeline(policy=production_policy(inbox.url)))
        runs = {"approve": webhook_run(pipeline, inbox, True, "Ada"),
                "reject": webhook_run(pipeline, inbox, False, "Grace")}
        receiver.wait_for(sum(r.totals.node_executions + 1 for r in runs.values()), timeout_s=10)
        ledger.flush()
        command = [sys.executable, "-m", "meshflow_nb", "conformance", "python", "--level", "3",
                   "--webhook", inbox.url, "--json"]
        report = json.loads(subprocess.run(command, capture_output=True, text=True,
                                           timeout=120).stdout)
        spans = list(receiver.spans)
        yield Session(folder, ledger, pipeline, inbox, runs,
                      trace_of(spans, runs["approve"].run_id), spans, report)


def test_ledger_moved_passes_a_run_in_a_ledger_of_ones_own(session: Session) -> None:
    ledger = ReplayLedger(session.folder / "ada.duckdb")
    run = ledger.attach(build_capstone_pipeline()).run(
        CAPSTONE_TASK, approver=fixed_approver(True, "lesson", "exercise 1"))
    verdict = selfcheck.ledger_moved(run, "", "production.duckdb", ex1_ledger=ledger,
                                     ex1_check=ledger.verify_chain(run.run_id))
    assert str(verdict) == ("PASS: your run's 23 entries are in the DuckDB ledger you chose, "
                            "and its chain verifies")


def test_ledger_moved_passes_on_postgres_and_wants_it_when_given(session: Session,
                                                                 postgres_db: str) -> None:
    ledger = ReplayLedger(postgres_db)
    run = ledger.attach(build_capstone_pipeline()).run(
        CAPSTONE_TASK, approver=fixed_approver(True, "lesson", "exercise 1"))
    check = ledger.verify_chain(run.run_id)
    verdict = selfcheck.ledger_moved(run, postgres_db, "production.duckdb", ex1_ledger=ledger,
                                     ex1_check=check)
    assert verdict.passed and "PostgreSQL ledger you chose" in verdict.message
    on_file = selfcheck.ledger_moved(session.runs["approve"], postgres_db, "x.duckdb",
                                     ex1_ledger=session.ledger, ex1_check=check)
    assert on_file.message.startswith("the lesson has a PostgreSQL DSN (ledger_dsn), but "
                                      "ex1_ledger is a DuckDB file")
    assert postgres_db not in on_file.message


def test_ledger_moved_hints_at_the_wrong_place_or_proof(session: Session,
                                                        tmp_path: Path) -> None:
    run = session.runs["approve"]
    lesson_path = str(session.folder / "production.duckdb")
    check = session.ledger.verify_chain(run.run_id)
    own = selfcheck.ledger_moved(run, "", lesson_path, ex1_ledger=session.ledger,
                                 ex1_check=check)
    assert own.message.startswith("ex1_ledger is production.duckdb, a file other runs use")
    memory = selfcheck.ledger_moved(run, "", lesson_path, ex1_ledger=ReplayLedger(":memory:"),
                                    ex1_check=check)
    assert "lives in memory" in memory.message
    default = selfcheck.ledger_moved(run, "", lesson_path,
                                     ex1_ledger=ReplayLedger(tmp_path / "production.db"),
                                     ex1_check=check)
    assert default.message.startswith("ex1_ledger is production.db, a file other runs use")
    other = ReplayLedger(tmp_path / "other.duckdb")
    missing = selfcheck.ledger_moved(run, "", lesson_path, ex1_ledger=other,
                                     ex1_check=other.verify_chain())
    assert missing.message.startswith("ex1_result is not in ex1_ledger")


def test_ledger_moved_wants_a_verification_after_the_run_that_holds(tmp_path: Path,
                                                                    session: Session) -> None:
    import duckdb

    ledger = ReplayLedger(tmp_path / "mine.duckdb")
    before = ledger.verify_chain()
    run = ledger.attach(build_capstone_pipeline()).run(
        CAPSTONE_TASK, approver=fixed_approver(True, "lesson", "exercise 1"))
    early = selfcheck.ledger_moved(run, "", "x.duckdb", ex1_ledger=ledger, ex1_check=before)
    assert early.message.startswith("ex1_check looked at 0 entries")
    ledger.flush()
    with duckdb.connect(str(tmp_path / "mine.duckdb")) as con:
        con.execute("""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2""")
    damaged = selfcheck.ledger_moved(run, "", "x.duckdb", ex1_ledger=ledger,
                                     ex1_check=ledger.verify_chain(run.run_id))
    assert damaged.message.startswith("the chain of ex1_ledger does not verify")


@pytest.mark.parametrize("junk", JUNK)
def test_ledger_moved_answers_junk_with_a_hint(session: Session, junk: Any) -> None:
    run, check = session.runs["approve"], session.ledger.verify_chain()
    for answers in ({"ex1_ledger": junk, "ex1_check": check},
                    {"ex1_ledger": session.ledger, "ex1_check": junk}):
        verdict = selfcheck.ledger_moved(run, "", "x.duckdb", **answers)
        assert not verdict.passed and "could not judge" not in verdict.message


@pytest.mark.parametrize(("verdict", "name"), [("approve", "Ada"), ("reject", "Grace")])
def test_webhook_decision_passes_the_entry_of_ones_decision(session: Session, verdict: str,
                                                            name: str) -> None:
    run = session.runs[verdict]
    said = selfcheck.webhook_decision(run, session.inbox, session.ledger, my_name=name,
                                      ex2_verdict=verdict, decision_seq=DECISION_SEQ)
    verb = "approving" if verdict == "approve" else "rejecting"
    assert str(said) == (f"PASS: entry {DECISION_SEQ} of your run records '{name}' {verb} "
                         "through webhook, after a notice whose signature the inbox verified")


@pytest.mark.parametrize(("answers", "says"), [
    ({"decision_seq": DECISION_SEQ - 1}, "is where the gate paused"),
    ({"decision_seq": 1}, "entry 1 is a run_start"),
    ({"decision_seq": 999}, "your run has no entry 999"),
    ({"my_name": "Grace"}, "you changed my_name or ex2_verdict after the run"),
    ({"ex2_verdict": "reject"}, "you changed my_name or ex2_verdict after the run"),
])
def test_webhook_decision_hints_at_where_to_look(session: Session, answers: dict,
                                                 says: str) -> None:
    given = {"my_name": "Ada", "ex2_verdict": "approve", "decision_seq": DECISION_SEQ, **answers}
    verdict = selfcheck.webhook_decision(session.runs["approve"], session.inbox, session.ledger,
                                         **given)
    assert not verdict.passed and says in verdict.message, verdict
    assert str(DECISION_SEQ) not in verdict.message.replace(f"entry {given['decision_seq']}", "")


def test_webhook_decision_wants_the_inbox_to_have_decided(session: Session) -> None:
    scripted = session.pipeline.run(CAPSTONE_TASK,
                                    approver=fixed_approver(True, "Ada", "by script"))
    verdict = selfcheck.webhook_decision(scripted, session.inbox, session.ledger, my_name="Ada",
                                         ex2_verdict="approve", decision_seq=DECISION_SEQ)
    assert verdict.message.startswith("the inbox got no notice of ex2_result")
    with WebhookInbox() as elsewhere:
        missing = selfcheck.webhook_decision(session.runs["approve"], elsewhere, session.ledger,
                                             my_name="Ada", ex2_verdict="approve",
                                             decision_seq=DECISION_SEQ)
    assert "got no notice" in missing.message
    unrun = selfcheck.webhook_decision(None, session.inbox, session.ledger, my_name="Ada",
                                       ex2_verdict="approve", decision_seq=DECISION_SEQ)
    assert unrun.message.startswith("ex2_result is not there yet")


@pytest.mark.parametrize("junk", JUNK)
def test_webhook_decision_answers_junk_with_a_hint(session: Session, junk: Any) -> None:
    right = {"my_name": "Ada", "ex2_verdict": "approve", "decision_seq": DECISION_SEQ}
    for name in right:
        verdict = selfcheck.webhook_decision(session.runs["approve"], session.inbox,
                                             session.ledger, **{**right, name: junk})
        assert not verdict.passed and "could not judge" not in verdict.message


def _agent_spans(session: Session) -> list[Any]:
    return [s for s in session.trace if s.name.startswith("invoke_agent ")]


def test_slowest_agent_span_passes_the_longest_agent_span(session: Session) -> None:
    slowest = max(_agent_spans(session), key=lambda s: s.end_ns - s.start_ns)
    node = slowest.attributes["gen_ai.agent.name"]
    tokens = slowest.attributes["gen_ai.usage.output_tokens"]
    for said in (node, f"invoke_agent {node}"):
        verdict = selfcheck.slowest_agent_span(session.trace, slowest_agent=said,
                                               slowest_tokens=tokens)
        assert verdict.passed and f"wrote {tokens} output tokens" in verdict.message


def test_slowest_agent_span_hints_without_giving_it_away(session: Session) -> None:
    agents = sorted(_agent_spans(session), key=lambda s: s.end_ns - s.start_ns)
    slowest, fastest = agents[-1], agents[0]
    node = slowest.attributes["gen_ai.agent.name"]
    tokens = slowest.attributes["gen_ai.usage.output_tokens"]
    cases = [("invoke_workflow production_pipeline", tokens, "not an invoke_agent span"),
             ("hitl_gate", 0, "not an invoke_agent span"),
             ("nobody", tokens, "'nobody' is not the name of an agent span"),
             (fastest.attributes["gen_ai.agent.name"], tokens, "is not the slowest"),
             (node, tokens + 1, "slowest_tokens is not the gen_ai.usage.output_tokens")]
    for said, count, says in cases:
        if said == node and count == tokens:
            continue
        verdict = selfcheck.slowest_agent_span(session.trace, slowest_agent=said,
                                               slowest_tokens=count)
        assert not verdict.passed and says in verdict.message, (said, verdict)
        assert f"invoke_agent {node} " not in verdict.message or said == node


@pytest.mark.parametrize("junk", [*JUNK, "608"])
def test_slowest_agent_span_answers_junk_with_a_hint(session: Session, junk: Any) -> None:
    for answers in ({"slowest_agent": junk, "slowest_tokens": 1},
                    {"slowest_agent": "writer", "slowest_tokens": junk}):
        verdict = selfcheck.slowest_agent_span(session.trace, **answers)
        assert not verdict.passed and "could not judge" not in verdict.message
    assert "drop the quotes" in str(selfcheck.slowest_agent_span(
        session.trace, slowest_agent="writer", slowest_tokens="608"))


def _checklist(session: Session, **changes: tuple[str, str]) -> dict[str, tuple[str, str]]:
    """The right checklist for the session (mock agents, a DuckDB ledger), changed."""
    conformed = "done" if session.report["conformant"] else "not yet"
    right = {"live agents": ("not yet", "mock agents, no API key"),
             "postgres ledger": ("not yet", "the ledger is a DuckDB file"),
             "approval webhook": ("done", "the inbox verified the signed notice"),
             "otlp export": ("done", "spans with the run id reached the receiver"),
             "conformance": (conformed, "the last line of the level 3 report")}
    return {**right, **changes}


NEXT = "Live agents next: a real model is what production actually runs on"


def _ready(session: Session, checklist: Any, next_step: Any = NEXT, **given: Any) -> Any:
    values = {"result": session.runs["approve"], "pipeline": session.pipeline,
              "ledger": session.ledger, "inbox": session.inbox, "trace": session.trace,
              "report": session.report, **given}
    return selfcheck.production_ready(**values, checklist=checklist, next_step=next_step)


def test_production_ready_passes_the_steps_as_their_evidence_says(session: Session) -> None:
    verdict = _ready(session, _checklist(session))
    done = 2 + session.report["conformant"]
    assert str(verdict) == (f"PASS: {done} of 5 steps done, each as its evidence shows; "
                            f"{5 - done} steps to go, and you know which comes next")
    rejected = _ready(session, _checklist(session), result=session.runs["reject"],
                      trace=trace_of(session.spans, session.runs["reject"].run_id))
    assert rejected.passed


def test_production_ready_reads_the_real_report_and_spans(session: Session) -> None:
    failed = {**session.report, "conformant": False}
    claimed = _checklist(session, conformance=("done", "the last line of the report"))
    assert "checklist['conformance'] does not match" in _ready(session, claimed,
                                                               report=failed).message
    untraced = _checklist(session, **{"otlp export": ("done", "spans reached the receiver")})
    other = trace_of(session.spans, session.runs["reject"].run_id)
    assert "checklist['otlp export'] does not match" in _ready(session, untraced,
                                                               trace=other).message


@pytest.mark.parametrize(("changes", "next_step", "says"), [
    ({"postgres ledger": ("done", "we moved the ledger to postgres")}, NEXT,
     "checklist['postgres ledger'] does not match what this session did: read what section 1"),
    ({"live agents": ("done", "agents are live now")}, NEXT, "checklist['live agents']"),
    ({"approval webhook": ("not yet", "no webhook was set up")}, NEXT,
     "checklist['approval webhook']"),
    ({}, "The approval webhook comes next because reviewers sit elsewhere",
     "names a step you have done already"),
    ({}, "Something else entirely should happen before anything more is done",
     "should name a step of the checklist"),
    ({"otlp export": ("done", "mock agents, no API key")}, NEXT,
     "the evidence of 'otlp export' repeats that of 'live agents'"),
])
def test_production_ready_hints_at_the_step_that_does_not_hold(session: Session, changes: dict,
                                                               next_step: str, says: str) -> None:
    verdict = _ready(session, _checklist(session, **changes), next_step)
    assert not verdict.passed and says in verdict.message, verdict


def test_production_ready_wants_every_step_and_only_those(session: Session) -> None:
    missing = _checklist(session)
    del missing["conformance"]
    assert _ready(session, missing).message == "fill in every step: conformance"
    extra = {**_checklist(session), "backups": ("not yet", "no backups are configured yet")}
    assert "'backups', which is not one of the steps" in _ready(session, extra).message
    filler = _checklist(session, conformance=("done", "todo"))
    assert "placeholder" in _ready(session, filler).message
    status = _checklist(session, conformance=("maybe", "the last line of the report"))
    assert "should be one of 'done' or 'not yet'" in _ready(session, status).message


@pytest.mark.parametrize("junk", JUNK)
def test_production_ready_answers_junk_with_a_hint(session: Session, junk: Any) -> None:
    for verdict in (_ready(session, junk), _ready(session, _checklist(session), junk),
                    _ready(session, {step: junk for step in _checklist(session)}),
                    _ready(session, _checklist(session), report=junk if junk else {"x": 1})):
        assert not verdict.passed and "could not judge" not in verdict.message


# --- the terminal twin -------------------------------------------------------------------


def run(folder: Path, *args: str, mock: bool = True, **env: str) -> subprocess.CompletedProcess:
    """The script in ``folder`` with mock agents (or none), its ledger there unless given,
    and no collector of the tester's (it starts its own span receiver)."""
    ledger = None if "MESHFLOW_LEDGER_DB" in env else "production17.duckdb"
    quiet = {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}
    return run_hands_on(SCRIPT.name, folder, *args, mock=mock, ledger=ledger,
                        **{**quiet, **env})


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--reject", "--reviewer", "--db", "--conformance", "--level", "--timeout",
                 "--task"):
        assert flag in proc.stdout


@pytest.mark.parametrize(("args", "decided", "status", "entries"), [
    ((), "approved by reviewer via webhook", "completed", 23),
    (("--reject", "--reviewer", "dana"), "rejected by dana via webhook", "rejected_at_gate", 20),
])
def test_the_run_is_decided_through_the_webhook_traced_and_verified(
        tmp_path: Path, args: tuple, decided: str, status: str, entries: int) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    for shown in ("Step 4: the ledger is DuckDB", "the inbox got a notice: verified (HTTP 204)",
                  f"decided through the decision store: {decided}",
                  "invoke_workflow production_pipeline", "human_gate hitl_gate",
                  f"Ledger chain VALID: {entries} entries in 1 run checked."):
        assert shown in proc.stdout, shown
    assert ("invoke_agent publisher" in proc.stdout) is (status == "completed")
    assert ledger_statuses(tmp_path / "production17.duckdb") == [status]


def test_the_ledger_goes_to_postgres_and_the_uri_is_not_printed(tmp_path: Path,
                                                                postgres_db: str) -> None:
    proc = run(tmp_path, MESHFLOW_LEDGER_DB=postgres_db)
    assert proc.returncode == 0, proc.stderr
    assert "Step 4: the ledger is PostgreSQL\n" in proc.stdout
    assert postgres_db not in proc.stdout + proc.stderr
    assert list(ReplayLedger(postgres_db).runs().status) == ["completed"]


def test_conformance_checks_this_setup_and_sets_the_exit_status(tmp_path: Path) -> None:
    proc = run(tmp_path, "--conformance")
    lines = proc.stdout.splitlines()
    for check in ("ledger_db", "approvals", "approval_webhook", "otlp_export"):
        assert any(line.startswith(f"PASS  L3  {check} ") for line in lines), check
    conformant = "\nconformant at level 3" in proc.stdout
    assert proc.returncode == (0 if conformant else 1), proc.stdout[-2000:]


@pytest.mark.parametrize(("args", "says"), [(("--timeout", "0"), "--timeout is a number"),
                                            (("--level", "5"), "invalid choice: 5")])
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, args: tuple, says: str) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 2 and not proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0]


def test_without_mock_mode_or_a_key_it_says_which_to_set(tmp_path: Path) -> None:
    proc = run(tmp_path, mock=False)
    assert proc.returncode == 2 and not proc.stdout
    assert "MESHFLOW_MOCK=1" in proc.stderr and "ANTHROPIC_API_KEY" in proc.stderr


PUBLIC = {"meshflow_nb", "meshflow_nb.ledger", "meshflow_nb.notebook", "meshflow_nb.pipelines",
          "meshflow_nb.telemetry"}
"""The modules a lesson may import from (docs/curriculum.md)."""


def test_the_lesson_and_its_script_import_the_public_api_only() -> None:
    sources = [c.source for c in nbformat.read(LESSON, as_version=4).cells
               if c.cell_type == "code"] + [SCRIPT.read_text()]
    used = set()
    for source in sources:   # IPython's magics (%...) are no Python
        python = "\n".join(line for line in source.splitlines()
                           if not line.lstrip().startswith("%"))
        for node in ast.walk(ast.parse(python)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("meshflow_nb"):
                used.add(node.module)
            elif isinstance(node, ast.Import):
                used |= {a.name for a in node.names if a.name.startswith("meshflow_nb")}
    assert used and used <= PUBLIC, used - PUBLIC
