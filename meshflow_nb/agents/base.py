"""What an agent receives (`NodeContext`) and what it may return (`AgentResult`).

An agent is a plain function or a coroutine function taking one `NodeContext`. It may
return text, a dict, or an `AgentResult`; `normalize_result` turns any of them into an
`AgentResult` so the runner handles one shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, shown
from ..validation import fraction, optional_number, whole


@dataclass(frozen=True)
class NodeContext:
    """Everything a node's agent may read: the task, upstream outputs, run variables."""

    run_id: str
    node_id: str
    role: str
    task: str
    inputs: Mapping[str, Any]
    """Latest outputs of the nodes that feed this one (including a loop edge's source)."""
    outputs: Mapping[str, Any]
    """Latest output of every node that has completed so far in this run."""
    variables: Mapping[str, Any]
    """Exported variables of the run so far (e.g. ``quality_score``)."""
    iteration: int = 1
    """1 on a node's first execution in this run, 2 on its first re-run by a loop, ..."""
    feedback: str | None = None
    """When a loop edge re-ran this node: the text of the loop edge's source (its review)."""
    lessons: tuple[str, ...] = ()
    """With cross-run learning on: plain-text lessons from earlier runs on similar tasks."""
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    """A streaming agent hands each piece of text here as it arrives (on the run's loop);
    the runner shows it as a ``node_partial`` event."""

    def upstream(self) -> Any:
        """What a reviewer of this node is shown: the one input's value when there is one
        (the draft itself, not ``{"writer": draft}``), else every input by node id."""
        if len(self.inputs) == 1:
            return next(iter(self.inputs.values()))
        return dict(self.inputs)


@dataclass
class AgentResult:
    """A structured agent output: text plus exported variables and accounting.

    Give either ``uncertainty`` (0 = certain, 1 = no idea) or ``confidence``
    (its complement); the runner stores uncertainty.
    """

    text: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    uncertainty: float | None = None
    confidence: float | None = None
    model: str | None = None
    carbon_g: float | None = None
    """Grams CO2e, filled in by the environmental layer when the policy turns it on."""
    output: Any = None
    """What downstream nodes see; defaults to ``text``."""
    cache_write_tokens: int = 0
    """Of ``tokens_in``: prompt tokens written to the model's prompt cache."""
    cache_read_tokens: int = 0
    """Of ``tokens_in``: prompt tokens read from the prompt cache (priced lower)."""

    def __post_init__(self) -> None:
        self.tokens_in = whole(self.tokens_in, "AgentResult.tokens_in")
        self.tokens_out = whole(self.tokens_out, "AgentResult.tokens_out")
        self.cache_write_tokens = whole(self.cache_write_tokens, "AgentResult.cache_write_tokens")
        self.cache_read_tokens = whole(self.cache_read_tokens, "AgentResult.cache_read_tokens")
        self.cost_usd = optional_number(self.cost_usd, "AgentResult.cost_usd")
        self.carbon_g = optional_number(self.carbon_g, "AgentResult.carbon_g")
        for name in ("uncertainty", "confidence"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, fraction(value, f"AgentResult.{name}"))
        if not isinstance(self.text, str):
            raise ConfigError(f"AgentResult.text must be a string, not {shown(self.text)}",
                              argument="AgentResult.text",
                              fix="put structured values in output= or variables=")
        if not isinstance(self.variables, Mapping):
            raise ConfigError(f"AgentResult.variables must be a dict, not {shown(self.variables)}",
                              argument="AgentResult.variables",
                              fix="pass variables={'quality_score': 0.9}")
        if self.model is not None and not isinstance(self.model, str):
            raise ConfigError(f"AgentResult.model must be a model id string, not "
                              f"{shown(self.model)}", argument="AgentResult.model",
                              fix="pass a model id, e.g. model='claude-haiku-4-5'")
        if self.uncertainty is None and self.confidence is not None:  # 0.9 -> 0.1, not
            self.uncertainty = round(1.0 - self.confidence, 12)  # 0.09999999999999998
        if self.output is None:
            self.output = self.text

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def cache_tokens(self) -> dict[str, int]:
        """The prompt-cache counts that are not zero, for an event's payload."""
        counts = {"cache_write_tokens": self.cache_write_tokens,
                  "cache_read_tokens": self.cache_read_tokens}
        return {name: count for name, count in counts.items() if count}


ACCOUNTING_KEYS = ("tokens_in", "tokens_out", "cost_usd", "uncertainty", "confidence", "model")
"""Keys of a dict result that count as the result's accounting, as in `AgentResult`."""


def normalize_result(value: Any, exports: tuple[str, ...] = ()) -> AgentResult:
    """Turn an agent's return value into an `AgentResult`.

    A dict is the output itself; its keys named in ``exports`` become variables, and
    its accounting keys (`ACCOUNTING_KEYS`: tokens, cost, uncertainty, model) count.
    Any other value is the output as it is, with its ``str()`` as the text.
    """
    if isinstance(value, AgentResult):
        return value
    if isinstance(value, Mapping):
        variables = {name: value[name] for name in exports if name in value}
        accounting = {name: value[name] for name in ACCOUNTING_KEYS if name in value}
        return AgentResult(text=_dict_text(value), variables=variables, output=dict(value),
                           **accounting)
    if value is None:
        return AgentResult(text="")
    if isinstance(value, str):
        return AgentResult(text=value)
    return AgentResult(text=str(value), output=value)


def _dict_text(value: Mapping[str, Any]) -> str:
    for key in ("text", "output", "content"):
        if isinstance(value.get(key), str):
            return value[key]
    return ", ".join(f"{k}={v}" for k, v in value.items())
