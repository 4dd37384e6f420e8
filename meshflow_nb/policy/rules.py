"""Pre-flight policy rules: what a policy demands of a workflow before any node runs.

Reported together with the structural rules (same `Problem` shape, ids P001...).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..ledger.location import LEDGER_ENV, UNSEALABLE, is_file_location, redacted_location
from ..model.graph import Blueprint, Topology
from ..model.preflight import Problem

if TYPE_CHECKING:
    from .config import Policy


def check_policy(policy: Policy, definition: Blueprint) -> list[Problem]:
    """Every violation of ``policy`` by ``definition``."""
    regulated = policy.mode.value == "regulated"
    return [*_budget_problems(policy, regulated), *_hitl_problems(policy, definition, regulated),
            *_role_problems(definition, regulated)]


def _budget_problems(policy: Policy, regulated: bool) -> Iterator[Problem]:
    """REGULATED mode caps what a run may spend (the values were checked by `Policy`)."""
    for name, unit in (("budget_usd", "USD"), ("carbon_budget_g", "grams CO2e")):
        needed = name == "budget_usd" or policy.enable_environmental
        if getattr(policy, name) is None and regulated and needed:
            yield Problem("P003", "budget-missing", "policy",
                          f"REGULATED mode requires {name} and it is not set.",
                          f"pass {name}=<a positive number of {unit}>.", field=name)


def _hitl_problems(policy: Policy, definition: Blueprint,
                   regulated: bool) -> Iterator[Problem]:
    hitl = policy.human_in_loop
    if regulated and not hitl.enabled:
        yield Problem("P002", "hitl-disabled", "policy",
                      "REGULATED mode requires human-in-the-loop approval.",
                      "use HumanInLoopConfig(enabled=True, tier_threshold=RiskTier.EXTERNAL_IO).",
                      field="human_in_loop")
        return
    if not (regulated and hitl.enabled):
        return
    for node_id in ungated_nodes(definition, hitl.tier_threshold):
        tier = next(n.risk_tier for n in definition.nodes if n.id == node_id)
        yield Problem("P001", "ungated-risky-node", f"node '{node_id}'",
                      f"it is {tier.name} (at or above {hitl.tier_threshold.name}) and a path "
                      "reaches it without passing a human gate.",
                      f"add a HumanGate before '{node_id}' on every path, e.g. "
                      f"add_node(HumanGate('approve_{node_id}')) and route its inputs "
                      "through it.")


def _role_problems(definition: Blueprint, regulated: bool) -> Iterator[Problem]:
    if not regulated:
        return
    for node in definition.nodes:
        if node.role is None:
            yield Problem("P006", "node-without-role", f"node '{node.id}'",
                          "REGULATED mode needs every node's role for the audit trail.",
                          "pass role=Role.<...> to the node.", field="role")


def ungated_nodes(definition: Blueprint, threshold: int) -> list[str]:
    """Nodes at or above ``threshold`` that some path from an entry reaches gate-free."""
    topo = Topology.of([n.id for n in definition.nodes], definition.edges)
    gates = {n.id for n in definition.nodes if n.is_gate}
    reached = set()
    stack = [n for n in topo.entries if n not in gates]
    while stack:
        node_id = stack.pop()
        if node_id in reached:
            continue
        reached.add(node_id)
        stack += [e.target for e in topo.forward_edges
                  if e.source == node_id and e.target not in gates]
    return [n.id for n in definition.nodes
            if n.id in reached and not n.is_gate and n.risk_tier >= threshold]


def audit_problems(ledger_location: str | None, damage: str | None) -> list[Problem]:
    """What immutable audit demands: a ledger (P007) that verifies, and can be sealed,
    before anything is added (P008). ``damage`` is the verifier's report, or why the
    ledger could not be verified or sealed; None when it verified."""
    if ledger_location is None:
        return [Problem("P007", "no-ledger", "policy",
                        "immutable_audit is on but no ledger records this workflow.",
                        "ReplayLedger(path_or_uri).attach(workflow) before running.",
                        field="immutable_audit")]
    if damage is None:
        return []
    where = f"ledger {redacted_location(ledger_location)}"
    if UNSEALABLE in damage:
        return [_unsealable(where, damage)]
    return [Problem("P008", "ledger-fails-verification", where,
                    "this ledger is sealed: immutable audit appends only to a ledger that "
                    "verifies, and this one does not, so the run was refused: no node ran "
                    f"and nothing was written to the ledger.\n{damage}",
                    "keep this ledger as evidence and record in a fresh one: "
                    f"{_fresh_ledger_route(ledger_location)}; or restore it from a verified "
                    "export (import_run into an empty ledger).", field="immutable_audit")]


def _unsealable(where: str, damage: str) -> Problem:
    """P008 for a server ledger this role may append to but not seal (``damage`` names
    the missing triggers and the tables' owner)."""
    return Problem("P008", "ledger-fails-verification", where,
                   "immutable audit appends only to a ledger whose database refuses changes, "
                   "and this role cannot seal this one, so the run was refused before any "
                   f"node ran.\n{damage}",
                   "have the owner of the ledger's tables install the triggers once, as the "
                   "message says, then run again; or run under immutable audit on a DuckDB "
                   f"file of your own ({LEDGER_ENV}=production.db).", field="immutable_audit")


def _fresh_ledger_route(ledger_location: str) -> str:
    """How to go on in a fresh ledger, for a message (a file, or a database server)."""
    if is_file_location(ledger_location):
        return (f"'meshflow-nb ledger new --db {ledger_location}' moves it aside to "
                f"{ledger_location}.<time>.bak and starts an empty one, or set "
                f"{LEDGER_ENV} to another file")
    return f"create a new database and point {LEDGER_ENV} at it"
