"""The checks of level 3, production readiness: what this machine is set up to use.

Each reads the environment the command runs in. The ledger named by
``MESHFLOW_LEDGER_DB`` is only read: a DuckDB file is verified as a copy in the run's
temporary folder, a PostgreSQL ledger through a connection that appends nothing. A
service that is not configured is a SKIP that says so, never a FAIL.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from ..agents.claude import AnthropicAgent
from ..agents.client import live_target
from ..agents.errors import BASE_URL_VAR, KEY_VAR, MissingKeyError
from ..events import plural
from ..hitl.store import approvals_dir
from ..hitl.webhook import DEFAULT_SECRET_ENV, build_notice, post_notice
from ..ledger import LedgerError, ReplayLedger
from ..ledger.location import DEFAULT_LEDGER, LEDGER_ENV, is_file_location, redacted_location
from ..model.graph import Node
from ..model.roles import Role
from ..policy.config import Policy, PolicyMode
from ..workflow import WorkflowDefinition
from .conformance_checks import APPROVE, TASK, Check, failed, passed, skipped

TIMEOUT_S = 5.0
"""How long the webhook and the OTLP collector may take to answer."""
LIVE_TIMEOUT_S = 20.0
"""How long the one live call may take (a real model answers 16 tokens in a second or two)."""
LIVE_MAX_TOKENS = 16
FRESH_LEDGER = "docs/cli.md#a-fresh-ledger"


def ledger_db(folder: Path) -> Check:
    """The ledger at ``MESHFLOW_LEDGER_DB`` (else the default file, if there is one)
    verifies; nothing is written to it."""
    location = os.environ.get(LEDGER_ENV, "").strip()
    if not location:
        default = Path(DEFAULT_LEDGER).absolute()
        if not default.exists():
            return skipped(f"{LEDGER_ENV} is not set and there is no {default}: no ledger "
                           "to verify")
        location = str(default)
    shown = redacted_location(location)
    try:
        result = ReplayLedger(_readable_copy(location, folder)).verify_chain()
    except (LedgerError, OSError) as err:
        return failed(f"{shown}: {_first_line(err)}",
                      f"point {LEDGER_ENV} at a ledger this machine can open (a DuckDB file "
                      "or a postgresql:// URI, docs/ledger.md)")
    if not result.valid:
        verdict, *problems = result.report().splitlines()
        first = f" First: {problems[0].strip(' -')}" if problems else ""
        return failed(f"{shown}: {verdict}{first}",
                      f"'meshflow-nb ledger verify --db {shlex.quote(shown)}' names each damaged "
                      "entry; keep the ledger as evidence and record new runs in a fresh one "
                      f"({FRESH_LEDGER})")
    source = "" if os.environ.get(LEDGER_ENV) else f" ({LEDGER_ENV} is not set: the default file)"
    return passed(f"{shown}{source}: {plural(result.entries_checked, 'entry', 'entries')} in "
                  f"{plural(result.runs_checked, 'run')} verified")


def _readable_copy(location: str, folder: Path) -> str:
    """What to open: a copy of a DuckDB file (and its write-ahead log) in ``folder``, so
    the user's file is never opened for writing; a server ledger as it is."""
    if not is_file_location(location):
        return location
    source = Path(location).expanduser()
    if not source.is_file():
        raise LedgerError(f"there is no ledger file at {source}: run the capstone on it "
                          f"({LEDGER_ENV}={source} ./dev capstone) or fix the path")
    copy = folder / f"verify-{source.name}"
    shutil.copyfile(source, copy)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    return str(copy)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def approvals() -> Check:
    """The approval store's folder can be written (or created) by this user."""
    store = approvals_dir()
    existing = store
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    fix = ("set MESHFLOW_APPROVALS_DIR to a folder this user can write, or fix the "
           "permissions (docs/approvals.md#the-decision-store)")
    if not existing.is_dir():
        return failed(f"{store} cannot be a folder: {existing} is a file", fix)
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        return failed(f"cannot write in {existing}: {err.strerror or err}", fix)
    made = "is writable" if existing == store else f"can be created (in {existing})"
    return passed(f"the approval store {store} {made}")


def approval_webhook(url: str | None) -> Check:
    """The webhook named with ``--webhook`` accepts a signed test notice."""
    if not url:
        secret = " (MESHFLOW_WEBHOOK_SECRET is set)" if os.environ.get(DEFAULT_SECRET_ENV) else ""
        return skipped(f"no webhook to try{secret}: its URL is a policy setting "
                       "(human_in_loop.approval_webhook); pass --webhook URL to check it")
    secret = os.environ.get(DEFAULT_SECRET_ENV, "")
    if not secret:
        return failed(f"{DEFAULT_SECRET_ENV} is not set, so no notice can be signed",
                      f"export {DEFAULT_SECRET_ENV}=<the secret the receiver checks>")
    notice = build_notice({"run_id": "conformance-probe", "node_id": "conformance",
                           "prompt": "meshflow-nb conformance: a test notice, nothing waits",
                           "risk_tier": "READ_ONLY"})
    delivery = post_notice(url, notice, secret, TIMEOUT_S)
    if delivery.ok:
        return passed(delivery.describe())
    return failed(delivery.describe(), f"check that the receiver at {delivery.target} is up and "
                  f"accepts notices signed with {DEFAULT_SECRET_ENV} (docs/approvals.md)")


def otlp_export() -> Check:
    """Spans reach the OTLP collector the environment names, when one is named."""
    try:
        from ..telemetry import check_export
    except ImportError:
        return skipped("this installation has no OTLP export (meshflow_nb.telemetry)")
    found = check_export(timeout_s=TIMEOUT_S, env=None)
    if not found.configured:
        return skipped(found.detail or "OTLP export is not configured")
    where = redacted_location(found.endpoint or "the configured endpoint")
    if found.ok:
        return passed(f"exported to {where}: {found.detail}")
    return failed(f"export to {where} failed: {found.detail}",
                  "start the collector there, or correct (or unset) the OTEL_EXPORTER_OTLP_* "
                  "settings")


def live_mode() -> Check:
    """One tiny call through the live agent reaches whatever the environment names."""
    if not (os.environ.get(KEY_VAR, "").strip() or os.environ.get(BASE_URL_VAR, "").strip()):
        return skipped(f"neither {KEY_VAR} nor {BASE_URL_VAR} is set: live mode is not "
                       "configured")
    try:
        target = live_target()
    except MissingKeyError as err:
        return failed(err.message, err.fix or f"set {KEY_VAR}")
    agent = AnthropicAgent(Role.RESEARCHER, max_tokens=LIVE_MAX_TOKENS)
    wf = WorkflowDefinition("conformance_live").add_node(
        Node("ask", agent, role=Role.RESEARCHER, timeout_s=LIVE_TIMEOUT_S))
    began = time.perf_counter()
    result = wf.run(TASK, policy=Policy(PolicyMode.DEV), approver=APPROVE)
    if not result.ok:
        return failed(f"{target}: {result.error}", _live_fix())
    return passed(f"{target} answered in {time.perf_counter() - began:.2f} s: {agent.model}, "
                  f"{result.totals.tokens} tokens, ${result.totals.cost_usd:.5f}")


def _live_fix() -> str:
    """What to do when the live call fails: start the server, or check the key."""
    if os.environ.get(BASE_URL_VAR, "").strip():
        return (f"start the server {BASE_URL_VAR} names (meshflow-nb serve-fake for a local "
                f"one) or unset {BASE_URL_VAR} (docs/live-mode.md)")
    return f"check {KEY_VAR} and this machine's network access to the API (docs/live-mode.md)"
