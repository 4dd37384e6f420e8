"""Run the benchmarks in this folder, print a compact table, write JSON to results/.

    python benchmarks/run.py            # every bench_*.py (what ./dev bench runs)
    python benchmarks/run.py engine     # only bench_engine.py

A benchmark module ``bench_<name>.py`` provides ``main() -> dict`` returning
``{"repetitions": ..., "measurements": {figure: {"variants": {variant: {"median_ms",
"p90_ms", "min_ms", "runs"}}, "targets": [{"what", "value", "limit", "met"}], ...}}}``
and may list ``PACKAGES`` (distribution names) whose versions are recorded. This script
adds the machine and package information and writes ``results/<name>.json``.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def discover(wanted: list[str]) -> list[str]:
    """Names of the benchmarks to run (``engine`` for bench_engine.py), sorted."""
    found = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    unknown = [w for w in wanted if w not in found]
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(unknown)}; available: {', '.join(found)}")
    return [name for name in found if not wanted or name in wanted]


def load(name: str) -> ModuleType:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module(f"bench_{name}")


def machine_info() -> dict[str, Any]:
    """Where the figures come from: they only compare within one machine and run."""
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_one(name: str) -> dict[str, Any]:
    """Run one benchmark module and wrap its report with the run's context."""
    module = load(name)
    started = datetime.now(UTC)
    report = module.main()
    return {
        "benchmark": name,
        "timestamp": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "packages": package_versions(getattr(module, "PACKAGES", ())),
        **report,
    }


def write(name: str, report: dict[str, Any]) -> Path:
    """Write atomically (through a .tmp file) so a crash never leaves half a JSON."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def table(report: dict[str, Any]) -> str:
    """Figures as aligned rows, then each target with its verdict."""
    rows = [("figure", "variant", "median ms", "p90 ms", "min ms", "runs")]
    targets = []
    for figure, data in report["measurements"].items():
        for variant, s in data["variants"].items():
            rows.append((figure, variant, f"{s['median_ms']:.3f}", f"{s['p90_ms']:.3f}",
                         f"{s['min_ms']:.3f}", str(s["runs"])))
        targets += [f"  {figure}: {t['what']} = {t['value']} (target <= {t['limit']}): "
                    f"{'met' if t['met'] else 'NOT MET'}" for t in data.get("targets", [])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]
    return "\n".join([*lines, *(["targets:", *targets] if targets else [])])


def main(argv: list[str]) -> int:
    """Run the chosen benchmarks; exit status 0 even when a target is missed."""
    for name in discover(argv):
        print(f"== {name}", flush=True)
        report = run_one(name)
        print(table(report))
        print(f"wrote {write(name, report).relative_to(HERE.parent)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
