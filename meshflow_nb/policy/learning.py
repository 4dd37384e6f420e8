"""Cross-run learning: what earlier runs taught, remembered beside the ledger.

With the policy's ``enable_cross_run_learning`` on, the governor asks the store for
lessons before a node runs (``lessons_for``) and hands it the finished run's events
afterwards (``record_run``). The store keeps *outcomes*: quality scores, how often a node
was sent back for revision, failures, reviewers' decisions and the critic's feedback.

Where: a DuckDB file of its own, never the ledger file, so it can be opened, written and
closed on every call without ever holding the ledger's lock:

* ledger ``runs/production.duckdb``  -> ``runs/production.learning.duckdb``
* ledger ``postgresql://...`` (or ``:memory:``) -> ``meshflow_learning.duckdb`` in the
  working directory.

What: only what the run's events carry, and of that only scores, counts, reasons and
feedback text, each screened once more by the guardian (secrets, personal data and
prompt-injection phrases are redacted) because lessons are fed to agents in later runs.
docs/cross-run-learning.md explains it for learners.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from ..errors import MeshflowError
from ..events import EventType, MeshEvent, utc_now
from ..ledger.location import default_location, is_file_location
from .guardian import Action, Guardian

NOBODY_DECIDED = frozenset({"timeout", "headless", "policy"})
"""Channels of a rejection that no person made (a deadline, a CI run's setting, the policy):
it is kept as an outcome but teaches the judged node nothing."""

__all__ = ["KINDS", "LEARNING_FILE", "LearningStore", "Outcome", "learning_location",
           "task_kind"]

LEARNING_FILE = "meshflow_learning.duckdb"
"""The store's file when the ledger is not a DuckDB file (PostgreSQL, ``:memory:``)."""
LEARNING_SUFFIX = ".learning.duckdb"
KINDS = ("quality_score", "revision_count", "failure", "reviewer_decision", "feedback")
TASK_KIND_WORDS = 3
LOCK_WAIT_S = 10.0
"""How long a call waits for another process that has the file open."""

_STOPWORDS = frozenset({
    "a", "an", "the", "of", "for", "on", "about", "to", "in", "into", "at", "by", "with",
    "and", "or", "from", "please", "our", "my", "your", "its", "this", "that", "these",
    "those", "some"})
_WORD = re.compile(r"[^\W_]+")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Outcome:
    """One thing a finished run taught: a score, a count, a failure, a decision, feedback."""

    run_id: str
    workflow: str
    task_kind: str
    node_id: str
    kind: str
    """One of `KINDS`."""
    value: str
    """Text: numbers as text (``"0.6"``), structured values as JSON."""
    recorded_at: str


def task_kind(task: str) -> str:
    """The first three content words of the task, lower case, joined by dashes.

    Similar tasks share it: "Assess the market readiness of solid-state batteries" and
    "assess market readiness for hydrogen trucks" are both ``assess-market-readiness``.
    Articles and prepositions are skipped; an empty task is ``any``.
    """
    words = [w for w in _WORD.findall(task.casefold()) if w not in _STOPWORDS]
    return "-".join(words[:TASK_KIND_WORDS]) or "any"


def learning_location(ledger: str | os.PathLike | None = None) -> str:
    """The learning store's file for a ledger location (default: the default ledger).

    A DuckDB ledger gets a sibling ``<stem>.learning.duckdb``; a PostgreSQL or in-memory
    ledger gets ``meshflow_learning.duckdb`` in the working directory.
    """
    chosen = default_location() if ledger is None else os.fspath(ledger)
    if not is_file_location(chosen):
        return LEARNING_FILE
    path = Path(chosen)
    return str(path.with_name(path.stem + LEARNING_SUFFIX))


# --- reading a run's events ---------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """An outcome plus the node its lesson is meant for (None: no lesson)."""

    outcome: Outcome
    lesson_for: str | None = None


class _Extractor:
    """Turns one run's events into rows; one method per kind of outcome."""

    def __init__(self, events: Sequence[MeshEvent], workflow: str, task: str,
                 known_targets: set[str]) -> None:
        self.events = sorted(events, key=lambda e: (e.run_id, e.seq))
        self.workflow, self.kind = workflow, task_kind(task)
        self.known_targets = known_targets
        self.now = utc_now()
        self._guardian = Guardian(Action.REDACT)

    def rows(self) -> list[_Row]:
        return [*self._scores_and_feedback(), *self._revisions(), *self._failures(),
                *self._decisions()]

    def _row(self, event: MeshEvent, kind: str, value: Any, node_id: str | None = None,
             lesson_for: str | None = None) -> _Row:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        outcome = Outcome(event.run_id, self.workflow, self.kind,
                          node_id or event.node_id or "", kind, self._clean(text), self.now)
        return _Row(outcome, lesson_for)

    def _clean(self, text: str) -> str:
        """Redact secrets, personal data and injection phrases: lessons reach prompts."""
        return str(self._guardian.screen(text, "learning").value)

    def _of(self, *types: EventType) -> Iterator[MeshEvent]:
        return (e for e in self.events if e.type in types)

    def _scores_and_feedback(self) -> Iterator[_Row]:
        for event in self._of(EventType.NODE_COMPLETE):
            score = event.payload.get("quality_score")
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                yield self._row(event, "quality_score", score)
            feedback = event.payload.get("feedback")
            if isinstance(feedback, str) and feedback.strip():
                yield self._row(event, "feedback", feedback.strip(),
                                lesson_for=self._revised_after(event))

    def _revised_after(self, event: MeshEvent) -> str | None:
        """The node a loop sent back right after this event's node completed, if any."""
        later = (e for e in self.events if e.run_id == event.run_id and e.seq > event.seq
                 and e.node_id == event.node_id
                 and e.type in (EventType.LOOP_ITERATION, EventType.NODE_START))
        following = next(later, None)
        if following is None or following.type is not EventType.LOOP_ITERATION:
            return None
        return _edge_target(following)

    def _revisions(self) -> Iterator[_Row]:
        """Revisions per loop target; 0 for targets known from earlier runs that ran again."""
        counts: Counter[tuple[str, str]] = Counter()
        for event in self._of(EventType.LOOP_ITERATION):
            target = _edge_target(event)
            if target:
                counts[(event.run_id, target)] += 1
        firsts: dict[tuple[str, str], MeshEvent] = {}
        for event in self._of(EventType.NODE_COMPLETE):
            firsts.setdefault((event.run_id, event.node_id or ""), event)
        for (run_id, node_id), event in firsts.items():
            if (run_id, node_id) in counts or node_id in self.known_targets:
                yield self._row(event, "revision_count", counts[(run_id, node_id)])

    def _failures(self) -> Iterator[_Row]:
        for event in self._of(EventType.NODE_FAILED, EventType.NODE_BLOCKED):
            reason = event.payload.get("reason") or event.payload.get("layer") or "blocked"
            error = event.payload.get("error") or event.payload.get("message") or ""
            yield self._row(event, "failure", {"reason": str(reason), "error": str(error)},
                            lesson_for=event.node_id)

    def _decisions(self) -> Iterator[_Row]:
        for event in self._of(EventType.GATE_RESUME, EventType.GATE_REJECT):
            about = self._decision_about(event)
            value = {key: event.payload.get(key) for key in ("reviewer", "reason", "channel")}
            value |= {"approved": event.type is EventType.GATE_RESUME, "about": about}
            judged = event.type is EventType.GATE_REJECT \
                and event.payload.get("channel") not in NOBODY_DECIDED
            yield self._row(event, "reviewer_decision", value,
                            lesson_for=about if judged else None)

    def _decision_about(self, event: MeshEvent) -> str:
        """Whose work the decision judged: a gate's content, else the node asked about."""
        pause = self._last_before(event, EventType.GATE_PAUSE)
        if pause is None or pause.payload.get("reason") != "gate":
            return event.node_id or ""
        if pause.payload.get("content_from"):
            return str(pause.payload["content_from"])
        start = self._last_before(event, EventType.NODE_START)
        inputs = start.payload.get("inputs", []) if start else []
        return str(inputs[0]) if len(inputs) == 1 else event.node_id or ""

    def _last_before(self, event: MeshEvent, kind: EventType) -> MeshEvent | None:
        earlier = [e for e in self.events if e.run_id == event.run_id and e.seq < event.seq
                   and e.type is kind and e.node_id == event.node_id]
        return earlier[-1] if earlier else None


def _edge_target(event: MeshEvent) -> str | None:
    """``writer`` from a loop event's ``"edge": "quality_gate -> writer"``."""
    edge = event.payload.get("edge")
    if not isinstance(edge, str) or " -> " not in edge:
        return None
    return edge.rsplit(" -> ", 1)[1].strip() or None


# --- lessons ---------------------------------------------------------------------


def _lesson(node_id: str, kind: str, value: str) -> str:
    """One plain sentence an agent (or a learner) can act on."""
    if kind == "feedback":
        asked = " ".join(_sentence(line) for line in value.splitlines() if line.strip())
        return f"Last time on a similar task the reviewer ({node_id}) asked: {asked}"
    data = _json(value)
    if kind == "reviewer_decision":
        why = f": {data['reason']}" if data.get("reason") else ""
        return (f"Last time on a similar task {data.get('reviewer') or 'a reviewer'} "
                f"rejected the work at {node_id}{why}")
    why = f": {data['error']}" if data.get("error") else ""
    return f"Last time on a similar task {node_id} failed ({data.get('reason')}){why}"


def _sentence(line: str) -> str:
    line = line.strip()
    return line if line.endswith((".", "!", "?")) else line + "."


def _json(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# --- the store -------------------------------------------------------------------

_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS learning_outcome_id;
CREATE TABLE IF NOT EXISTS learning_outcomes (
    id          BIGINT PRIMARY KEY DEFAULT nextval('learning_outcome_id'),
    run_id      VARCHAR NOT NULL,
    workflow    VARCHAR NOT NULL,
    task_kind   VARCHAR NOT NULL,
    node_id     VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    value       VARCHAR NOT NULL,
    recorded_at VARCHAR NOT NULL,
    lesson_for  VARCHAR            -- the node this outcome is a lesson for, if any
);
"""
_COLUMNS = tuple(f.name for f in fields(Outcome))


def _insert_sql(count: int) -> str:
    """One INSERT of ``count`` outcomes (ids are given in row order)."""
    row = f"({', '.join('?' for _ in range(len(_COLUMNS) + 1))})"
    return (f"INSERT INTO learning_outcomes ({', '.join(_COLUMNS)}, lesson_for) "
            f"VALUES {', '.join([row] * count)}")


def _newest_first(rows: list[_Row]) -> list[tuple]:
    """Just-inserted rows as `_LESSONS` reads them (ids follow row order)."""
    return [(r.lesson_for, r.outcome.node_id, r.outcome.kind, r.outcome.value)
            for r in reversed(rows)]


_LESSONS = """
SELECT lesson_for, node_id, kind, value FROM learning_outcomes
WHERE task_kind = ?
ORDER BY id DESC
"""

_ALIAS = "meshflow_learning"
_HOSTS: list[duckdb.DuckDBPyConnection] = []
_HOST_LOCK = threading.Lock()
"""One call at a time uses the host (a DuckDB connection is not shared across threads)."""


def _host() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB that store files are attached to (made on first use;
    one thread: the store's statements are tiny, and scheduling more costs more)."""
    if not _HOSTS:
        _HOSTS.append(duckdb.connect(":memory:", config={"threads": 1}))
    return _HOSTS[0]


@dataclass
class _Seen:
    """What this process knows of a store file; true while the file is in ``state``."""

    state: tuple[int, ...] | None
    lessons: dict[str, list[tuple]] = field(default_factory=dict)
    """Task kind -> its lesson rows, newest first."""
    revised: dict[str, set[str]] = field(default_factory=dict)
    """Workflow -> the nodes it has revision counts for."""


_SEEN: dict[str, _Seen] = {}
"""Store file -> what was read or written there, as the file was when this process left it.
Any other writer changes the file's state, and then nothing here is used."""


def _seen(path: str) -> _Seen | None:
    """What this process knows of the file, if the file is still as it left it."""
    seen = _SEEN.get(path)
    return seen if seen is not None and seen.state == _file_state(path) else None


def _file_state(path: str) -> tuple[int, ...] | None:
    """What changes whenever the file is written (None: there is no file)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


class LearningError(MeshflowError):
    """The learning store's file cannot be opened or read (busy, corrupted, not DuckDB)."""


class LearningStore:
    """Outcomes of earlier runs in a DuckDB file of their own, opened only per call."""

    def __init__(self, location: str | os.PathLike | None = None) -> None:
        """``location``: the store's file; None derives it from the default ledger.

        Kept as an absolute path, so changing directory later does not split the store.
        """
        chosen = os.fspath(location) if location is not None else learning_location()
        self.location = os.path.abspath(chosen)

    def __repr__(self) -> str:
        return f"LearningStore({self.location!r})"

    def record_run(self, events: Sequence[MeshEvent], workflow: str, task: str) -> list[Outcome]:
        """Store what a finished run taught; recording a run again replaces its outcomes."""
        if not events:
            return []

        kind = task_kind(task)
        before = _seen(self.location) or _Seen(None)
        after = _Seen(None, revised=dict(before.revised))

        def write(con: duckdb.DuckDBPyConnection) -> list[Outcome]:
            known = before.revised.get(workflow)
            if known is None:
                known = {r[0] for r in con.execute(
                    "SELECT DISTINCT node_id FROM learning_outcomes "
                    "WHERE workflow = ? AND kind = 'revision_count'", [workflow]).fetchall()}
            rows = _Extractor(events, workflow, task, known).rows()
            run_ids = sorted({e.run_id for e in events})
            con.execute("BEGIN TRANSACTION")
            replaced = con.execute("DELETE FROM learning_outcomes WHERE list_contains(?, run_id)",
                                   [run_ids]).fetchall()[0][0]
            if rows:  # one statement: DuckDB runs executemany row by row
                con.execute(_insert_sql(len(rows)),
                            [v for r in rows for v in (*astuple(r.outcome), r.lesson_for)])
            con.execute("COMMIT")
            after.revised[workflow] = known | {r.outcome.node_id for r in rows
                                               if r.outcome.kind == "revision_count"}
            if not replaced:  # only rows of this kind were added: the others still hold
                after.lessons.update(before.lessons)
            earlier = after.lessons.get(kind) if not replaced else None
            after.lessons[kind] = (_newest_first(rows) + earlier if earlier is not None
                                   else con.execute(_LESSONS, [kind]).fetchall())
            return [r.outcome for r in rows]

        outcomes = self._with_connection(write, create=True)
        after.state = _file_state(self.location)  # as just closed
        _SEEN[self.location] = after
        return outcomes

    def lessons_for(self, node_id: str, task: str, limit: int = 3) -> list[str]:
        """Up to ``limit`` distinct lessons for ``node_id`` on tasks like ``task``, newest first."""
        if limit <= 0:
            return []
        lessons: dict[str, None] = {}  # keeps first = newest
        for row in self._kind_lessons(task_kind(task)):
            if row[0] == node_id:
                lessons.setdefault(_lesson(*row[1:]))
                if len(lessons) == limit:  # older outcomes are not read into sentences
                    break
        return list(lessons)

    def _kind_lessons(self, kind: str) -> list[tuple]:
        """Every lesson row for tasks of ``kind``, newest first: read once per state of
        the file (a run asks for every node's lessons; any write changes the state)."""
        seen = _seen(self.location)
        if seen is not None and kind in seen.lessons:
            return seen.lessons[kind]
        rows = self._with_connection(lambda con: con.execute(_LESSONS, [kind]).fetchall())
        seen = _seen(self.location) or _Seen(_file_state(self.location))
        seen.lessons[kind] = rows or []
        _SEEN[self.location] = seen
        return seen.lessons[kind]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per outcome, oldest first, with the columns of `Outcome`."""
        frame = self._with_connection(lambda con: con.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM learning_outcomes ORDER BY id").df())
        return pd.DataFrame(columns=list(_COLUMNS)) if frame is None else frame

    def reset(self) -> int:
        """Forget everything learned; returns how many outcomes were removed."""
        def delete(con: duckdb.DuckDBPyConnection) -> int:
            count = con.execute("SELECT count(*) FROM learning_outcomes").fetchone()[0]
            con.execute("DELETE FROM learning_outcomes")
            return int(count)

        return self._with_connection(delete) or 0

    def _with_connection(self, work: Callable[[duckdb.DuckDBPyConnection], _T], *,
                         create: bool = False) -> _T | None:
        """Run ``work`` on a fresh connection, closed afterwards; None if there is no file.

        Reading never creates the file. Each call holds DuckDB's file lock only while it
        runs, so other processes (and a second notebook) can use the store in between.
        """
        if not create and not Path(self.location).exists():
            return None
        if create:
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
        known = _seen(self.location)  # as this process left it: the tables are there
        try:
            with self._connect() as con:
                if known is None or known.state is None:
                    con.execute(_SCHEMA)
                result = work(con)
        except duckdb.Error as err:
            raise LearningError(f"the learning store at {self.location} cannot be used: "
                                f"{str(err).splitlines()[0]}") from err
        state = _file_state(self.location)
        if known is None or known.state != state:  # written: what was read no longer holds
            _SEEN[self.location] = _Seen(state)
        return result

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file attached to the process's one in-memory DuckDB, detached afterwards
        (a new database per call costs ten times more; detaching lets go of the file's
        lock), waiting up to `LOCK_WAIT_S` while another process holds the file."""
        with _HOST_LOCK:
            host = _host()
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    host.execute(f"ATTACH '{self.location.replace(chr(39), chr(39) * 2)}' "
                                 f"AS {_ALIAS}")
                    break
                except duckdb.IOException as err:
                    if "lock" not in str(err).lower() or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            try:
                host.execute(f"USE {_ALIAS}")
                yield host
            except BaseException:
                with suppress(duckdb.Error):  # a transaction the work left open
                    host.execute("ROLLBACK")
                raise
            finally:
                host.execute("USE memory")
                host.execute(f"DETACH {_ALIAS}")
