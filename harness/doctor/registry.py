"""Every lint, in report order, and the run that applies them (findings sorted, skips with their reason)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.doctor import adapter, eos, stops, template, vocab
from harness.doctor.base import SEVERITIES, Context, Finding, Lint, Skip

LINTS: tuple[Lint, ...] = (*eos.LINTS, *template.LINTS[:1], *vocab.LINTS, *adapter.LINTS, *template.LINTS[1:],
                           *stops.LINTS)
BY_ID: dict[str, Lint] = {lint.id: lint for lint in LINTS}


@dataclass(frozen=True)
class Result:
    """Findings (most severe first, then by lint id, file, text) and the lints that did not apply."""

    findings: tuple[Finding, ...]
    skipped: tuple[tuple[str, str], ...]

    @property
    def exit_code(self) -> int:
        return 1 if any(f.severity == "error" for f in self.findings) else 0

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}


def run(ctx: Context, lints: tuple[Lint, ...] = LINTS) -> Result:
    findings: list[Finding] = []
    skipped: list[tuple[str, str]] = []
    for lint in lints:
        try:
            findings.extend(lint.run(ctx))
        except Skip as exc:
            skipped.append((lint.id, str(exc)))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (order[f.severity], f.lint, f.file, f.finding))
    return Result(tuple(findings), tuple(skipped))
