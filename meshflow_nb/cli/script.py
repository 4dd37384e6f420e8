"""The argument parser of the hands-on scripts: a mistake is one line, exit status 2."""

from __future__ import annotations

import argparse
from typing import NoReturn


class ScriptParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose usage error is one line naming the script and
    ``--help`` (exit 2) instead of the usage block: a learner reads what went wrong first."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
