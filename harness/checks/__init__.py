"""The checks, one module per property family. ``CHECKS`` maps name → Check in report order."""

from __future__ import annotations

from harness.checks import bos, prompt, segments, special, stop
from harness.checks.base import Case, Check, Failure, NotApplicable, Pair, Skip

CHECKS: dict[str, Check] = {c.name: c for mod in (prompt, stop, bos, special, segments) for c in mod.CHECKS}
from harness.checks.stopwords import CHECKS as _STOP_WORDS; CHECKS.update((c.name, c) for c in _STOP_WORDS)  # noqa: E402, E702
from harness.checks.truncation import CHECKS as _TRUNCATION; CHECKS.update((c.name, c) for c in _TRUNCATION)  # noqa: E402, E702
from harness.checks.tools import CHECKS as _TOOLS; CHECKS.update((c.name, c) for c in _TOOLS)  # noqa: E402, E702
from harness.checks.reasoning import CHECKS as _REASONING; CHECKS.update((c.name, c) for c in _REASONING)  # noqa: E402, E702
from harness.checks.roundtrip import CHECKS as _ROUNDTRIP; CHECKS.update((c.name, c) for c in _ROUNDTRIP)  # noqa: E402, E702

__all__ = ["CHECKS", "Case", "Check", "Failure", "NotApplicable", "Pair", "Skip"]
