"""The engine: runs one definition under one policy with one ledger.

`run` is the scheduler, `launch` the ways to run it, `results` what a run leaves. The
engine is handed everything it uses; it never imports the builder or the notebook layer.
"""

from .launch import RunHandle
from .results import NodeRun, RunResult, Totals
from .run import Run

__all__ = ["NodeRun", "Run", "RunHandle", "RunResult", "Totals"]
