"""Ready-made workflows the lessons build on."""

from .capstone import CAPSTONE_TASK, build_capstone_pipeline

__all__ = ["CAPSTONE_TASK", "build_capstone_pipeline"]
