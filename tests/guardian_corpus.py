"""The guardian's labelled corpus for the tests: the one that ships in the package
(`meshflow_nb.policy.guardian_corpus`), so that lesson 08 measures on it through the
public API and there is one copy."""

from meshflow_nb.policy.guardian_corpus import *  # noqa: F403
