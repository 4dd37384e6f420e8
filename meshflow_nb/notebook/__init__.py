"""The notebook layer: drawings, live run view, approval panel, ledger explorer, magics,
self-checks.

Needs IPython and ipywidgets (``pip install meshflow-nb[notebook]``); the engine never
imports it.
"""

from .approval_panel import ApprovalPanel
from .drawing import GraphvizNotInstalled, render_svg, to_dot
from .explorer import LedgerView, explore
from .ledger_widget import LedgerExplorer
from .live import LiveRun, WouldBlockKernelError, run_live
from .liveview import LiveView
from .runview import RunView
from .selfcheck import Verdict, self_check

__all__ = ["ApprovalPanel", "GraphvizNotInstalled", "LedgerExplorer", "LedgerView", "LiveRun",
           "LiveView", "RunView", "Verdict", "WouldBlockKernelError", "explore", "render_svg",
           "run_live", "self_check", "to_dot"]
