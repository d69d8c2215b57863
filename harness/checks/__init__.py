"""The checks, one module per property family. ``CHECKS`` maps name → Check in report order."""

from __future__ import annotations

from harness.checks import bos, prompt, segments, special, stop
from harness.checks.base import Case, Check, Failure, Pair, Skip

CHECKS: dict[str, Check] = {c.name: c for mod in (prompt, stop, bos, special, segments) for c in mod.CHECKS}

__all__ = ["CHECKS", "Case", "Check", "Failure", "Pair", "Skip"]
