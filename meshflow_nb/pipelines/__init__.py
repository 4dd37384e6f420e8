"""Ready-made workflows the lessons build on, and the recorded runs they replay."""

from .capstone import CAPSTONE_TASK, build_capstone_pipeline
from .recordings import CAPSTONE_CASSETTE, recorded_policy, replay_rows, where_calls_go

__all__ = ["CAPSTONE_CASSETTE", "CAPSTONE_TASK", "build_capstone_pipeline", "recorded_policy",
           "replay_rows", "where_calls_go"]
