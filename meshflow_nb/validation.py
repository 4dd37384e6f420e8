"""Argument checks for the public constructors, each failing with a `ConfigError` that
names the argument, shows the value (cut short) and says what to pass instead.

Every check returns the value it accepted (converted where that is the documented
meaning, e.g. an int for a float field), so a constructor reads as a list of checks.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from .errors import ConfigError, shown

MAX_BIGINT = 2**63 - 1
"""The largest whole number the ledger stores (a SQL BIGINT)."""

MAX_AMOUNT = 10**9
"""The largest cost, carbon or budget figure the ledger stores (DECIMAL(18, 9))."""

SECONDS_MAX = 366 * 24 * 3600
"""The longest timeout or wait accepted: a year (longer is a typo, or means "none")."""


def flag(value: Any, argument: str) -> bool:
    """A real bool: ``"no"`` or ``1`` would silently mean the opposite of what was meant."""
    if not isinstance(value, bool):
        name = _field(argument)
        raise ConfigError(f"{argument} must be True or False, not {shown(value)}",
                          argument=argument, fix=f"pass {name}=True or {name}=False")
    return value


def number(value: Any, argument: str, *, minimum: float = 0.0, strict: bool = False,
           maximum: float = MAX_AMOUNT, fix: str | None = None) -> float:
    """A finite real number in range: above ``minimum`` when ``strict``, else at least it."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and value <= maximum
          and (value > minimum if strict else value >= minimum))
    if not ok:
        bound = f"{'>' if strict else '>='} {minimum:g}"
        raise ConfigError(
            f"{argument} must be a finite number {bound} and <= {_figure(maximum)}, "
            f"not {shown(value)}",
            argument=argument, fix=fix or f"pass a number such as {_field(argument)}="
                                          f"{_figure(minimum + 1)}")
    return float(value)


def optional_number(value: Any, argument: str, **limits: Any) -> float | None:
    """`number`, or None where the field may be left unset (no cap, no timeout)."""
    return None if value is None else number(value, argument, **limits)


def whole(value: Any, argument: str, *, minimum: int = 0, maximum: int = MAX_BIGINT,
          fix: str | None = None) -> int:
    """A whole number in range (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        span = f">= {minimum}" if maximum == MAX_BIGINT else f"from {minimum} to {maximum}"
        fix = fix or f"pass e.g. {_field(argument)}={max(minimum, 1)}"
        raise ConfigError(f"{argument} must be a whole number {span}, not {shown(value)}",
                          argument=argument, fix=fix)
    return value


def fraction(value: Any, argument: str) -> float:
    """A number from 0 to 1 (uncertainty, confidence, thresholds)."""
    return number(value, argument, maximum=1.0,
                  fix=f"pass a number from 0 to 1 such as {_field(argument)}=0.5")


def instance(value: Any, argument: str, kind: type, fix: str) -> Any:
    """``value`` if it is a ``kind``; otherwise an error that says how to make one."""
    if not isinstance(value, kind):
        raise ConfigError(f"{argument} must be a {kind.__name__}, not {shown(value)}",
                          argument=argument, fix=fix)
    return value


def identifier(value: Any, argument: str) -> str:
    """A node id: a non-empty string without control characters (newline, NUL, U+001F)
    or backslashes, which would make the id ambiguous in the ledger (``\\N`` is how it
    writes NULL) or unreadable in a report."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{argument} must be a non-empty string, not {shown(value)}",
                          argument=argument, fix="use a short name such as 'writer'")
    bad = sorted({f"U+{ord(c):04X}" for c in value
                  if unicodedata.category(c) == "Cc" or c == "\\"})
    if bad:
        raise ConfigError(f"{argument} {shown(value)} contains control characters or "
                          f"backslashes ({', '.join(bad)})", argument=argument,
                          fix="use letters, digits, '_' and '-' (e.g. 'analyst_a')")
    return value


def _field(argument: str) -> str:
    """``timeout_s`` of ``HumanInLoopConfig.timeout_s``: what the caller types."""
    return argument.rsplit(".", 1)[-1]


def _figure(value: float) -> str:
    """A bound as a person reads it: 31622400, not 3.16224e+07."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
