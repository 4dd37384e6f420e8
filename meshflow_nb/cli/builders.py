"""Loading a workflow builder named ``package.module:function`` (``meshflow-nb run``, and
``resume``, which rebuilds a paused run's workflow from the name it recorded)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import MeshflowError
from ..workflow import WorkflowDefinition


class BuilderError(MeshflowError):
    """The builder cannot be loaded, or does not build a workflow; says which and why."""


def load_builder(spec: str) -> Callable[..., WorkflowDefinition]:
    """The function ``spec`` names, e.g. ``meshflow_nb.pipelines:build_capstone_pipeline``."""
    module_name, _, attr = str(spec).partition(":")
    if not module_name or not attr:
        raise BuilderError(f"a builder must look like 'package.module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BuilderError(f"cannot import {module_name!r}: {err}") from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise BuilderError(f"{module_name!r} has no function {attr!r}")
    return builder


def build(spec: str, **kwargs: Any) -> WorkflowDefinition:
    """Call the builder ``spec`` names and check that it returned a workflow."""
    workflow = load_builder(spec)(**kwargs)
    if not isinstance(workflow, WorkflowDefinition):
        raise BuilderError(f"{spec} returned {type(workflow).__name__}, not a WorkflowDefinition")
    return workflow
