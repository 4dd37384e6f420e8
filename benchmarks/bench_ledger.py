"""Ledger benchmark: verifying a 1,000,000-entry ledger, and what recording costs a run.

Figures (README.md explains each and its target):

* ``verify_1m``          ``ReplayLedger(path).verify_chain()`` of a clean 1M-entry DuckDB
  ledger, the file opened afresh or kept open;
* ``verify_passes``      the parts of a verification, timed one by one;
* ``verify_damaged``     the same ledger with one entry edited;
* ``capstone_overhead``  one capstone run with and without ``ReplayLedger.attach``;
* ``append_throughput``  events per second committed by the writer, per durability mode,
  on DuckDB and (when a server can be started) PostgreSQL.

The 1M-entry ledger is generated in bulk through the real ``rows.event_row`` and
``rows.chain_rows`` and inserted through Arrow, then cached in ``.cache/``. Before it
is used, a small sample from the same generator is written a second time through the real
writer (``LedgerWriter`` -> ``Store.append``) and both ledgers must hold identical rows.
"""

from __future__ import annotations

import gc
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from timing import stats, target

import meshflow_nb.ledger.verify as verify_pass
from meshflow_nb import fixed_approver
from meshflow_nb.events import EventType, MeshEvent
from meshflow_nb.ledger import Durability, ReplayLedger
from meshflow_nb.ledger.canonical import CURRENT_RECIPE
from meshflow_nb.ledger.forensics import run_record_problems
from meshflow_nb.ledger.replay import _stores
from meshflow_nb.ledger.rows import RUN_FIELDS, Row, chain_rows, event_row
from meshflow_nb.ledger.schema import ENTRY_COLUMNS, RUN_COLUMNS, create_statements
from meshflow_nb.ledger.stores import DuckDBStore
from meshflow_nb.ledger.stores.duckdb import arrow_schema
from meshflow_nb.ledger.writer import LedgerWriter
from meshflow_nb.pipelines import build_capstone_pipeline

PACKAGES = ("meshflow-nb", "duckdb", "pyarrow", "numpy", "psycopg")
"""Distributions whose versions run.py records next to the figures."""

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
GENERATOR_VERSION = 2
"""Bump when the generated rows change, so a stale cached ledger is rebuilt (2: hash
recipe 2, and the ledger carries its recipe marker)."""

RUNS, EVENTS_PER_RUN, CONCURRENT = 40_000, 25, 8
"""1,000,000 entries: runs of 25 events, eight at a time interleaved like concurrent runs."""
SAMPLE_RUNS = 24
SEED = 20240501
WORKFLOW = "bench_pipeline"
NODES = (("researcher", "researcher"), ("analyst_a", "executor"), ("analyst_b", "executor"),
         ("analyst_c", "executor"), ("writer", "executor"), ("quality_gate", "critic"),
         ("writer", "executor"), ("quality_gate", "critic"), ("editor", "executor"),
         ("publisher", "orchestrator"))
"""The ten node executions of a generated run (writer and critic run twice)."""
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

VERIFY_ROUNDS, VERIFY_WARMUP, PASS_ROUNDS = 7, 1, 3
OVERHEAD_RUNS, OVERHEAD_WARMUP = 300, 30
EVENT_MODE_RUNS, COLD_RUNS = 40, 8
APPEND_ROUNDS = 3
APPEND_RUNS = {Durability.STEP: 80, Durability.EVENT: 16}
"""Generated runs (25 events each) written per round, by durability mode."""
CAPSTONE_EVENTS = 23
TARGET_VERIFY_MS = 1000.0
TARGET_OVERHEAD_MS = 2.0


# --- generating a realistic ledger ---------------------------------------------------


class RunMaker:
    """Events of synthetic runs: 25 each, with outputs and payloads of realistic size."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)

    def events(self, index: int) -> list[MeshEvent]:
        """Run ``index``: start, ten node executions, a loop, a human gate, completion."""
        run_id = f"{index:08x}{self.rng.getrandbits(32):08x}"
        clock = _Clock(START + timedelta(seconds=index * 3))
        events = [self._event(run_id, 1, clock, EventType.RUN_START, payload={
            "workflow": WORKFLOW, "task": f"Benchmark task {index}", "nodes": 9})]
        for iteration, (node, role) in enumerate(NODES):
            inputs = [NODES[iteration - 1][0]] if iteration else []
            events.append(self._event(run_id, len(events) + 1, clock, EventType.NODE_START,
                                      node, role, payload={"inputs": inputs, "iteration": 1}))
            events.append(self._completed(run_id, len(events) + 1, clock, node, role))
            if iteration == 5:
                events.append(self._event(run_id, len(events) + 1, clock,
                                          EventType.LOOP_ITERATION, node, role, payload={
                                              "edge": "quality_gate -> writer", "iteration": 1,
                                              "quality_score": 0.6}))
            if iteration == 8:
                for kind, payload in ((EventType.GATE_PAUSE, {"prompt": "Approve?"}),
                                      (EventType.GATE_RESUME, {"approved": True})):
                    events.append(self._event(run_id, len(events) + 1, clock, kind,
                                              "hitl_gate", "human", payload=payload))
        events.append(self._event(run_id, len(events) + 1, clock, EventType.RUN_COMPLETE,
                                  output="published", payload={
                                      "status": "completed", "node_executions": 10}))
        return events

    def _completed(self, run_id: str, seq: int, clock: _Clock, node: str,
                   role: str) -> MeshEvent:
        words = self.rng.randint(9, 24)
        text = " ".join(self.rng.choice(_WORDS) for _ in range(words))
        return self._event(run_id, seq, clock, EventType.NODE_COMPLETE, node, role,
                           output=f"{node}: {text}.", payload={"model": "mock-1"},
                           uncertainty=self.rng.random() / 4,
                           cost_usd=self.rng.random() / 100,
                           tokens_in=self.rng.randint(200, 1200),
                           tokens_out=self.rng.randint(50, 800))

    @staticmethod
    def _event(run_id: str, seq: int, clock: _Clock, kind: EventType, node: str | None = None,
               role: str | None = None, **fields: Any) -> MeshEvent:
        return MeshEvent(run_id, seq, clock.tick(), kind, node, role, **fields)


_WORDS = ("market", "battery", "cost", "risk", "evidence", "supply", "forecast", "pilot",
          "rollout", "quality", "review", "scale", "vendor", "timeline", "analysis")


class _Clock:
    """ISO timestamps a few milliseconds apart, like a run's events."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def tick(self) -> str:
        self.now += timedelta(microseconds=1731)
        return self.now.isoformat(timespec="microseconds")


def interleaved(runs: list[list[MeshEvent]]) -> Iterator[MeshEvent]:
    """Events of ``CONCURRENT`` runs at a time, round-robin, as concurrent runs arrive."""
    for first in range(0, len(runs), CONCURRENT):
        group = runs[first:first + CONCURRENT]
        for position in range(EVENTS_PER_RUN):
            yield from (run[position] for run in group)


def generated_rows(n_runs: int) -> list[Row]:
    """The chained, hashed rows of ``n_runs`` generated runs, exactly as append makes them."""
    maker = RunMaker()
    runs = [maker.events(i) for i in range(n_runs)]
    assert all(len(run) == EVENTS_PER_RUN for run in runs)
    return chain_rows((event_row(e) for e in interleaved(runs)), 1, {})


def run_records(rows: list[Row]) -> list[Row]:
    """Each run's ``ledger_runs`` record, as ``Store._record_runs`` leaves it."""
    records: dict[str, Row] = {}
    for row in rows:
        if row["event_type"] == EventType.RUN_START.value:
            fields = row[RUN_FIELDS]
            records[row["run_id"]] = {
                "run_id": row["run_id"], "workflow": fields["workflow"],
                "task": fields["task"], "status": "running", "started_at": row["ts"],
                "ended_at": None, "entry_count": 0, "head_hash": None,
                "policy": fields["policy"]}
        record = records[row["run_id"]]
        record["entry_count"], record["head_hash"] = row["run_seq"], row["hash"]
        if row["event_type"] == EventType.RUN_COMPLETE.value:
            record["status"] = row[RUN_FIELDS]["status"]
            record["ended_at"] = row["ts"]
    return list(records.values())


def write_ledger(path: Path, rows: list[Row]) -> None:
    """Create the tables and insert ``rows`` and their run records in bulk through Arrow."""
    entries = pa.Table.from_pylist(rows, schema=arrow_schema())
    names = [n for n, _ in RUN_COLUMNS]
    runs = pa.Table.from_pylist(run_records(rows), schema=pa.schema(
        [(n, pa.int64() if n == "entry_count" else pa.string()) for n in names]))
    select = ", ".join(f"CAST({n} AS DECIMAL(18, 9)) AS {n}" if k.startswith("DECIMAL")
                       else n for n, k in ENTRY_COLUMNS)
    with duckdb.connect(str(path)) as con:
        for statement in create_statements(CURRENT_RECIPE.number):
            con.execute(statement)
        con.register("bench_entries", entries)
        con.register("bench_runs", runs)
        con.execute(f"INSERT INTO ledger_entries SELECT {select} FROM bench_entries")
        con.execute(f"INSERT INTO ledger_runs SELECT {', '.join(names)} FROM bench_runs")
        con.execute("CHECKPOINT")


def cached_ledger(n_runs: int = RUNS) -> Path:
    """The generated ledger of ``n_runs`` runs, built once and kept in ``.cache/``."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"ledger_{n_runs * EVENTS_PER_RUN}_v{GENERATOR_VERSION}.duckdb"
    if path.exists():
        return path
    began = time.perf_counter()
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    write_ledger(tmp, generated_rows(n_runs))
    tmp.replace(path)
    print(f"built {path.name} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return path


def check_generator(workdir: Path) -> None:
    """Fail unless the generator's rows equal what the real writer stores for its events."""
    rows = generated_rows(SAMPLE_RUNS)
    bulk, real = workdir / "bulk.duckdb", workdir / "writer.duckdb"
    write_ledger(bulk, rows)
    store = DuckDBStore(real)
    store.ensure_schema()
    writer = LedgerWriter(store, Durability.STEP)
    maker = RunMaker()
    for event in interleaved([maker.events(i) for i in range(SAMPLE_RUNS)]):
        writer(event)
    writer.close()
    store.close()
    for table in ("ledger_entries", "ledger_runs", "ledger_meta"):
        if _dump(bulk, table) != _dump(real, table):
            raise AssertionError(f"the bulk generator's {table} differ from the writer's")
    result = ReplayLedger(bulk).verify_chain()
    if not result.valid or result.entries_checked != len(rows):
        raise AssertionError(f"the generated sample does not verify: {result.report()}")


def _dump(path: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


# --- timing helpers -----------------------------------------------------------------


def timed(call: Callable[[], Any]) -> tuple[int, Any]:
    """Nanoseconds one call took, and what it returned."""
    began = time.perf_counter_ns()
    outcome = call()
    return time.perf_counter_ns() - began, outcome


def repeat(call: Callable[[], Any], rounds: int, warmup: int = 0,
           check: Callable[[Any], None] = lambda _: None,
           before: Callable[[], Any] = lambda: None) -> list[int]:
    """Time ``rounds`` calls after ``warmup`` untimed ones; ``check`` sees every outcome
    and ``before`` runs ahead of each call, untimed."""
    samples = []
    gc.collect()
    for round_ in range(warmup + rounds):
        before()
        elapsed, outcome = timed(call)
        check(outcome)
        if round_ >= warmup:
            samples.append(elapsed)
    return samples


def _cpu_s() -> float:
    """CPU seconds used by this process so far, every thread (DuckDB's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def forget_store(path: Path) -> None:
    """Close and drop the process's shared store, so the next ReplayLedger opens afresh."""
    store = _stores.pop(str(path.resolve()), None)
    if store is not None:
        store.close()


def release(ledger: ReplayLedger) -> None:
    """Stop the ledger's writer thread and close its database (before it is deleted)."""
    ledger.writer.close()
    key = next((k for k, s in _stores.items() if s is ledger.store), None)
    if key is not None:
        _stores.pop(key).close()


# --- verify_1m ----------------------------------------------------------------------------


def expect_clean(n_runs: int) -> Callable[[Any], None]:
    """A check that a verification found the generated ledger intact and complete."""
    def check(result: Any) -> None:
        if not (result.valid and result.entries_checked == n_runs * EVENTS_PER_RUN
                and result.runs_checked == n_runs):
            raise AssertionError(f"the generated ledger did not verify clean: {result!r}")
    return check


def measure_verify(path: Path, n_runs: int) -> dict[str, Any]:
    """``ReplayLedger(path).verify_chain()`` on the cached ledger, opening it each round."""
    cpu: list[float] = []

    def verify_fresh() -> Any:
        began = _cpu_s()
        result = ReplayLedger(path).verify_chain()
        cpu.append(_cpu_s() - began)
        return result

    figures = {"replay_ledger_verify_chain": stats(repeat(
        verify_fresh, VERIFY_ROUNDS, VERIFY_WARMUP, expect_clean(n_runs),
        before=lambda: forget_store(path)))}
    ledger = ReplayLedger(path)
    with ledger.store.lease():  # the file stays open: what a second verify costs
        figures["verify_chain_file_open"] = stats(repeat(
            ledger.verify_chain, VERIFY_ROUNDS, VERIFY_WARMUP, expect_clean(n_runs)))
    value = figures["replay_ledger_verify_chain"]["median_ms"]
    return {
        "description": f"verify_chain() of a clean {n_runs * EVENTS_PER_RUN:,}-entry DuckDB "
                       "ledger (file opened each round, or kept open)",
        "variants": figures,
        "entries": n_runs * EVENTS_PER_RUN, "runs": n_runs,
        "cpu_s_per_verify_median": round(sorted(cpu)[len(cpu) // 2], 3),
        "targets": [target("ReplayLedger(path).verify_chain() median ms", value,
                           TARGET_VERIFY_MS)],
    }


def measure_passes(path: Path) -> dict[str, Any]:
    """Each part of a verification alone (in verify_chain the record check overlaps pass 1)."""
    ledger = ReplayLedger(path)
    store = ledger.store
    with store.lease():
        parts = {
            "scan_hash_links_gaps": lambda: _scan(store),
            "run_records_sql": lambda: run_record_problems(store, "", [], set()),
            "sql_canonical_text_only": lambda: _fetch_canonical(store),
            "sql_window_links_old_pass": lambda: verify_pass._broken_runs(store, "", []),
        }
        figures = {name: stats(repeat(call, PASS_ROUNDS, 1)) for name, call in parts.items()}
    return {"description": "the passes of verify_chain timed one by one (1M entries); "
                           "sql_window_links_old_pass is the window query the scan replaced",
            "variants": figures, "targets": []}


def _scan(store: DuckDBStore) -> Any:
    with store.reader() as cursor:
        return verify_pass._ArrowScan(CURRENT_RECIPE).run(store, cursor, "", [])


def _fetch_canonical(store: DuckDBStore) -> int:
    with store.reader() as cursor:
        reader = cursor.sql(f"SELECT {CURRENT_RECIPE.quick_sql} FROM ledger_entries"
                            ).to_arrow_reader(verify_pass.BATCH_ROWS)
        return sum(len(batch) for batch in reader)


def measure_damaged(path: Path, workdir: Path) -> dict[str, Any]:
    """The same ledger with one entry edited: found, named, and still about as fast."""
    copy = workdir / "damaged.duckdb"
    shutil.copyfile(path, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE ledger_entries SET output = '\"edited\"' WHERE seq = 500000")

    def check(result: Any) -> None:
        found = [(p.seq, p.kind) for p in result.problems]
        if found != [(500000, "edited")]:
            raise AssertionError(f"the edit at seq 500000 was not found alone: {found}")

    figures = {"one_edited_entry": stats(repeat(ReplayLedger(copy).verify_chain,
                                                PASS_ROUNDS, 1, check))}
    forget_store(copy)
    return {"description": "verify_chain() of the 1M ledger with the entry at seq 500000 "
                           "edited (only its run is fetched to classify the damage)",
            "variants": figures, "targets": []}


# --- capstone_overhead ------------------------------------------------------------------


@contextmanager
def mock_agents() -> Iterator[None]:
    """Zero-latency mock agents, as in the quick check."""
    saved = {k: os.environ.get(k) for k in ("MESHFLOW_MOCK", "MESHFLOW_MOCK_LATENCY")}
    os.environ.update(MESHFLOW_MOCK="1", MESHFLOW_MOCK_LATENCY="0")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def capstone(ledger: ReplayLedger | None = None) -> Callable[[], Any]:
    """One capstone run (critic 0.6 then 0.85), recorded when ``ledger`` is given."""
    wf = build_capstone_pipeline(quality_scores=[0.6, 0.85])
    if ledger is not None:
        ledger.attach(wf)
    approver = fixed_approver(True, "benchmark", "approved by script", channel="script")
    return lambda: wf.run("Benchmark task", approver=approver)


def check_run(result: Any) -> None:
    """Fail unless the run completed and the ledger took every event: a ledger that
    refused or lost entries must not pass for a fast one."""
    if not (result.ok and len(result.events) == CAPSTONE_EVENTS and not result.unrecorded):
        raise AssertionError(f"the capstone run did not complete and record: {result!r} "
                             f"({result.recording_error})")


def measure_overhead(workdir: Path) -> dict[str, Any]:
    """Capstone runs with and without the ledger, interleaved in a shuffled order."""
    ledger = ReplayLedger(workdir / "overhead.duckdb")
    variants = {"no_ledger": capstone(), "ledger_step": capstone(ledger)}
    samples: dict[str, list[int]] = {name: [] for name in variants}
    rng, names = random.Random(SEED), list(variants)
    gc.collect()
    for round_ in range(OVERHEAD_WARMUP + OVERHEAD_RUNS):
        rng.shuffle(names)
        for name in names:
            elapsed, result = timed(variants[name])
            check_run(result)
            if round_ >= OVERHEAD_WARMUP:
                samples[name].append(elapsed)
    figures = {name: stats(values) for name, values in samples.items()}
    figures.update(_other_modes(workdir))
    _check_ledger(ledger, OVERHEAD_WARMUP + OVERHEAD_RUNS)
    release(ledger)
    overhead = round(figures["ledger_step"]["median_ms"] - figures["no_ledger"]["median_ms"], 4)
    return {
        "description": "one capstone run (23 events, zero-latency mock agents) per run; "
                       "overhead = median(ledger_step) - median(no_ledger)",
        "variants": figures, "overhead_ms": overhead,
        "targets": [target("ledger_step - no_ledger (median ms)", overhead, TARGET_OVERHEAD_MS)],
    }


def _other_modes(workdir: Path) -> dict[str, dict[str, Any]]:
    """Event durability, and runs that find the file closed (idle longer than the grace)."""
    strict = ReplayLedger(workdir / "event.duckdb", durability=Durability.EVENT)
    figures = {"ledger_event": stats(repeat(capstone(strict), EVENT_MODE_RUNS, 5, check_run))}
    _check_ledger(strict, EVENT_MODE_RUNS + 5)
    release(strict)
    cold = ReplayLedger(workdir / "cold.duckdb")
    idle = DuckDBStore.IDLE_CLOSE_S * 1.5  # the store has closed the file by then
    figures["ledger_step_file_closed"] = stats(repeat(
        capstone(cold), COLD_RUNS, 1, check_run, before=lambda: time.sleep(idle)))
    _check_ledger(cold, COLD_RUNS + 1)
    release(cold)
    return figures


def _check_ledger(ledger: ReplayLedger, runs: int) -> None:
    result = ledger.verify_chain()
    if not (result.valid and result.runs_checked == runs
            and result.entries_checked == runs * CAPSTONE_EVENTS):
        raise AssertionError(f"the benchmark ledger is not what its runs wrote: {result!r}")


# --- append_throughput ---------------------------------------------------------------------


def measure_append(workdir: Path) -> dict[str, Any]:
    """Events per second through the writer, one feeding thread, per durability mode."""
    locations = {"duckdb": lambda name: str(workdir / f"{name}.duckdb")}
    notes = []
    with postgres() as (uri_for, note):
        if uri_for is not None:
            locations["postgresql"] = uri_for
        notes.append(note)
        figures, rates = {}, {}
        for backend, location in locations.items():
            for mode, threads in ((Durability.STEP, 1), (Durability.EVENT, 1),
                                  (Durability.STEP, CONCURRENT)):
                name = f"{backend}_{mode}" + (f"_{threads}_threads" if threads > 1 else "")
                samples = _append_rounds(location, mode, name, threads)
                figures[name] = stats(samples)
                events = APPEND_RUNS[mode] * EVENTS_PER_RUN
                rates[name] = round(events / (figures[name]["median_ms"] / 1000))
    return {
        "description": "ReplayLedger.record fed generated runs (25 events each) and flushed; "
                       "one thread feeding eight interleaved runs, or eight threads feeding "
                       "one run at a time each; gate_pause and run_complete wait as in a "
                       "run; ms per round",
        "variants": figures, "events_per_s": rates,
        "events_per_round": {str(m): APPEND_RUNS[m] * EVENTS_PER_RUN for m in APPEND_RUNS},
        "notes": [n for n in notes if n], "targets": [],
    }


def _append_rounds(location: Callable[[str], str], mode: Durability, name: str,
                   threads: int) -> list[int]:
    """Rounds of writing fresh runs (the first is warm-up); the ledger must verify after."""
    ledger = ReplayLedger(location(name), durability=mode)
    assert ledger.writer is not None  # made now: replay.py makes it lazily, without a lock
    maker, samples, written = RunMaker(seed=SEED + 1), [], 0
    for round_ in range(APPEND_ROUNDS + 1):
        first = written
        written += APPEND_RUNS[mode]
        runs = [maker.events(i) for i in range(first, written)]
        feed = _feed if threads == 1 else _feed_threads
        elapsed, _ = timed(lambda runs=runs, feed=feed: feed(ledger, runs, threads))
        if round_:
            samples.append(elapsed)
    result = ledger.verify_chain()
    release(ledger)
    if not (result.valid and result.entries_checked == written * EVENTS_PER_RUN):
        raise AssertionError(f"{name}: the appended ledger does not verify: {result!r}")
    return samples


def _feed(ledger: ReplayLedger, runs: list[list[MeshEvent]], _threads: int = 1) -> None:
    """One thread: the runs' events interleaved eight runs at a time."""
    for event in interleaved(runs):
        ledger.record(event)
    ledger.flush()


def _feed_threads(ledger: ReplayLedger, runs: list[list[MeshEvent]], threads: int) -> None:
    """``threads`` threads, each recording its share of the runs one after another."""
    def work(share: list[list[MeshEvent]]) -> None:
        for run in share:
            for event in run:
                ledger.record(event)

    workers = [threading.Thread(target=work, args=(runs[i::threads],))
               for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ledger.flush()


@contextmanager
def postgres() -> Iterator[tuple[Callable[[str], str] | None, str]]:
    """A throwaway PostgreSQL cluster (tests/pg_cluster.py) and a database per name."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    try:
        from pg_cluster import PgCluster, find_bindir
    except ImportError as err:
        yield None, f"PostgreSQL skipped: tests/pg_cluster.py unavailable ({err})"
        return
    bindir = find_bindir()
    if bindir is None:
        yield None, "PostgreSQL skipped: no server binaries under /usr/lib/postgresql"
        return
    cluster = PgCluster(bindir)
    cluster.start()
    try:
        yield (lambda _name: cluster.create_database()), (
            "PostgreSQL: throwaway cluster from tests/pg_cluster.py (fsync=off, "
            "synchronous_commit=off, unix socket): commits cost no disk flush there")
    finally:
        cluster.stop()


# --- main ----------------------------------------------------------------------------------


def main() -> dict[str, Any]:
    """Check the generator, build or reuse the 1M ledger, run the three measurements."""
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp, mock_agents():
        workdir = Path(tmp)
        check_generator(workdir)
        path = cached_ledger()
        measurements = {
            "verify_1m": measure_verify(path, RUNS),
            "verify_passes": measure_passes(path),
            "verify_damaged": measure_damaged(path, workdir),
            "capstone_overhead": measure_overhead(workdir),
            "append_throughput": measure_append(workdir),
        }
        forget_store(path)
    return {
        "repetitions": {"verify": VERIFY_ROUNDS, "verify_warmup": VERIFY_WARMUP,
                        "passes": PASS_ROUNDS, "capstone": OVERHEAD_RUNS,
                        "capstone_warmup": OVERHEAD_WARMUP, "event_mode_runs": EVENT_MODE_RUNS,
                        "file_closed_runs": COLD_RUNS, "append_rounds": APPEND_ROUNDS},
        "ledger": {"entries": RUNS * EVENTS_PER_RUN, "runs": RUNS,
                   "generator_version": GENERATOR_VERSION},
        "measurements": measurements,
    }
