"""An agent's exception becomes text in node_failed, node_retry, circuit_state and
run_complete, in the ledger and in the result: a key in its message is redacted there,
whatever the policy, so an error cannot carry a secret out of a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshflow_nb import EventType, Policy, PolicyMode, ReplayLedger, WorkflowDefinition
from meshflow_nb.policy.circuit import CircuitBreakerConfig

ENV_KEY = "a-configured-secret-0123456789abcdef"
SHAPED_KEY = "sk-ant-api03-" + "NOTaREALkeyJUSTforTESTS" + "0123456789"
QUICK_RETRIES = CircuitBreakerConfig(max_retries=2, failure_threshold=2, backoff_base_s=0.001,
                                     backoff_max_s=0.001)


def failing_with(secret: str):
    def agent(ctx):
        raise RuntimeError(f"could not authenticate with {secret}")
    return agent


def ledger_text(ledger: ReplayLedger) -> str:
    """Every value of every entry and run record the ledger holds, as one text."""
    return "\n".join(ledger.sql(f"SELECT * FROM {table}").to_json(orient="records")
                     for table in ("ledger_entries", "ledger_runs"))


@pytest.mark.parametrize("secret", [ENV_KEY, SHAPED_KEY], ids=["the configured key",
                                                                 "a key-shaped string"])
@pytest.mark.parametrize("breaker", [None, QUICK_RETRIES], ids=["no retries", "retries"])
def test_a_key_in_an_agents_exception_reaches_no_event_no_result_and_no_ledger_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str,
        breaker: CircuitBreakerConfig | None) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    policy = Policy(PolicyMode.DEV, circuit_breaker=breaker)
    ledger = ReplayLedger(tmp_path / "errors.duckdb")
    flow = ledger.attach(WorkflowDefinition("leaky").add_node("agent", failing_with(secret)))
    result = flow.run("a task", policy=policy)

    assert result.status.value == "failed"
    failed = next(e for e in result.events if e.type is EventType.NODE_FAILED)
    assert "could not authenticate with [redacted]" in failed.payload["error"]
    assert "[redacted]" in result.error
    assert secret not in "\n".join(e.to_json() for e in result.events)
    assert secret not in str(result.nodes) and secret not in result.summary()
    assert secret not in ledger_text(ledger) and "[redacted]" in ledger_text(ledger)
    if breaker is not None:  # the retries' events name the error too
        retries = [e for e in result.events if e.type is EventType.NODE_RETRY]
        assert retries and all("[redacted]" in e.payload["error"] for e in retries)


def test_an_open_circuit_names_the_last_error_without_its_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    policy = Policy(PolicyMode.DEV, circuit_breaker=QUICK_RETRIES)
    flow = WorkflowDefinition("leaky").add_node("agent", failing_with(ENV_KEY))
    flow.run("a task", policy=policy)  # opens the circuit
    refused = flow.run("a task", policy=policy)
    assert "last error: RuntimeError: could not authenticate with [redacted]" in refused.error
    assert ENV_KEY not in "\n".join(e.to_json() for e in refused.events)
