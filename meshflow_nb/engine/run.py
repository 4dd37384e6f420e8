"""The asyncio scheduler that executes one run of a workflow definition.

Dataflow rules (docs/concepts.md explains them for learners):

* A node is ready when every forward edge into it is resolved. It runs if at least
  one of them was taken; if all were cut (false condition, skipped source) it is
  skipped and cuts its own outgoing edges, so joins never wait for a dead branch.
* When a node finishes, its loop edges are tried first. A loop edge whose condition
  holds re-runs the loop body (target ... source) while iterations remain; the
  source's other edges then wait for its next completion. When the guard is spent the
  loop closes and every other outgoing edge is taken regardless of its condition.
* A failure, a gate rejection or a cancel stops new nodes from starting; nodes already
  running finish, then the run ends with its status and a ``run_complete`` event.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..agents.base import AgentResult, NodeContext, normalize_result
from ..errors import MeshflowError, redacted
from ..events import EventBus, EventType, MeshEvent, utc_now
from ..hitl.requests import Approver, Decision, GateRequest, asks_a_person
from ..ledger.errors import LedgerWriteError
from ..model.conditions import ConditionEvalError, parse_condition
from ..model.graph import Blueprint, Edge, HumanGate, Node, Topology
from ..model.preflight import PreflightReport
from ..model.roles import RiskTier
from ..model.status import RunStatus
from ..policy.config import Policy
from ..policy.governor import Governor, PolicyStop
from ..telemetry.tracing import run_tracer
from .preflight import Recorder, audit_damage, audit_required, check_run, choose_approver
from .results import NodeRun, RunResult, Totals

# Plain-function agents run here so that they overlap like coroutines do.
AGENT_THREADS = ThreadPoolExecutor(max_workers=256, thread_name_prefix="meshflow-agent")


class NodeFailure(MeshflowError):
    """An agent raised, timed out or broke its contract; ends the run as failed. Its
    message goes into events and the ledger, so a key in it is redacted first."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(redacted(message))
        self.reason = reason


class GateRejected(MeshflowError):
    """A human gate was rejected; ends the run before any downstream node."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.describe())
        self.decision = decision


class Run:
    """One execution of a definition: its state, its events, its result.

    Everything it uses is handed to it: the definition, the policy, the ledger that
    records each event (``ledger``), the approver, the bus that shows events to
    displays, and ``builder``, how to rebuild the definition in another process (for a
    checkpoint at a gate). ``tracer_provider`` receives its spans (None: the
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` of the environment, if set; see docs/observability.md).
    """

    def __init__(
        self,
        definition: Blueprint,
        task: str,
        *,
        policy: Policy | None = None,
        ledger: Recorder | None = None,
        approver: Approver | None = None,
        bus: EventBus | None = None,
        run_id: str | None = None,
        builder: dict[str, Any] | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self.definition = definition
        self.task = task
        self.ledger = ledger
        self.builder = builder
        self.unrecorded = 0
        """Events the ledger refused or failed to record (``recording_error`` says why)."""
        self._counted_through = 0  # the events up to this seq are counted in ``unrecorded``
        self.recording_error: str | None = None
        self.run_id = run_id or uuid.uuid4().hex[:16]
        self.bus = bus or EventBus()
        tracer = run_tracer(definition, tracer_provider)  # None: no trace export
        if tracer is not None:
            self.bus.subscribe(tracer)
        self._approver = approver
        self.nodes = {n.id: n for n in definition.nodes}
        self.records = {n.id: NodeRun(n.id, _role(n)) for n in definition.nodes}
        self.variables: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.decisions: list[Decision] = []
        self.totals = Totals()
        self.status = RunStatus.RUNNING
        self.error: str | None = None
        self._topo: Topology | None = None
        self._conditions: dict[Edge, Any] = {}
        self._edge_taken: dict[Edge, bool | None] = {}
        self._loop_counts: dict[Edge, int] = {}
        self._feedback: dict[str, Any] = {}
        self._tasks: dict[asyncio.Task, str] = {}
        self._stopping = False
        self._seq = 0
        self._started = 0.0
        self.policy = policy
        self.governor = None if policy is None else Governor(
            policy, self, ledger_location=ledger.location if ledger is not None else None)

    # --- the run as a whole ----------------------------------------------------

    async def execute(self) -> RunResult:
        """Pre-flight, then schedule nodes until none is running; always ends cleanly."""
        self._started = time.perf_counter()
        damage = self._seal_ledger()
        screening = self.governor.screen_task(self.task) if self.governor else None
        if screening is not None:
            self.task = screening.value  # what is recorded, shown and given to agents
        self.emit(EventType.RUN_START, payload={
            "workflow": self.definition.name, "task": self.task, "nodes": len(self.nodes),
            **({"policy": self.policy.to_dict()} if self.policy else {})})
        report = self.preflight(damage)
        if not report.ok:
            self.emit(EventType.PREFLIGHT_REJECTED, payload=report.to_dict())
            return self._finish(RunStatus.REJECTED_PREFLIGHT, str(report), report)
        try:
            if screening is not None:
                self.governor.report_task(screening)
        except PolicyStop as stop:
            self._stop(stop.status, str(stop))
        if self._stopping:  # the task was blocked, or its start could not be recorded
            return self._finish(self.status, self.error)
        self._prepare()
        for node_id in self._topo.entries:
            self._launch(node_id)
        try:
            await self._drain()
        except asyncio.CancelledError:
            self.cancel()
            await self._drain()
            self._finish(RunStatus.CANCELLED, "the run was cancelled")
            raise
        return self._finish(self.status if self._stopping else RunStatus.COMPLETED, self.error)

    def preflight(self, damage: str | None = None) -> PreflightReport:
        """Structure, policy and the approver setting, all reported together; settles the
        approver and readies the governor. ``damage``: what sealing the ledger found."""
        report = check_run(self.definition, self.policy, ledger=self.ledger, damage=damage)
        self._approver, problems = choose_approver(self.definition, self.policy, self._approver)
        report.problems.extend(problems)
        if self.governor is not None:
            self.governor.prepare(self.definition)
        return report

    def _seal_ledger(self) -> str | None:
        """Under immutable audit, verify and seal the ledger before its first entry."""
        if self.ledger is None or not audit_required(self.policy):
            return None
        return audit_damage(self.ledger, seal=True)

    def cancel(self) -> None:
        """Stop starting nodes and cancel the ones running (thread-safe via the loop)."""
        self._stop(RunStatus.CANCELLED, "the run was cancelled")
        for task in self._tasks:
            task.cancel()

    def _prepare(self) -> None:
        self._topo = Topology.of(self.nodes, self.definition.edges)
        self._conditions = {
            e: parse_condition(e.condition) for e in self.definition.edges if e.conditional}
        self._edge_taken = {e: None for e in self._topo.forward_edges}
        self._loop_counts = {e: 0 for e in self._topo.loop_edges}

    async def _drain(self) -> None:
        while self._tasks:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                node_id = self._tasks.pop(task)
                self._settle(node_id, task)

    def _finish(self, status: RunStatus, error: str | None,
                report: PreflightReport | None = None) -> RunResult:
        """End the run with ``status``, unless its audit trail failed (a run rejected by
        ``report`` stays rejected: it ran nothing)."""
        self.status, self.error = status, error
        self.totals.duration_ms = (time.perf_counter() - self._started) * 1000
        output = self._final_output()
        self.emit(EventType.RUN_COMPLETE, output=output, payload={
            "status": status.value, "error": error, "node_executions": self.totals.node_executions,
            "loop_iterations": self.totals.loop_iterations, "tokens": self.totals.tokens,
            "cost_usd": round(self.totals.cost_usd, 6),
            "duration_ms": round(self.totals.duration_ms, 1)})
        if self.status is RunStatus.AUDIT_FAILED and report is None:
            status, error = self.status, self.error  # recording failed, even at the very end
        result = RunResult(
            run_id=self.run_id, workflow=self.definition.name, task=self.task, status=status,
            output=output, nodes=self.records, totals=self.totals, events=self.bus.history,
            decisions=self.decisions, preflight=report, error=error,
            unrecorded=self.unrecorded, recording_error=self.recording_error)
        if self.governor is not None:
            self.governor.after_run(status, result.events, result.workflow, result.task)
        return result

    def _final_output(self) -> Any:
        if self._topo is None:
            return None
        done = {n: self.records[n].output for n in self._topo.sinks
                if self.records[n].status == "completed"}
        if len(done) == 1:
            return next(iter(done.values()))
        return done or None

    def _stop(self, status: RunStatus, error: str) -> None:
        if not self._stopping:
            self._stopping, self.status, self.error = True, status, error

    # --- events ----------------------------------------------------------------

    def emit(self, type_: EventType, node: Node | None = None, *, committed: bool = False,
             **fields: Any) -> MeshEvent:
        """Number the event, record it and publish it; ``committed``: the ledger has
        committed it (and everything before it) before anyone sees it."""
        self._seq += 1
        event = MeshEvent(run_id=self.run_id, seq=self._seq, ts=utc_now(), type=type_,
                          node_id=node.id if node else None,
                          role=_role(node) if node else None, **fields)
        if self.ledger is not None:
            self._record(event, committed)
        self.bus.publish(event)
        return event

    def _partial(self, node: Node, iteration: int, text: str) -> None:
        """A streaming agent's piece of text: on the bus at once, and in the ledger (as a
        numbered event) only when the policy sets ``record_partial_output``; otherwise it
        shares the number of the event before it, so the ledger's numbering has no hole."""
        payload = {"delta": text, "iteration": iteration}
        if self.policy is not None and self.policy.record_partial_output:
            self.emit(EventType.NODE_PARTIAL, node, payload=payload)
            return
        self.bus.publish(MeshEvent(run_id=self.run_id, seq=self._seq, ts=utc_now(),
                                   type=EventType.NODE_PARTIAL, node_id=node.id,
                                   role=_role(node), payload=payload))

    def _record(self, event: MeshEvent, committed: bool = False) -> None:
        """Hand the event to the ledger (and wait for its commit, if ``committed``); a
        refusal or failure is counted, never lost quietly, and when the policy requires
        audit it stops the run (fail closed)."""
        try:
            self.ledger.record(event)
            if committed:
                self.ledger.flush(run_id=self.run_id)
        except MeshflowError as err:
            self._unrecorded(f"{event.type.value}: {err}", err)

    def _unrecorded(self, reason: str, err: MeshflowError) -> None:
        """Count the events ``err`` says are lost: those the writer gave up on (queued,
        from its first lost entry on) or the one just refused."""
        lost_from = err.first_lost if isinstance(err, LedgerWriteError) else None
        first = self._seq if lost_from is None else lost_from  # else only the event in hand
        self.unrecorded += max(0, self._seq - max(first, self._counted_through + 1) + 1)
        self._counted_through = max(self._counted_through, self._seq)
        self.recording_error = self.recording_error or reason
        if audit_required(self.policy) and self.status is not RunStatus.AUDIT_FAILED:
            message = f"the audit trail could not record the run, so it stopped ({reason})"
            # the most severe stop: it replaces one that came first (a rejection, say)
            self._stopping, self.status, self.error = True, RunStatus.AUDIT_FAILED, message
            for task in self._tasks:
                task.cancel()
            self.emit(EventType.AUDIT_FAILED, payload={"message": message})

    def _commit_barrier(self, node: Node) -> None:
        """Under audit, everything so far is committed before a node that acts on the
        world starts; if it cannot be, the node never starts."""
        if not (audit_required(self.policy) and self.ledger is not None
                and node.risk_tier >= RiskTier.EXTERNAL_IO):
            return
        try:
            self.ledger.flush(run_id=self.run_id)
        except MeshflowError as err:
            self._unrecorded(f"before {node.id}: {err}", err)
            raise PolicyStop(RunStatus.AUDIT_FAILED, str(err), node_status="refused") from err

    def node(self, node_id: str) -> Node | None:
        """The node with this id, if the definition has one (for the policy layers)."""
        return self.nodes.get(node_id)

    # --- starting and finishing nodes -----------------------------------------

    def _launch(self, node_id: str) -> None:
        record = self.records[node_id]
        record.status, record.executions = "running", record.executions + 1
        work = self._execute(self.nodes[node_id], record.executions)
        self._tasks[asyncio.ensure_future(work)] = node_id

    def _settle(self, node_id: str, task: asyncio.Task) -> None:
        """Record how a node's task ended and move the run on."""
        record = self.records[node_id]
        if task.cancelled():
            record.status = "cancelled"
            return
        error = task.exception()
        if error is None:
            record.status = "completed"
            self._route(node_id)
        elif isinstance(error, GateRejected):
            record.status = "rejected"
            self._stop(RunStatus.REJECTED_AT_GATE, f"'{node_id}' {error.decision.describe()}")
        elif isinstance(error, PolicyStop):
            record.status = error.node_status
            self._stop(error.status, str(error))
        else:
            record.status, record.error = "failed", str(error)
            self._stop(RunStatus.FAILED, f"node '{node_id}' failed: {error}")

    async def _execute(self, node: Node, iteration: int) -> None:
        """One execution of a node: start event, agent or gate, complete or failed event."""
        self._commit_barrier(node)
        ctx = self._context(node, iteration)
        self.emit(EventType.NODE_START, node, payload={
            "iteration": iteration, "inputs": sorted(ctx.inputs)})
        began = time.perf_counter()
        try:
            if node.is_gate:
                result = await self._gate(node, ctx)
            else:
                result = await self._governed_call(node, ctx)
        except (asyncio.CancelledError, GateRejected, PolicyStop):
            raise
        except NodeFailure as failure:
            self._emit_failure(node, failure, began, iteration)
            raise
        except Exception as exc:  # an agent's bug becomes a failed node, never a crash
            failure = NodeFailure(f"{type(exc).__name__}: {exc}", reason="exception")
            self._emit_failure(node, failure, began, iteration)
            raise failure from exc
        self._complete(node, result, iteration, (time.perf_counter() - began) * 1000)
        if self.governor is not None and not node.is_gate:
            self.governor.after_complete(node, result)

    async def _governed_call(self, node: Node, ctx: NodeContext) -> AgentResult:
        """The agent call, inside the policy's hooks when the run has a policy."""
        if self.governor is None:
            return _checked(node, await self._attempt(node, ctx))
        ctx = await self.governor.before_node(node, ctx)
        value = await self.governor.call(node, lambda: self._attempt(node, ctx))
        return await self.governor.after_node(node, ctx, _checked(node, value))

    async def _attempt(self, node: Node, ctx: NodeContext) -> Any:
        """One call of the agent, with the node's timeout; a TimeoutError the agent raises
        itself is its own error, not the node's timeout."""
        deadline = asyncio.timeout(node.timeout_s)
        try:
            async with deadline:
                return await _invoke(node.agent, ctx)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise NodeFailure(f"timed out after {node.timeout_s} s", reason="timeout") from None

    def _complete(self, node: Node, result: AgentResult, iteration: int, ms: float) -> None:
        record = self.records[node.id]
        record.output, record.text, record.variables = result.output, result.text, result.variables
        record.tokens_in, record.tokens_out = result.tokens_in, result.tokens_out
        record.cost_usd, record.model = result.cost_usd or 0.0, result.model
        record.uncertainty, record.duration_ms = result.uncertainty, ms
        self.variables.update(result.variables)
        self.outputs[node.id] = result.output
        self.totals.node_executions += 1
        self.totals.tokens_in += result.tokens_in
        self.totals.tokens_out += result.tokens_out
        self.totals.cost_usd += record.cost_usd
        self.totals.carbon_g += result.carbon_g or 0.0
        self.emit(EventType.NODE_COMPLETE, node, output=result.output,
                  uncertainty=result.uncertainty, cost_usd=record.cost_usd,
                  carbon_g=result.carbon_g,
                  tokens_in=result.tokens_in, tokens_out=result.tokens_out,
                  payload={"iteration": iteration, "duration_ms": round(ms, 1),
                           "model": result.model, **result.cache_tokens(),
                           **result.variables,
                           **({"text": result.text} if result.text != result.output else {})})

    def _emit_failure(self, node: Node, failure: NodeFailure, began: float, iteration: int) -> None:
        self.emit(EventType.NODE_FAILED, node, payload={
            "error": str(failure), "reason": failure.reason, "iteration": iteration,
            "duration_ms": round((time.perf_counter() - began) * 1000, 1)})

    def _context(self, node: Node, iteration: int) -> NodeContext:
        feeders = [e.source for e in self._topo.forward_in.get(node.id, [])
                   if self._edge_taken.get(e)]
        feedback = self._feedback.pop(node.id, None)
        if feedback is not None:
            feeders.append(feedback[0])
        inputs = {n: self.records[n].output for n in feeders}
        return NodeContext(
            run_id=self.run_id, node_id=node.id, role=_role(node) or "", task=self.task,
            inputs=inputs, outputs=dict(self.outputs),
            variables=dict(self.variables), iteration=iteration,
            feedback=feedback[1] if feedback else None,
            on_text=lambda text: self._partial(node, iteration, text))

    # --- human gates -----------------------------------------------------------

    async def _gate(self, gate: HumanGate, ctx: NodeContext) -> AgentResult:
        """Pause for a decision; an approval passes the gated content downstream."""
        content = self.outputs.get(gate.content_from) if gate.content_from else ctx.upstream()
        await self.ask_approval(gate, content, gate.prompt, reason="gate",
                                protects=tuple(sorted(self._topo.descendants(gate.id))))
        return AgentResult(text=str(content), output=content)

    async def ask_approval(self, node: Node, content: Any, prompt: str, *, reason: str,
                           protects: tuple[str, ...] | None = None) -> Decision:
        """Ask the approver about ``content``; a rejection raises `GateRejected`.

        Used by human gates and by policy layers (risk tier, uncertainty). With the
        policy's human-in-the-loop switched off, the policy itself approves.
        """
        protects = protects if protects is not None else (node.id,)
        tier = max((self.nodes[n].risk_tier for n in protects), default=RiskTier.READ_ONLY)
        hitl = self.policy.human_in_loop if self.policy else None
        timeout = getattr(node, "timeout_s", None) if node.is_gate else None
        timeout = timeout or (hitl.timeout_s if hitl else None)
        policy_decides = hitl is not None and not hitl.enabled
        # a paused run is on disk before a person is asked (panel, webhook, store)
        person = not policy_decides and asks_a_person(self._approver)
        self.emit(EventType.GATE_PAUSE, node, committed=person, output=content, payload={
            "prompt": prompt, "reason": reason, "protects": list(protects),
            "risk_tier": tier.name, "timeout_s": timeout,
            "content_from": getattr(node, "content_from", None)})
        request = GateRequest(self.run_id, node.id, content, prompt, protects, tier, timeout,
                              checkpoint=self.checkpoint(node.id, content),  # pause included
                              reason=reason)
        if policy_decides:
            decision = Decision(True, "policy", "human_in_loop is disabled in this policy",
                                channel="policy", node_id=node.id)
        else:
            decision = await self._decide(request)
        self.decisions.append(decision)
        if not decision.approved:
            self.emit(EventType.GATE_REJECT, node, payload=decision.to_dict())
            raise GateRejected(decision)
        self.emit(EventType.GATE_RESUME, node, payload=decision.to_dict())
        return decision

    async def _decide(self, request: GateRequest) -> Decision:
        """Ask the approver; no decision within the gate's timeout is a rejection."""
        try:
            decision = await asyncio.wait_for(_invoke(self._approver, request), request.timeout_s)
        except TimeoutError:
            return Decision(False, "system", "timeout", channel="timeout", node_id=request.node_id)
        if not isinstance(decision, Decision):
            raise NodeFailure(f"the approver returned {decision!r}, not a Decision",
                              reason="approver_error")
        return decision

    # --- checkpoints: resuming a run paused at a gate, in another process --------

    def checkpoint(self, gate_id: str, content: Any) -> dict[str, Any] | None:
        """The run's state while ``gate_id`` waits, or None if it cannot be rebuilt."""
        if self.builder is None or self._topo is None:
            return None
        return json.loads(json.dumps({
            "format": 1, "builder": self.builder, "task": self.task, "run_id": self.run_id,
            "gate": gate_id, "gate_content": content, "seq": self._seq,
            "records": {n: dataclasses.asdict(r) for n, r in self.records.items()},
            "outputs": self.outputs, "variables": self.variables,
            "edges": [[e.source, e.target, t] for e, t in self._edge_taken.items()],
            "loops": [[e.source, e.target, n] for e, n in self._loop_counts.items()],
            "feedback": self._feedback, "totals": dataclasses.asdict(self.totals),
            "decisions": [d.to_dict() | {"node_id": d.node_id} for d in self.decisions],
            "policy": self.policy.to_dict() if self.policy else None,
            "ledger": self.ledger.location if self.ledger is not None else None,
        }, default=str))

    @classmethod
    def restore(cls, definition: Blueprint, state: dict[str, Any], *, bus: EventBus,
                policy: Policy | None, ledger: Recorder | None) -> Run:
        """A run rebuilt from `checkpoint`, ready to `resume` at its gate."""
        run = cls(definition, state["task"], bus=bus, run_id=state["run_id"], policy=policy,
                  ledger=ledger, builder=state["builder"])
        run._prepare()
        run._seq = state["seq"]
        run.records = {n: NodeRun(**r) for n, r in state["records"].items()}
        run.outputs, run.variables = state["outputs"], state["variables"]
        run.totals = Totals(**state["totals"])
        run.decisions = [Decision(**d) for d in state["decisions"]]
        run._feedback = {k: tuple(v) for k, v in state["feedback"].items()}
        by_ends = {(e.source, e.target): e for e in definition.edges}
        run._edge_taken = {by_ends[s, t]: taken for s, t, taken in state["edges"]}
        run._loop_counts = {by_ends[s, t]: n for s, t, n in state["loops"]}
        if run.governor is not None:
            run.governor.prepare(definition)
            run.governor.spent_usd, run.governor.spent_g = run.totals.cost_usd, run.totals.carbon_g
        return run

    async def resume(self, gate_id: str, content: Any, decision: Decision) -> RunResult:
        """Continue from the gate with ``decision``, as if it had just arrived."""
        self._started = time.perf_counter() - self.totals.duration_ms / 1000
        gate = self.nodes[gate_id]
        interrupted = [n for n, r in self.records.items() if r.status == "running" and n != gate_id]
        self.decisions.append(decision)
        if not decision.approved:
            self.emit(EventType.GATE_REJECT, gate, payload=decision.to_dict())
            self.records[gate_id].status = "rejected"
            return self._finish(RunStatus.REJECTED_AT_GATE,
                                f"'{gate_id}' {decision.describe()}")
        self.emit(EventType.GATE_RESUME, gate, payload=decision.to_dict())
        self._complete(gate, AgentResult(text=str(content), output=content),
                       self.records[gate_id].executions, 0.0)
        self.records[gate_id].status = "completed"
        self._route(gate_id)
        for node_id in interrupted:  # work elsewhere in the graph, cut short by the crash
            self.records[node_id].executions -= 1
            self._launch(node_id)
        await self._drain()
        return self._finish(self.status if self._stopping else RunStatus.COMPLETED, self.error)

    # --- routing ---------------------------------------------------------------

    def _route(self, node_id: str) -> None:
        """Decide which outgoing edges of a finished node are taken, then start what is ready."""
        if self._stopping:
            return
        try:
            loop, exhausted = self._try_loops(node_id)
            if loop is not None:
                return
            for edge in self._forward_out(node_id):
                self._resolve(edge, exhausted or self._holds(edge))
        except ConditionEvalError as err:
            self._stop(RunStatus.FAILED, f"a condition could not be evaluated: {err}")

    def _try_loops(self, node_id: str) -> tuple[Edge | None, bool]:
        """Take the first loop edge whose condition holds; report a spent guard."""
        exhausted = False
        for edge in (e for e in self._topo.out_edges.get(node_id, []) if e in self._loop_counts):
            if not self._holds(edge):
                continue
            if self._loop_counts[edge] < edge.max_iterations:
                self._take_loop(edge)
                return edge, False
            exhausted = True
            self.emit(EventType.LOOP_EXHAUSTED, self.nodes[node_id], payload={
                "edge": edge.label, "condition": edge.condition,
                "max_iterations": edge.max_iterations, **self._condition_values(edge),
                "message": f"loop {edge.label} reached max_iterations={edge.max_iterations}; "
                           "proceeding along the other edges regardless of their conditions"})
        return None, exhausted

    def _take_loop(self, edge: Edge) -> None:
        self._loop_counts[edge] += 1
        self.totals.loop_iterations += 1
        body = self._topo.bodies[edge]
        self.emit(EventType.LOOP_ITERATION, self.nodes[edge.source], payload={
            "edge": edge.label, "condition": edge.condition, "iteration": self._loop_counts[edge],
            "max_iterations": edge.max_iterations, "rerun": sorted(body),
            **self._condition_values(edge)})
        for node_id in body:
            self.records[node_id].status = "pending"
        for other in self._topo.forward_edges:
            if other.source in body:
                self._edge_taken[other] = None
        for inner in self._topo.loop_edges:  # nested loops start afresh on each pass
            if inner is not edge and inner.source in body and inner.target in body:
                self._loop_counts[inner] = 0
        self._feedback[edge.target] = (edge.source, self.records[edge.source].text)
        self._launch(edge.target)

    def _resolve(self, edge: Edge, taken: bool) -> None:
        self._edge_taken[edge] = taken
        target = edge.target
        incoming = self._topo.forward_in[target]
        if self.records[target].status != "pending" or self._stopping:
            return
        if any(self._edge_taken[e] is None for e in incoming):
            return
        if any(self._edge_taken[e] for e in incoming):
            self._launch(target)
        else:
            self._skip(target)

    def _skip(self, node_id: str) -> None:
        self.records[node_id].status = "skipped"
        cut = [e.label for e in self._topo.forward_in[node_id]]
        self.emit(EventType.NODE_SKIPPED, self.nodes[node_id], payload={
            "reason": f"every incoming edge was cut: {', '.join(cut)}"})
        for edge in self._forward_out(node_id):
            self._resolve(edge, False)

    def _forward_out(self, node_id: str) -> list[Edge]:
        return [e for e in self._topo.out_edges.get(node_id, []) if e in self._edge_taken]

    def _holds(self, edge: Edge) -> bool:
        condition = self._conditions.get(edge)
        if condition is None:
            return True
        try:
            return condition.evaluate(self.variables)
        except ConditionEvalError as err:
            raise ConditionEvalError(f"edge {edge.label} [{edge.condition}]: {err}") from err

    def _condition_values(self, edge: Edge) -> dict[str, Any]:
        condition = self._conditions[edge]
        return {name: self.variables.get(name) for name in sorted(condition.names)}


def _checked(node: Node, value: Any) -> AgentResult:
    """The agent's return value as an `AgentResult`, holding every declared export."""
    result = normalize_result(value, node.exports)
    missing = [name for name in node.exports if name not in result.variables]
    if missing:
        raise NodeFailure(
            f"the agent declared exports {missing} but did not return them; return a dict "
            "or AgentResult(variables={...}) that includes them", reason="missing_export")
    return result


async def _invoke(function: Any, argument: Any) -> Any:
    """Call a coroutine function in the loop, a plain function in a worker thread."""
    if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            type(function).__call__):
        return await function(argument)
    loop = asyncio.get_running_loop()
    # in the task's context, so that the agent's span is current in the thread too
    value = await loop.run_in_executor(AGENT_THREADS, contextvars.copy_context().run,
                                       function, argument)
    return await value if inspect.isawaitable(value) else value


def _role(node: Node | None) -> str | None:
    role = getattr(node, "role", None)
    return getattr(role, "value", role)
