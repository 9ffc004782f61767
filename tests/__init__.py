"""The test suite; importing it selects the Hypothesis profile.

``ci`` when the ``CI`` environment variable is set, else ``dev``; the
``HYPOTHESIS_PROFILE`` variable names another (see doc/architecture.md, "Tests").
"""

import os

from hypothesis import HealthCheck, settings

#: Continuous integration: the same examples on every run, at most 100 per test
#: unless a test sets its own count, no timing limit on a shared machine, and a
#: failure prints the blob that reproduces it (``@reproduce_failure``).
settings.register_profile(
    "ci", derandomize=True, max_examples=100, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
#: Development: as deterministic as CI (a failure shows again on the next run).
settings.register_profile("dev", derandomize=True, max_examples=100, deadline=None)
#: Hunting for new failures: fresh random examples, ten times as many.
settings.register_profile("explore", derandomize=False, max_examples=1000, deadline=None,
                          print_blob=True)



def profile_name(environ):
    """The profile to load: ``HYPOTHESIS_PROFILE`` if set, else ``ci`` under CI."""
    if environ.get("HYPOTHESIS_PROFILE"):
        return environ["HYPOTHESIS_PROFILE"]
    under_ci = environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return "ci" if under_ci else "dev"


settings.load_profile(profile_name(os.environ))
