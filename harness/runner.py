"""Run checks over many conversations for one train/deploy pair; keep counts and minimal counterexamples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal, Sequence

from harness.checks import CHECKS, Check, Failure, Pair, Skip
from harness.conversation import Conversation
from harness.errors import ConversationError, RenderRejected
from harness.shrink import shrink

Verdict = Literal["pass", "fail", "warn", "skipped"]


@dataclass(frozen=True)
class CheckResult:
    """How one check fared over a sweep. ``failure`` is the shrunk counterexample of the first error
    (or, with no error, of the first warning)."""

    name: str
    verdict: Verdict
    examples_run: int
    errors: int = 0
    warnings: int = 0
    rejected_train: int = 0
    failure: Failure | None = None
    note: str = ""


@dataclass(frozen=True)
class TargetResult:
    train: str
    deploy: str
    verdict: Literal["consistent", "inconsistent", "error"]
    checks: tuple[CheckResult, ...] = ()
    examples: int = 0
    error: str = ""
    describe: dict = field(default_factory=dict)

    def failed(self, strict: bool = False) -> bool:
        bad = ("fail", "warn") if strict else ("fail",)
        return self.verdict == "error" or any(c.verdict in bad for c in self.checks)


@dataclass
class _Tally:
    check: Check
    run: int = 0
    errors: int = 0
    warnings: int = 0
    rejected: int = 0
    first_error: Failure | None = None
    first_warning: Failure | None = None
    skipped: str = ""


def run_pair(pair: Pair, conversations: Iterable[Conversation], *, checks: Sequence[str] | None = None,
             shrink_failures: bool = True, advance: Callable[[int], None] | None = None) -> TargetResult:
    """Sweep ``conversations`` through every check. Rejections by the training template are counted, not failed."""
    tallies = [_Tally(CHECKS[name]) for name in (checks or list(CHECKS))]
    n, rejected, first_reason = 0, 0, ""
    for conv in conversations:
        n += 1
        case = pair.case(conv)
        try:
            case.train  # noqa: B018 - render once, shared by every check
        except RenderRejected as exc:
            rejected += 1
            first_reason = first_reason or exc.reason
            for t in tallies:
                t.rejected += 1
            if advance:
                advance(1)
            continue
        for t in tallies:
            if t.skipped:
                continue
            try:
                failure = t.check.run(case)
            except Skip as why:
                t.skipped = str(why)
                continue
            except RenderRejected:
                t.rejected += 1
                continue
            t.run += 1
            if failure is None:
                continue
            if failure.severity == "error":
                t.errors += 1
                t.first_error = t.first_error or failure
            else:
                t.warnings += 1
                t.first_warning = t.first_warning or failure
        if advance:
            advance(1)
    describe = {"train": pair.train.describe(), "deploy": pair.deploy.describe()}
    if n and rejected == n:
        return TargetResult(pair.train.spec, pair.deploy.spec, "error", (), n, describe=describe,
                            error=f"the training template {pair.train.spec!r} rejected all {n} conversations "
                                  f"(first: {first_reason}); fix the template or generate shapes it accepts")
    results = tuple(_result(pair, t, shrink_failures) for t in tallies)
    verdict = "inconsistent" if any(r.verdict == "fail" for r in results) else "consistent"
    return TargetResult(pair.train.spec, pair.deploy.spec, verdict, results, n, describe=describe)


def _result(pair: Pair, t: _Tally, shrink_failures: bool) -> CheckResult:
    if t.skipped and t.run == 0:
        return CheckResult(t.check.name, "skipped", 0, rejected_train=t.rejected, note=t.skipped)
    failure = t.first_error or t.first_warning
    if failure is not None:
        failure = minimal(pair, t.check, failure, shrink_failures)
    verdict: Verdict = "fail" if t.errors else "warn" if t.warnings else "pass"
    return CheckResult(t.check.name, verdict, t.run, t.errors, t.warnings, t.rejected, failure)


def minimal(pair: Pair, check: Check, failure: Failure, shrinking: bool = True) -> Failure:
    """Shrink ``failure.conversation`` while ``check`` still fails with the same severity; re-run the check
    on the result with ``pair.detailed`` on, so its TokenDiff names every message."""
    pair.detailed = True
    try:
        return _minimal(pair, check, failure, shrinking)
    finally:
        pair.detailed = False


def _minimal(pair: Pair, check: Check, failure: Failure, shrinking: bool) -> Failure:

    def fails(conv: Conversation) -> Failure | None:
        try:
            got = check.run(pair.case(conv))
        except (Skip, RenderRejected, ConversationError):
            return None
        return got if got is not None and got.severity == failure.severity else None

    start = failure.conversation
    found = fails(start)
    if found is None:  # a variant built by the check (e.g. system) — keep it as found
        return failure
    if not shrinking:
        return found
    _, smallest = shrink(start, fails)
    return smallest
