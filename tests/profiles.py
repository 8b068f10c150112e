"""Hypothesis profiles: `ci` (the default: every property at its full count, what `scripts/test` and CI run)
and `dev` (a tenth of the examples, at least 10: the inner loop). Pick one with HYPOTHESIS_PROFILE=dev.

Properties that set their own count write `max_examples=examples(N)`, so the profile scales them too."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(PROFILE if PROFILE in ("ci", "dev") else "ci")


def examples(n: int) -> int:
    """N examples under `ci`, a tenth (at least 10, at most N) under `dev`."""
    return n if PROFILE != "dev" else min(n, max(10, n // 10))
