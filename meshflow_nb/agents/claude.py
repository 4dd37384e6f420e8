"""`AnthropicAgent`: a node's work done by Claude through the real anthropic SDK.

The agent builds one Messages API request from its role prompt and the node's context,
sends it (streaming text deltas to the live view when ``stream=True``), and turns the
answer into an `AgentResult` whose tokens come from the response's ``usage``, cache
writes and reads included, and whose cost comes from the one price table. A critic
answers through a tool (`REVIEW_TOOL`): forced where the model accepts it, asked for
in words where it does not, and checked against the schema either way.

Where the calls go (the API, a local server, a cassette) is read from the environment
when the agent runs: see `client`. The key is never an argument. The SDK is imported on
the first call (or when a client is given), so a mock run never loads it.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigError, shown
from ..model.roles import Role
from ..telemetry.current import tracer_provider
from .base import AgentResult, NodeContext
from .client import loop_client, record
from .errors import MODEL_VAR, ModelOutputError
from .pricing import LIVE_MODEL, ModelPrice, cost_usd, current_prices, price_for
from .prompts import system_prompt, upstream_draft, user_message
from .structured import REVIEW_TOOL, OutputTool, schema_problems

DEFAULT_MAX_TOKENS = 1024


def live_model(environ: Mapping[str, str] | None = None) -> str:
    """``MESHFLOW_MODEL`` when set, else `LIVE_MODEL`: the one place a lesson's model id
    comes from."""
    return ((os.environ if environ is None else environ).get(MODEL_VAR, "").strip()
            or LIVE_MODEL)


@dataclass
class AnthropicAgent:
    """A live Claude agent playing ``role`` (an executor writes, or analyses its angle)."""

    provider_name: ClassVar[str] = "anthropic"
    """``gen_ai.provider.name`` of its spans."""
    role: Role | str
    angle: str | None = None
    model: str | None = None
    """None: ``MESHFLOW_MODEL``, else `LIVE_MODEL`, read when the agent is made."""
    system: str | None = None
    """None: the role's prompt (`prompts.system_prompt`)."""
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = None
    """None: the model's default (the 5.x models accept nothing else)."""
    stream: bool = False
    """Stream the answer, handing text deltas to the live view as they arrive."""
    output_tool: OutputTool | None = None
    """Answer through this tool; its input becomes the result's variables."""
    cache_system: bool = True
    """Mark the system prompt for the prompt cache (cache writes and reads priced apart)."""
    client: Any = None
    """An ``anthropic.AsyncAnthropic`` or ``Anthropic``; None: from the environment."""
    prices: Mapping[str, ModelPrice] | None = field(default=None, repr=False)
    """None: `current_prices()` (the table, with ``MESHFLOW_PRICES`` laid over it)."""

    def __post_init__(self) -> None:
        self.role = Role.of(self.role, "AnthropicAgent.role")
        self.model = self.model or live_model()
        self.prices = current_prices() if self.prices is None else self.prices
        self.price = price_for(self.model, self.prices)  # unknown model: refused here
        _check_settings(self)
        self.system = self.system or system_prompt(self.role, self.angle)

    @classmethod
    def critic(cls, **settings: Any) -> AnthropicAgent:
        """A reviewer that scores the upstream draft through `REVIEW_TOOL` and exports
        ``quality_score`` and ``feedback``; it passes the draft on unchanged."""
        return cls(Role.CRITIC, output_tool=REVIEW_TOOL, **settings)

    # --- the call --------------------------------------------------------------------

    async def __call__(self, ctx: NodeContext) -> AgentResult:
        import anthropic

        from .sdk_errors import model_error

        request = self.request(ctx)
        try:
            message = await self._send(request, ctx)
        except anthropic.APIError as err:
            raise model_error(err, self.model, self.prices) from err
        record(request, message)
        return self.result(message, ctx)

    def request(self, ctx: NodeContext) -> dict[str, Any]:
        """The Messages API request for this node's context (what a cassette keys on)."""
        system: Any = self.system
        if self.cache_system:
            system = [{"type": "text", "text": self.system,
                       "cache_control": {"type": "ephemeral"}}]
        request: dict[str, Any] = {
            "model": self.model, "max_tokens": self.max_tokens, "system": system,
            "messages": [{"role": "user", "content": self._user_text(ctx)}]}
        if self.output_tool is not None:
            request["tools"] = [self.output_tool.to_param()]
            request["tool_choice"] = ({"type": "tool", "name": self.output_tool.name}
                                      if self.price.forced_tool_choice else {"type": "auto"})
        return request

    def _user_text(self, ctx: NodeContext) -> str:
        text = user_message(ctx)
        if self.output_tool is not None and not self.price.forced_tool_choice:
            text += f"\n\nAnswer only by calling the {self.output_tool.name} tool."
        return text

    async def _send(self, request: dict[str, Any], ctx: NodeContext) -> Any:
        import anthropic

        extra = {} if self.temperature is None else {"extra_body":
                                                     {"temperature": self.temperature}}
        client = self.client
        if client is None or isinstance(client, anthropic.AsyncAnthropic):
            client = _traced(loop_client(client))
            if not self.stream:
                return await client.messages.create(**request, **extra)
            async with client.messages.stream(**request, **extra) as stream:
                async for text in stream.text_stream:
                    _hand_on(ctx, text)
                return await stream.get_final_message()
        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self._send_sync, _traced(client), request, extra, ctx,
                                       loop)

    def _send_sync(self, client: Any, request: dict[str, Any], extra: dict[str, Any],
                   ctx: NodeContext, loop: asyncio.AbstractEventLoop) -> Any:
        """The same call on a sync client, in a worker thread; deltas go back to the loop."""
        if not self.stream:
            return client.messages.create(**request, **extra)
        with client.messages.stream(**request, **extra) as stream:
            for text in stream.text_stream:
                loop.call_soon_threadsafe(_hand_on, ctx, text)
            return stream.get_final_message()

    # --- the answer ------------------------------------------------------------------

    def result(self, message: Any, ctx: NodeContext) -> AgentResult:
        """The answer as an `AgentResult`: text or structured variables, usage, cost."""
        usage = message.usage
        written = usage.cache_creation_input_tokens or 0
        read = usage.cache_read_input_tokens or 0
        cost = cost_usd(self.model, usage.input_tokens, usage.output_tokens, self.prices,
                        cache_write_tokens=written, cache_read_tokens=read)
        accounting = {"tokens_in": usage.input_tokens + written + read,
                      "tokens_out": usage.output_tokens, "cost_usd": cost, "model": self.model,
                      "cache_write_tokens": written, "cache_read_tokens": read}
        if self.output_tool is None:
            return AgentResult(text=_text_of(message), **accounting)
        variables = self._structured(message)
        # in the schema's order, not the answer's: a stored cassette sorts its keys
        order = self.output_tool.input_schema.get("properties", {})
        lines = [f"{name}: {variables[name]}" for name in order if name in variables]
        return AgentResult(text="\n".join(lines), variables=variables,
                           output=upstream_draft(ctx), **accounting)

    def _structured(self, message: Any) -> dict[str, Any]:
        """The tool's input, checked against its schema; anything else is a node failure."""
        name = self.output_tool.name
        calls = [b for b in message.content if b.type == "tool_use" and b.name == name]
        if not calls:
            said = _text_of(message)[:120]
            raise ModelOutputError(f"{self.model} answered without calling {name} (it said "
                                   f"{said!r}, stop_reason {message.stop_reason})",
                                   model=self.model)
        answer = calls[0].input
        problems = schema_problems(answer, self.output_tool.input_schema)
        if problems:
            raise ModelOutputError(f"{self.model}'s {name} answer does not fit its schema: "
                                   + "; ".join(problems), model=self.model)
        return dict(answer)


def _traced(client: Any) -> Any:
    """``client`` sending its call spans to the run's tracer provider, when the run is
    traced: the SDK's ``anthropic.messages.create`` span (CLIENT) then nests under the
    node's span. Content stays off there (``metadata_only``): our spans carry it, when
    asked, as the guardian let it through."""
    provider = tracer_provider()
    if provider is None:
        return client
    return client.with_options(open_telemetry={
        "tracer_provider": provider, "traces": {"content_mode": "metadata_only"}})


def _hand_on(ctx: NodeContext, text: str) -> None:
    if ctx.on_text is not None:
        ctx.on_text(text)


def _text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def _check_settings(agent: AnthropicAgent) -> None:
    """Refuse, before any call, what the API would refuse or what would cost unannounced."""
    tokens = agent.max_tokens
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ConfigError(f"AnthropicAgent.max_tokens must be a whole number >= 1, not "
                          f"{shown(tokens)}", argument="AnthropicAgent.max_tokens",
                          fix="pass e.g. max_tokens=1024")
    temperature = agent.temperature
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
                math.isfinite(temperature) and 0 <= temperature <= 1):
            raise ConfigError(f"AnthropicAgent.temperature must be a number from 0 to 1, not "
                              f"{shown(temperature)}", argument="AnthropicAgent.temperature",
                              fix="pass e.g. temperature=0.2, or None for the default")
        if not agent.price.sampling:
            raise ConfigError(f"{agent.model} rejects temperature (its API answers a 400)",
                              argument="AnthropicAgent.temperature",
                              fix="leave temperature=None for this model")
    if not isinstance(agent.stream, bool):
        raise ConfigError(f"AnthropicAgent.stream must be True or False, not "
                          f"{shown(agent.stream)}", argument="AnthropicAgent.stream")
    if agent.client is not None and not _is_client(agent.client):
        raise ConfigError(f"AnthropicAgent.client must be an anthropic client, not "
                          f"{shown(agent.client)}", argument="AnthropicAgent.client",
                          fix="pass anthropic.AsyncAnthropic() or leave it None")


def _is_client(value: Any) -> bool:
    import anthropic

    return isinstance(value, (anthropic.Anthropic, anthropic.AsyncAnthropic))
