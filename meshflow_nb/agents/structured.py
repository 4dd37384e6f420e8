"""Structured answers through tool use: the tool a model must call, and the check of what
it passed.

A model fills a tool's JSON schema when it answers through that tool; it can still get
a field wrong, so every answer is checked against the schema here (the subset the
course's tools use: object, required, string, number, integer, boolean, enum, minimum,
maximum) before any value reaches a condition such as ``quality_score < 0.8``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import shown

_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "number": (int, float),
                                       "integer": (int,), "boolean": (bool,),
                                       "object": (dict,), "array": (list,)}


@dataclass(frozen=True)
class OutputTool:
    """A tool whose only purpose is to carry a structured answer."""

    name: str
    description: str
    input_schema: dict[str, Any]

    def to_param(self) -> dict[str, Any]:
        """The tool as the Messages API takes it."""
        return {"name": self.name, "description": self.description,
                "input_schema": self.input_schema}


REVIEW_TOOL = OutputTool(
    name="submit_review",
    description="Submit the review of the draft: its quality score and the feedback.",
    input_schema={
        "type": "object",
        "properties": {
            "quality_score": {"type": "number", "minimum": 0, "maximum": 1,
                              "description": "0 = unusable, 1 = ready to publish"},
            "feedback": {"type": "string",
                         "description": "Concrete changes the writer should make"},
        },
        "required": ["quality_score", "feedback"],
    },
)


def schema_problems(value: Any, schema: dict[str, Any], path: str = "input") -> list[str]:
    """What is wrong with ``value`` against ``schema``, one sentence each; [] if it fits."""
    expected = schema.get("type")
    if expected is not None and not _is_type(value, expected):
        return [f"{path} must be {expected}, got {shown(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path} must be one of {schema['enum']}, got {shown(value)}"]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _range_problems(value, schema, path)
    if isinstance(value, dict):
        return _object_problems(value, schema, path)
    return []


def _object_problems(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    problems = [f"{path}.{name} is missing" for name in schema.get("required", ())
                if name not in value]
    for name, sub in schema.get("properties", {}).items():
        if name in value:
            problems += schema_problems(value[name], sub, f"{path}.{name}")
    return problems


def _range_problems(value: float, schema: dict[str, Any], path: str) -> list[str]:
    if not math.isfinite(value):
        return [f"{path} must be a finite number, got {value!r}"]
    if "minimum" in schema and value < schema["minimum"]:
        return [f"{path} must be >= {schema['minimum']}, got {value!r}"]
    if "maximum" in schema and value > schema["maximum"]:
        return [f"{path} must be <= {schema['maximum']}, got {value!r}"]
    return []


def _is_type(value: Any, expected: str) -> bool:
    if isinstance(value, bool) and expected != "boolean":
        return False
    return isinstance(value, _TYPES.get(expected, (object,)))
