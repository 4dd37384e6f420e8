"""Workflow builders: functions named ``package.module:function`` that return a workflow.

``meshflow-nb run BUILDER`` loads whatever the user names on its command line (typing it
is consent). ``resume`` rebuilds a paused run's workflow from the name its request file
records, and that file is only data: anyone who can write to the approvals folder can
write any name into it. So `rebuild` calls only a builder this process registered
(`register_builder`; the package's own pipelines are), or the one the operator confirms
on the command line (``--trust-builder``), never a function that only a file names.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import MeshflowError, shown
from ..pipelines import build_capstone_pipeline
from ..workflow import WorkflowDefinition

Builder = Callable[..., WorkflowDefinition]

_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
"""What a builder name looks like: ``package.module:function``."""

_REGISTERED: dict[str, Builder] = {
    "meshflow_nb.pipelines:build_capstone_pipeline": build_capstone_pipeline,
    "meshflow_nb.pipelines.capstone:build_capstone_pipeline": build_capstone_pipeline,
}
"""The builders `rebuild` trusts by name (the capstone records the second spelling)."""


class BuilderError(MeshflowError):
    """The builder cannot be loaded, is not trusted, or does not build a workflow."""


def register_builder(spec: str, builder: Builder) -> None:
    """Let `rebuild` call ``builder`` for runs that record ``spec``: this process vouches
    for it (call it before `resume_run`, in the program that resumes)."""
    if not callable(builder):
        raise BuilderError(f"register_builder({spec!r}, ...) needs a function, "
                           f"got {type(builder).__name__}")
    _REGISTERED[str(spec)] = builder


def registered_builders() -> list[str]:
    """The names `rebuild` trusts without confirmation, for messages and docs."""
    return sorted(_REGISTERED)


def load_builder(spec: str) -> Builder:
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
    """The workflow of the builder the user named (``meshflow-nb run``)."""
    return _call(spec, load_builder(spec), kwargs)


def rebuild(spec: object, kwargs: object, trust: str | None = None) -> WorkflowDefinition:
    """The workflow of the builder a request file records, if this process trusts it."""
    if not isinstance(kwargs, Mapping):
        raise BuilderError(f"the recorded builder arguments are not an object: {shown(kwargs)}")
    return _call(str(spec), trusted_builder(spec, trust), dict(kwargs))


def trusted_builder(spec: object, trust: str | None = None) -> Builder:
    """A registered builder, or the one the operator confirmed (``trust`` equal to
    ``spec``); anything else is refused before its module is even imported."""
    if isinstance(spec, str) and spec in _REGISTERED:
        return _REGISTERED[spec]
    if trust is not None and trust == spec:
        return load_builder(trust)
    if trust is not None:
        raise BuilderError(f"the paused run records builder {shown(spec)}, not {trust!r}; "
                           "--trust-builder must name exactly the recorded builder")
    allow = (f"if you know that function, allow it with --trust-builder {spec}"
             if isinstance(spec, str) and _SPEC.fullmatch(spec) else "it is no builder name")
    raise BuilderError(
        f"not rebuilding with builder {shown(spec)}: the request file names it, and only "
        f"registered builders ({', '.join(registered_builders())}) are trusted; {allow}")


def _call(spec: str, builder: Builder, kwargs: dict[str, Any]) -> WorkflowDefinition:
    """Call a builder; a failure of its own becomes a `BuilderError` naming it."""
    try:
        workflow = builder(**kwargs)
    except MeshflowError:
        raise  # already says what is wrong and how to fix it
    except Exception as err:  # the builder is the user's code: report it, not a traceback
        raise BuilderError(f"{spec} failed: {type(err).__name__}: {err}") from err
    if not isinstance(workflow, WorkflowDefinition):
        raise BuilderError(f"{spec} returned {type(workflow).__name__}, not a WorkflowDefinition")
    return workflow
