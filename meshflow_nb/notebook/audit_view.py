"""The verifier's findings as a lesson prints them: the same text in every session.

    print(damage_report(copy.verify_chain(), {first.run_id: "A", second.run_id: "B"}))
    damage_kinds(check)          # [(seq, kind), ...]: what the verifier named, and where

A verification report names runs by their ids, which are new on every run. With each id
replaced by a label the learner knows (run A, run B), the report of a tamper reads the
same in every session, so a lesson can keep it as a checked output.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigError, shown
from ..ledger.verify import VerificationResult

__all__ = ["damage_kinds", "damage_report"]


def damage_report(check: VerificationResult, runs: Mapping[str, str]) -> str:
    """``check``'s report with every run id of ``runs`` ({run_id: label}) written as
    ``run <label>``, the longest ids first (an id never hides inside another's label)."""
    _verification(check)
    if not isinstance(runs, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in runs.items()):
        raise ConfigError(f"runs must be a dict of run ids to labels, not {shown(runs)}",
                          argument="runs", fix="pass e.g. {first.run_id: 'A'}")
    text = check.report()
    for run_id in sorted(runs, key=len, reverse=True):
        text = text.replace(f"run {run_id}", f"run {runs[run_id]}").replace(run_id,
                                                                          f"run {runs[run_id]}")
    return text


def damage_kinds(check: VerificationResult) -> list[tuple[int | None, str]]:
    """What the verifier named, in its order: (seq, kind) of every finding (seq None for a
    whole run or the whole ledger)."""
    _verification(check)
    return [(None if p.seq is None else int(p.seq), str(p.kind)) for p in check.problems]


def _verification(check: object) -> None:
    """A ConfigError unless ``check`` is what `verify_chain` returns."""
    if not isinstance(check, VerificationResult):
        raise ConfigError(f"check must be what verify_chain() returns, not {shown(check)}",
                          argument="check", fix="pass e.g. ledger.verify_chain()")
