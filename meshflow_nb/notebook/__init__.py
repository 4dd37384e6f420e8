"""The notebook layer: drawings, live run view, run timelines, approval panel, ledger
explorer, magics, conditions tried on values, cost tables and charts, self-checks.

Needs IPython and ipywidgets (``pip install meshflow-nb[notebook]``); the engine never
imports it.
"""

from .approval_panel import ApprovalPanel
from .costs import cost_table, plot_costs, plot_spend
from .drawing import GraphvizNotInstalled, render_svg, to_dot
from .explorer import LedgerView, explore
from .ledger_widget import LedgerExplorer
from .live import LiveRun, WouldBlockKernelError, run_live
from .liveview import LiveView
from .routing import ConditionExplanation, condition_table, explain_condition, loop_history
from .runview import RunView
from .selfcheck import Verdict, self_check
from .timeline import Timeline, TimelineBar, plot_timeline

__all__ = ["ApprovalPanel", "ConditionExplanation", "GraphvizNotInstalled", "LedgerExplorer",
           "LedgerView", "LiveRun", "LiveView", "RunView", "Timeline", "TimelineBar", "Verdict",
           "WouldBlockKernelError", "condition_table", "cost_table", "explain_condition",
           "explore", "loop_history", "plot_costs", "plot_spend", "plot_timeline", "render_svg",
           "run_live", "self_check", "to_dot"]
