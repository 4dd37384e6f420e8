"""The cost preview: what a workflow's live agents could spend, before a call is made.

An upper bound, so that nothing costs more than announced: each live agent is counted
once, plus once more for every re-run its loops allow; its input is its prompts plus
the most its upstream agents can write, its output is its ``max_tokens``, and every
input token is priced as a cache write, the dearest way to send it (a cache hit, or no
caching, only makes it cheaper).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MeshflowError
from ..model.graph import Blueprint, Topology
from .base import NodeContext
from .claude import AnthropicAgent
from .prompts import user_message

_CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class CallEstimate:
    """At most what one node's agent spends over a run."""

    node_id: str
    model: str
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass(frozen=True)
class CostEstimate:
    """The preview of a run: one row per live agent, and the total."""

    calls: tuple[CallEstimate, ...]

    @property
    def cost_usd(self) -> float:
        return sum(call.cost_usd for call in self.calls)

    @property
    def models(self) -> list[str]:
        return sorted({call.model for call in self.calls})

    def describe(self) -> str:
        """Two lines: the bound and the models, as printed before a live run."""
        if not self.calls:
            return "Cost preview: no live agents, so this run costs nothing."
        count = sum(call.calls for call in self.calls)
        return (f"Cost preview: at most ${self.cost_usd:.4f} for at most {count} model calls\n"
                f"Models: {', '.join(self.models)}")


class CostCapError(MeshflowError):
    """The preview's bound is above the cap the run was given: nothing was called."""


def check_cost(estimate: CostEstimate, cap_usd: float | None, what: str = "--max-cost") -> None:
    """Refuse a run whose preview could pass ``cap_usd`` (None: no cap)."""
    if cap_usd is not None and estimate.cost_usd > cap_usd:
        raise CostCapError(f"the run could cost up to ${estimate.cost_usd:.4f}, above "
                           f"{what} ${cap_usd:g}, so nothing was called; raise the cap, "
                           "lower max_tokens or max_revisions, or pick a cheaper model "
                           "(MESHFLOW_MODEL)")


def estimate_cost(workflow: Blueprint, task: str) -> CostEstimate:
    """At most what the live agents (`AnthropicAgent`) of ``workflow`` spend on ``task``."""
    topology = Topology.of([n.id for n in workflow.nodes], workflow.edges)
    agents = {n.id: n.agent for n in workflow.nodes if isinstance(n.agent, AnthropicAgent)}
    reruns = {node_id: sum(edge.max_iterations or 0 for edge, body in topology.bodies.items()
                           if node_id in body) for node_id in agents}
    rows = []
    for node_id, agent in agents.items():
        feeders = [e.source for e in topology.forward_in.get(node_id, [])]
        upstream = sum(getattr(agents.get(f), "max_tokens", 0) for f in feeders)
        tokens_in = _prompt_tokens(agent, task) + upstream
        calls = 1 + reruns[node_id]
        price = agent.price
        per_call = (tokens_in * max(price.input_usd_per_mtok, price.cache_write)
                    + agent.max_tokens * price.output_usd_per_mtok) / 1_000_000
        rows.append(CallEstimate(node_id, agent.model, calls, tokens_in * calls,
                                 agent.max_tokens * calls, per_call * calls))
    return CostEstimate(tuple(rows))


def _prompt_tokens(agent: AnthropicAgent, task: str) -> int:
    """The system prompt, the task and the tool, rounded up to whole tokens."""
    chars = len(agent.system) + len(user_message(_bare_context(task)))
    if agent.output_tool is not None:
        chars += len(str(agent.output_tool.to_param()))
    return -(-chars // _CHARS_PER_TOKEN)


def _bare_context(task: str) -> NodeContext:
    return NodeContext(run_id="preview", node_id="preview", role="", task=task, inputs={},
                       outputs={}, variables={})
