"""The notebook layer: drawings, live run view, run timelines, approval panel, ledger
explorer, magics, conditions tried on values, cost tables and charts, policies compared and
pre-flight drawn, guardian findings and accuracy, uncertainty per agent, a webhook inbox
and a trace view for going to production, self-checks.

Needs IPython and ipywidgets (``pip install meshflow-nb[notebook]``); the engine never
imports it.
"""

from .approval_panel import ApprovalPanel
from .audit_view import damage_kinds, damage_report
from .breaker_view import (
    BreakerWatch,
    FakeClock,
    FlakyAgent,
    draw_breaker,
    plot_breaker,
    policy_breakers,
)
from .carbon_view import CarbonMethod, carbon_method
from .costs import carbon_table, cost_table, plot_carbon, plot_costs, plot_emissions, plot_spend
from .drawing import GraphvizNotInstalled, render_svg, to_dot
from .explorer import LedgerView, explore
from .learning_view import learned, learning_store, plot_revisions, revisions
from .ledger_files import ledger_copy, new_ledger
from .ledger_widget import LedgerExplorer
from .live import LiveRun, WouldBlockKernelError, run_live
from .liveview import LiveView
from .policy_view import PolicyComparison, PreflightDrawing, compare_policies, draw_preflight
from .routing import ConditionExplanation, condition_table, explain_condition, loop_history
from .runview import RunView
from .screening import findings_table, guardian_accuracy, plot_entropy, screen_corpus, search_ledger
from .selfcheck import Verdict, self_check
from .timeline import Timeline, TimelineBar, plot_timeline
from .trace_view import plot_trace, trace_of, trace_table, trace_text
from .uncertainty import plot_uncertainty, uncertainty_table
from .webhook_inbox import InboxEntry, WebhookInbox

__all__ = ["ApprovalPanel", "BreakerWatch", "CarbonMethod", "ConditionExplanation", "FakeClock",
           "FlakyAgent",
           "GraphvizNotInstalled", "InboxEntry", "LedgerExplorer",
           "LedgerView", "LiveRun", "LiveView", "PolicyComparison", "PreflightDrawing", "RunView",
           "Timeline", "TimelineBar", "Verdict", "WebhookInbox", "WouldBlockKernelError",
           "carbon_method", "carbon_table",
           "compare_policies", "condition_table", "cost_table", "damage_kinds", "damage_report",
           "draw_breaker",
           "draw_preflight", "explain_condition", "explore",
           "findings_table", "guardian_accuracy", "learned", "learning_store", "ledger_copy",
           "loop_history", "new_ledger",
           "plot_breaker", "plot_carbon", "plot_costs", "plot_emissions", "plot_entropy",
           "plot_revisions", "plot_spend",
           "plot_timeline", "plot_trace", "plot_uncertainty", "policy_breakers",
           "render_svg", "revisions", "run_live", "screen_corpus",
           "search_ledger", "self_check", "to_dot", "trace_of", "trace_table", "trace_text",
           "uncertainty_table"]
