"""`Policy`: which governance layers are on, and how strict each is.

A `PolicyMode` gives a preset for every field (docs/policy.md has the table); any
argument you pass overrides its preset, and an argument the policy does not know is an
error rather than silently ignored. `policy.describe()` says what each layer will do.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from ..agents.pricing import ModelPrice
from ..errors import ConfigError, shown
from ..model.roles import RiskTier
from ..validation import SECONDS_MAX, flag, fraction, instance, optional_number
from .circuit import CircuitBreakerConfig
from .guardian import Action


class PolicyMode(StrEnum):
    """Presets, from a sandbox for experiments to a regulated deployment."""

    DEV = "dev"
    STANDARD = "standard"
    REGULATED = "regulated"

    def __str__(self) -> str:
        return self.name


def _tier(value: Any) -> RiskTier:
    """A RiskTier, or its name ("EXTERNAL_IO"); anything else names the tiers there are."""
    if isinstance(value, RiskTier):
        return value
    if isinstance(value, str) and value.strip().upper() in RiskTier.__members__:
        return RiskTier[value.strip().upper()]
    options = ", ".join(f"RiskTier.{t.name}" for t in RiskTier)
    raise ConfigError(f"HumanInLoopConfig.tier_threshold {shown(value)} is not a risk tier",
                      argument="HumanInLoopConfig.tier_threshold", fix=f"use one of {options}")


@dataclass(frozen=True)
class HumanInLoopConfig:
    """Who must approve what: nodes at or above ``tier_threshold`` wait for a human."""

    enabled: bool = True
    tier_threshold: RiskTier = RiskTier.EXTERNAL_IO
    approval_webhook: str | None = None
    """URL that receives a signed JSON notice when a run pauses for approval."""
    timeout_s: float | None = None
    """No decision within this time rejects the gate with reason "timeout"."""
    webhook_secret_env: str = "MESHFLOW_WEBHOOK_SECRET"
    """Environment variable holding the HMAC-SHA256 key that signs webhook notices."""

    def __post_init__(self) -> None:
        flag(self.enabled, "HumanInLoopConfig.enabled")
        object.__setattr__(self, "tier_threshold", _tier(self.tier_threshold))
        if self.approval_webhook is not None and not isinstance(self.approval_webhook, str):
            raise ConfigError(f"HumanInLoopConfig.approval_webhook must be a URL string, not "
                              f"{shown(self.approval_webhook)}",
                              argument="HumanInLoopConfig.approval_webhook",
                              fix="pass the receiver's https:// URL, or None")
        optional_number(self.timeout_s, "HumanInLoopConfig.timeout_s", strict=True,
                        maximum=SECONDS_MAX, fix="pass seconds such as timeout_s=300, or None "
                                                 "to wait without a deadline")
        if not isinstance(self.webhook_secret_env, str) or not self.webhook_secret_env.strip():
            raise ConfigError("HumanInLoopConfig.webhook_secret_env must name an environment "
                              f"variable, not {shown(self.webhook_secret_env)}",
                              argument="HumanInLoopConfig.webhook_secret_env",
                              fix="keep the default, MESHFLOW_WEBHOOK_SECRET")


_PRESETS: dict[PolicyMode, dict[str, Any]] = {
    PolicyMode.DEV: {
        "budget_usd": None, "enable_guardian": False, "guardian_action": Action.FLAG,
        "enable_uncertainty": False, "uncertainty_escalate": 0.7, "uncertainty_block": 0.9,
        "enable_environmental": False, "carbon_budget_g": None,
        "enable_cross_run_learning": False, "immutable_audit": False,
        "circuit_breaker": None, "human_in_loop": HumanInLoopConfig(enabled=False),
        "prices": None, "record_partial_output": False,
    },
    PolicyMode.STANDARD: {
        "budget_usd": 10.0, "enable_guardian": True, "guardian_action": Action.REDACT,
        "enable_uncertainty": True, "uncertainty_escalate": 0.7, "uncertainty_block": 0.9,
        "enable_environmental": True, "carbon_budget_g": None,
        "enable_cross_run_learning": False, "immutable_audit": False,
        "circuit_breaker": CircuitBreakerConfig(), "human_in_loop": HumanInLoopConfig(),
        "prices": None, "record_partial_output": False,
    },
    PolicyMode.REGULATED: {
        "budget_usd": None, "enable_guardian": True, "guardian_action": Action.BLOCK,
        "enable_uncertainty": True, "uncertainty_escalate": 0.6, "uncertainty_block": 0.85,
        "enable_environmental": True, "carbon_budget_g": None,
        "enable_cross_run_learning": True, "immutable_audit": True,
        "circuit_breaker": CircuitBreakerConfig(), "human_in_loop": HumanInLoopConfig(),
        "prices": None, "record_partial_output": False,
    },
}

FIELDS = tuple(_PRESETS[PolicyMode.STANDARD])


@dataclass(frozen=True, init=False)
class Policy:
    """Every governance field, each enforced at run time (see docs/policy.md)."""

    mode: PolicyMode
    budget_usd: float | None
    enable_guardian: bool
    guardian_action: Action
    enable_uncertainty: bool
    uncertainty_escalate: float
    uncertainty_block: float
    enable_environmental: bool
    carbon_budget_g: float | None
    enable_cross_run_learning: bool
    immutable_audit: bool
    circuit_breaker: CircuitBreakerConfig | None
    human_in_loop: HumanInLoopConfig
    prices: Mapping[str, ModelPrice] | None
    """Price table that replaces the default for cost accounting (see agents/pricing.py)."""
    record_partial_output: bool
    """Record a streaming agent's ``node_partial`` events in the ledger (off: shown only)."""
    explicit: frozenset[str]

    def __init__(self, mode: PolicyMode | str = PolicyMode.STANDARD, **settings: Any) -> None:
        unknown = [name for name in settings if name not in FIELDS]
        if unknown:
            raise ConfigError(_unknown_message(unknown), argument=unknown[0],
                              fix="docs/policy.md lists every field with its meaning")
        mode = _mode(mode)
        values = _checked({**_PRESETS[mode], **settings})
        for name, value in {"mode": mode, **values, "explicit": frozenset(settings)}.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (recorded with every run in the ledger)."""
        data = {"mode": self.mode.value}
        for name in FIELDS:
            value = getattr(self, name)
            data[name] = value.__dict__ if hasattr(value, "__dict__") else value
        hitl = dict(data["human_in_loop"])
        hitl["tier_threshold"] = self.human_in_loop.tier_threshold.name
        hitl["approval_webhook"] = _origin(hitl["approval_webhook"])
        data["human_in_loop"] = hitl
        data["guardian_action"] = self.guardian_action.value
        data["prices"] = sorted(self.prices) if self.prices else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """The policy recorded by `to_dict` (a custom price table is not recorded)."""
        fields = {k: v for k, v in data.items() if k in FIELDS and k != "prices"}
        if fields.get("circuit_breaker") is not None:
            fields["circuit_breaker"] = CircuitBreakerConfig(**fields["circuit_breaker"])
        hitl = dict(fields["human_in_loop"])
        hitl["tier_threshold"] = RiskTier[hitl["tier_threshold"]]
        fields["human_in_loop"] = HumanInLoopConfig(**hitl)
        return cls(data["mode"], **fields)

    def describe(self) -> str:
        """What is on, and what each layer will do during a run."""
        lines = [f"Policy {self.mode.name}"
                 + (f" (set explicitly: {', '.join(sorted(self.explicit))})" if self.explicit
                    else " (all presets)")]
        lines += [f"  {name:<20} {'on ' if on else 'off'}  {what}" for name, on, what in
                  self._layers()]
        return "\n".join(lines)

    def _layers(self) -> list[tuple[str, bool, str]]:
        hitl, breaker = self.human_in_loop, self.circuit_breaker
        return [
            ("budget", self.budget_usd is not None,
             f"refuse a node whose estimate would pass ${self.budget_usd:.2f}; stop the run "
             "once actual cost passes it" if self.budget_usd is not None else "no cost cap"),
            ("guardian", self.enable_guardian,
             f"screen each node's input and output for injection, secrets and PII; "
             f"{self.guardian_action.value} on a finding"),
            ("uncertainty", self.enable_uncertainty,
             f"ask a human above {self.uncertainty_escalate:.2f}; block the node above "
             f"{self.uncertainty_block:.2f}"),
            ("environmental", self.enable_environmental,
             "estimate grams CO2e per node"
             + (f"; stop the run past {self.carbon_budget_g:g} g"
                if self.carbon_budget_g is not None else "; no carbon cap")),
            ("cross-run learning", self.enable_cross_run_learning,
             "record outcomes beside the ledger; give agents earlier reviewers' feedback"),
            ("immutable audit", self.immutable_audit,
             "no update or delete; refuse to run on a ledger that fails verification"),
            ("circuit breaker", breaker is not None,
             f"retry {breaker.max_retries}x with backoff; open after "
             f"{breaker.failure_threshold} failures in {breaker.failure_window_s:g} s; "
             f"probe after {breaker.half_open_after_s:g} s" if breaker else "no retries"),
            ("human in the loop", hitl.enabled,
             f"approval before any node at {hitl.tier_threshold.name} or above"
             + (f"; timeout {hitl.timeout_s:g} s" if hitl.timeout_s else "")
             + ("; webhook notice" if hitl.approval_webhook else "")),
        ]

    def __str__(self) -> str:
        return self.describe()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.describe())


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """Every field's type and range, checked at construction: a policy that would do
    something other than what it says is refused before it governs anything."""
    for name in ("enable_guardian", "enable_uncertainty", "enable_environmental",
                 "enable_cross_run_learning", "immutable_audit", "record_partial_output"):
        flag(values[name], f"Policy.{name}")
    for name, unit in (("budget_usd", "budget_usd=5.0"), ("carbon_budget_g", "carbon_budget_g=50")):
        values[name] = optional_number(values[name], f"Policy.{name}", strict=True,
                                       fix=f"pass a positive number such as {unit}, or None "
                                           "for no cap")
    values["guardian_action"] = _action(values["guardian_action"])
    low = fraction(values["uncertainty_escalate"], "Policy.uncertainty_escalate")
    high = fraction(values["uncertainty_block"], "Policy.uncertainty_block")
    if low > high:
        raise ConfigError(f"Policy.uncertainty_escalate ({low:g}) is above uncertainty_block "
                          f"({high:g}), so nothing would ever be escalated",
                          argument="Policy.uncertainty_escalate",
                          fix="keep escalate <= block, e.g. 0.6 and 0.85")
    if values["circuit_breaker"] is not None:
        instance(values["circuit_breaker"], "Policy.circuit_breaker", CircuitBreakerConfig,
                 "pass CircuitBreakerConfig(max_retries=2, ...), or None for no retries")
    instance(values["human_in_loop"], "Policy.human_in_loop", HumanInLoopConfig,
             "pass HumanInLoopConfig(enabled=True) (or enabled=False)")
    if values["prices"] is not None and not (
            isinstance(values["prices"], Mapping)
            and all(isinstance(v, ModelPrice) for v in values["prices"].values())):
        raise ConfigError("Policy.prices must map model ids to ModelPrice entries",
                          argument="Policy.prices", fix="see docs/mock-mode.md, 'Prices'")
    return values


def _action(value: Any) -> Action:
    try:
        return Action(value)
    except ValueError:
        options = ", ".join(f"Action.{a.name}" for a in Action)
        raise ConfigError(f"Policy.guardian_action {shown(value)} is not an action",
                          argument="Policy.guardian_action", fix=f"use one of {options}") from None


def _mode(mode: PolicyMode | str) -> PolicyMode:
    try:
        return PolicyMode(mode.lower() if isinstance(mode, str) else mode)
    except ValueError:
        options = ", ".join(f"PolicyMode.{m.name}" for m in PolicyMode)
        raise ConfigError(f"unknown policy mode {shown(mode)}", argument="mode",
                          fix=f"use one of {options}") from None


def _unknown_message(unknown: list[str]) -> str:
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, FIELDS, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"Policy() got unknown argument{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(parts)}; the fields are: {', '.join(FIELDS)}")


def _origin(url: str | None) -> str | None:
    """Scheme and host only: webhook URLs often carry a token in their path or query."""
    if not url:
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
