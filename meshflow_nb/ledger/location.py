"""Where the ledger is, and what lives beside it: the one answer for the whole package.

``MESHFLOW_LEDGER_DB`` names the ledger (a DuckDB file or a ``postgresql://`` URI);
without it, ``meshflow_ledger.duckdb`` in the working directory. Files that belong to a
ledger (the approvals folder, the learning store) sit beside a DuckDB ledger file, or
in the working directory when the ledger is a server or in memory. A location is shown
in messages and scripts as `redacted_location` gives it, without a password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

DEFAULT_LEDGER = "meshflow_ledger.duckdb"
"""The ledger file used when ``MESHFLOW_LEDGER_DB`` is not set (in the working directory)."""
LEDGER_ENV = "MESHFLOW_LEDGER_DB"
UNSEALABLE = "cannot be sealed"
"""How a ledger this role cannot seal for immutable audit says so (a server ledger whose
triggers only the tables' owner may install): pre-flight (P008) tells it from damage."""


def default_location(environ: Mapping[str, str] | None = None) -> str:
    """``MESHFLOW_LEDGER_DB``, else ``meshflow_ledger.duckdb`` in the working directory."""
    env = os.environ if environ is None else environ
    return env.get(LEDGER_ENV) or DEFAULT_LEDGER


def redacted_location(location: str | os.PathLike) -> str:
    """``location`` as messages and scripts show it: a password in a URI (``user:pw@`` or
    ``password=``) replaced by ``***``, so printing a ledger never prints its secret."""
    text = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", os.fspath(location))
    return re.sub(r"(password=)[^&\s]*", r"\1***", text, flags=re.IGNORECASE)


def is_file_location(location: str | os.PathLike) -> bool:
    """A DuckDB file, as opposed to a PostgreSQL URI or an in-memory database."""
    text = os.fspath(location)
    return "://" not in text and text not in ("", ":memory:")


def ledger_folder(location: str | os.PathLike | None = None,
                  environ: Mapping[str, str] | None = None) -> Path:
    """The folder a ledger's companions live in: the ledger file's own folder, or the
    working directory for a server or in-memory ledger (absolute, not created)."""
    chosen = os.fspath(location) if location is not None else default_location(environ)
    if is_file_location(chosen):
        return Path(chosen).expanduser().absolute().parent
    return Path.cwd()
