"""Self-checks: exercise cells judged against the learner's own run and ledger.

A lesson's self-check cell is one call, such as ``selfcheck.node_map()``: it answers
PASS, or a HINT that points at where to look (never at the answer). `self_check`
declares a check (what lesson cells give it, which answer variables it reads and what
kind of value each must be); the framework turns every unusable value and every error
inside a check into a HINT, so no check raises into the notebook. docs/self-checks.md
shows how to write one; each lesson's checks have a module: `hello` (lesson 01), `agents`
(02), `fanout` (03), `conditions` (04), `streaming` (05), `policies` (06), `budgets` (07),
`guardian` (08), `uncertainty` (09), `gates` (10), `audit` (11), `circuit` (12), `carbon` (13),
`learning` (14),
`live` (15), `capstone` (16), `production` (17).
"""

from .agents import exported_variable, priced_result, roles_and_tiers
from .audit import anchor_only, hash_by_hand, restored_archive
from .budgets import budget_for_nodes, model_change, stop_payload
from .capstone import node_map, preflight_fix, production_checklist, stream_labels, tamper_detected
from .carbon import carbon_stop_at, grams_cut, largest_footprint
from .circuit import breaker_opens, probe_closes, retries_chosen
from .conditions import loop_exhaustion, threshold_routes, typo_fixed
from .expect import Count, Expect, Instance, ListOf, MappingOf, OneOf, Pair, Text, Unfit
from .fanout import branch_failure, capstone_fan_points, three_way_fanout
from .framework import Check, Verdict, hint, passed, self_check
from .gates import gate_timeout, rejected_before_io, webhook_approval
from .guardian import false_positive_explained, leak_contained, phi_action_defended
from .hello import run_in_ledger, task_totals, third_node
from .learning import fewer_revisions, learning_off, reset_store
from .live import cost_bound, model_moved, replay_equal, retry_fault
from .policies import mildest_refusal, regulated_fix, rule_names
from .production import ledger_moved, production_ready, slowest_agent_span, webhook_decision
from .streaming import cost_stop, event_labels, node_counter
from .text import filler_reason, first_duplicate
from .uncertainty import escalate_or_block, node_blocked, one_escalation

__all__ = ["Check", "Count", "Expect", "Instance", "ListOf", "MappingOf", "OneOf", "Pair", "Text",
           "Unfit", "Verdict", "anchor_only", "branch_failure", "breaker_opens",
           "budget_for_nodes", "capstone_fan_points", "carbon_stop_at",
           "cost_bound", "cost_stop", "escalate_or_block", "event_labels", "exported_variable",
           "false_positive_explained", "fewer_revisions", "filler_reason", "first_duplicate",
           "gate_timeout", "grams_cut", "hash_by_hand", "hint",
           "largest_footprint", "leak_contained", "learning_off", "ledger_moved",
           "loop_exhaustion",
           "mildest_refusal", "model_change",
           "model_moved",
           "node_blocked", "node_counter", "node_map", "one_escalation", "passed",
           "phi_action_defended", "preflight_fix",
           "priced_result", "probe_closes",
           "production_checklist", "production_ready", "regulated_fix", "rejected_before_io",
           "replay_equal", "reset_store", "restored_archive", "retries_chosen",
           "retry_fault", "roles_and_tiers", "rule_names",
           "run_in_ledger",
           "self_check", "slowest_agent_span", "stop_payload", "stream_labels",
           "tamper_detected", "task_totals",
           "third_node", "three_way_fanout", "threshold_routes", "typo_fixed", "webhook_approval",
           "webhook_decision"]
