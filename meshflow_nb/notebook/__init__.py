"""The notebook layer: drawings, live run view, approval panel, ledger explorer, magics.

Needs IPython and ipywidgets (``pip install meshflow-nb[notebook]``); the engine never
imports it.
"""

from .approval_panel import ApprovalPanel
from .explorer import LedgerView, explore
from .ledger_widget import LedgerExplorer
from .live import LiveRun, run_live
from .liveview import LiveView
from .runview import RunView

__all__ = ["ApprovalPanel", "LedgerExplorer", "LedgerView", "LiveRun", "LiveView", "RunView",
           "explore", "run_live"]
