"""``meshflow-nb conformance python --level N``: is this installation what the course says?

Each level includes the ones below it: 1 the engine, 2 governance (one check per
`Policy` field), 3 production readiness (the ledger, approvals, OTLP export and live
mode this machine is set up to use). Every check runs something real, in a temporary
folder, and says PASS, FAIL (with how to fix it) or SKIP (with why). docs/conformance.md
lists the levels, every check and the JSON schema.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import redacted
from ..version import __version__
from . import conformance_production as production
from .conformance_checks import ENGINE, Check, Status, failed
from .conformance_governance import GOVERNANCE, NEEDS_FOLDER

IMPLEMENTATION = "python"
"""The one implementation there is to check: this package."""
LEVELS = {1: "the engine", 2: "governance", 3: "production readiness"}


@dataclass(frozen=True)
class CheckResult:
    """One check as reported: its level and name, what it found, and how long it took."""

    level: int
    name: str
    status: str
    detail: str
    fix: str
    seconds: float


@dataclass(frozen=True)
class Report:
    """Every check of one conformance run, in order, and how long the run took."""

    level: int
    checks: list[CheckResult]
    seconds: float

    @property
    def conformant(self) -> bool:
        """No check failed (a skipped one is fine: that service is not configured)."""
        return all(c.status != Status.FAIL for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (schema in docs/conformance.md)."""
        return {"implementation": IMPLEMENTATION, "version": __version__, "level": self.level,
                "conformant": self.conformant, "seconds": self.seconds,
                "checks": [asdict(c) for c in self.checks]}

    def to_json(self) -> str:
        """`to_dict` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def text(self) -> str:
        """One line per check, a fix under each failure, and the verdict with the time."""
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"meshflow-nb {__version__} conformance, {IMPLEMENTATION} implementation, "
                 f"level {self.level} ({', '.join(LEVELS[n] for n in range(1, self.level + 1))})"]
        for c in self.checks:
            lines.append(f"{c.status}  L{c.level}  {c.name:<{width}}  {c.detail}")
            if c.fix:
                lines.append(f"{'':>{width + 12}}fix: {c.fix}")
        return "\n".join([*lines, self.verdict()])

    def verdict(self) -> str:
        """``conformant at level N: ...`` or ``NOT conformant ...`` naming what failed."""
        count = {s: sum(c.status == s for c in self.checks) for s in Status}
        tally = f"{count[Status.PASS]} passed, {count[Status.SKIP]} skipped"
        if self.conformant:
            return f"conformant at level {self.level}: {tally}, in {self.seconds:.1f} s"
        names = ", ".join(c.name for c in self.checks if c.status == Status.FAIL)
        return (f"NOT conformant at level {self.level}: {count[Status.FAIL]} failed ({names}), "
                f"{tally}, in {self.seconds:.1f} s")


def run_conformance(level: int, webhook: str | None = None) -> Report:
    """Run every check up to ``level`` in a fresh temporary folder, removed afterwards."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="meshflow-conformance-") as tmp:
        checks = [_timed(n, name, probe) for n, name, probe in _probes(level, Path(tmp), webhook)]
    return Report(level, checks, round(time.perf_counter() - began, 3))


def _probes(level: int, folder: Path, webhook: str | None
            ) -> Iterator[tuple[int, str, Callable[[], Check]]]:
    """(level, name, check) for every check up to ``level``, in the documented order."""
    for n, table in ((1, ENGINE), (2, GOVERNANCE)):
        if level >= n:
            for name, check in table:
                yield n, name, partial(check, folder) if name in NEEDS_FOLDER else check
    if level >= 3:
        yield 3, "ledger_db", partial(production.ledger_db, folder)
        yield 3, "approvals", production.approvals
        yield 3, "approval_webhook", partial(production.approval_webhook, webhook)
        yield 3, "otlp_export", production.otlp_export
        yield 3, "live_mode", production.live_mode


def _timed(level: int, name: str, probe: Callable[[], Check]) -> CheckResult:
    """Run one check; one that crashes is a FAIL naming the error, never a traceback.
    Details pass through `redacted`, so no key the environment holds is ever shown."""
    began = time.perf_counter()
    try:
        found = probe()
    except Exception as err:  # a crashing check is a finding about this installation
        found = failed(f"the check could not run: {type(err).__name__}: {err}",
                       "the line above names what broke; reinstall meshflow-nb and try again")
    return CheckResult(level, name, found.status.value, redacted(found.detail),
                       redacted(found.fix), round(time.perf_counter() - began, 3))
