"""Self-checks: exercise cells judged against the learner's own run and ledger.

A lesson's self-check cell is one call, such as ``selfcheck.node_map()``: it answers
PASS, or a HINT that points at where to look (never at the answer). `self_check`
declares a check (what lesson cells give it, which answer variables it reads and what
kind of value each must be); the framework turns every unusable value and every error
inside a check into a HINT, so no check raises into the notebook. docs/self-checks.md
shows how to write one; `capstone` holds lesson 16's.
"""

from .capstone import node_map, preflight_fix, production_checklist, stream_labels, tamper_detected
from .expect import Count, Expect, Instance, ListOf, MappingOf, OneOf, Pair, Text, Unfit
from .framework import Check, Verdict, hint, passed, self_check
from .text import filler_reason, first_duplicate

__all__ = ["Check", "Count", "Expect", "Instance", "ListOf", "MappingOf", "OneOf", "Pair",
           "Text", "Unfit", "Verdict", "filler_reason", "first_duplicate", "hint", "node_map",
           "passed", "preflight_fix", "production_checklist", "self_check", "stream_labels",
           "tamper_detected"]
