"""Run checks over many conversations for one train/deploy pair; keep counts and minimal counterexamples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal, Sequence

from harness.checks import CHECKS, Check, Failure, NotApplicable, Pair, Skip
from harness.conversation import Conversation
from harness.errors import ConversationError, RenderRejected
from harness.shrink import shrink

Verdict = Literal["pass", "fail", "warn", "skipped"]


#: How many divergence classes per check get a shrunk counterexample (the largest first).
MAX_SHRUNK_CLASSES = 5
#: How many record names a class lists (``records``); ``record_count`` counts them all.
MAX_RECORD_NAMES = 20


@dataclass(frozen=True)
class DivergenceClass:
    """Failures of one check that share a cause, a place (by role) and the first differing id pair.

    ``failure`` is the shrunk counterexample of the first conversation in the class (None past the cap);
    ``pair`` is that conversation's first differing ids, ``key_pair`` the class's own (ids that are not control
    tokens as ``"text"``), the same in every run that finds the class."""

    cause: str
    severity: str
    where: str
    pair: tuple[int | None, int | None]
    count: int
    failure: Failure | None = None
    example: Failure | None = field(default=None, repr=False, compare=False)  # as found, unshrunk
    key_pair: tuple[int | str | None, int | str | None] = (None, None)
    #: the record the counterexample was read from (``train.jsonl:17``; None when generated)
    source: str | None = None
    #: how many records (conversations read from a training file) fall in this class, and the first names
    record_count: int = 0
    records: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """How one check fared over a sweep: counts, and its divergence classes, largest error class first.

    ``verdict`` is ``skipped`` (with ``note`` saying why) whenever the check ran on no example."""

    name: str
    verdict: Verdict
    examples_run: int
    errors: int = 0
    warnings: int = 0
    rejected_train: int = 0
    classes: tuple[DivergenceClass, ...] = ()
    note: str = ""

    @property
    def failure(self) -> Failure | None:
        """The shrunk counterexample of the leading class (errors before warnings)."""
        return self.classes[0].failure if self.classes else None


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
class _Class:
    """One divergence class as it is counted: conversations, the first failure, and the records in it."""

    first: Failure
    source: str | None  # the record the first failure is (None: generated, or a variant the check built)
    count: int = 0
    record_count: int = 0
    records: list[str] = field(default_factory=list)  # the first MAX_RECORD_NAMES names

    def copy(self) -> "_Class":
        """A copy to count into (the first failure is shared, never changed)."""
        return _Class(self.first, self.source, self.count, self.record_count, list(self.records))

    def merge(self, other: "_Class") -> None:
        self.count += other.count
        self.record_count += other.record_count
        self.records = sorted(set(self.records) | set(other.records), key=_record_order)[:MAX_RECORD_NAMES]


@dataclass
class _Tally:
    check: Check
    run: int = 0
    errors: int = 0
    warnings: int = 0
    rejected: int = 0
    rejected_deploy: int = 0
    classes: dict[tuple, _Class] = field(default_factory=dict)
    skipped: str = ""
    not_applicable: int = 0  # conversations the check did not apply to (NotApplicable)
    first_not_applicable: str = ""

    @property
    def verdict(self) -> Verdict:
        """A check that ran: fail on any error, warn on warnings only, else pass."""
        return "fail" if self.errors else "warn" if self.warnings else "pass"

    def add(self, failure: Failure, control: frozenset[int], source: str | None = None) -> None:
        """Count ``failure`` in its class, and in the class of each later divergence it carries (``also``);
        ``source`` (the swept conversation's record name) is counted and listed per class."""
        if failure.severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        for key in class_keys(failure, control):
            entry = self.classes.get(key)
            if entry is None:
                # the counterexample is the record itself unless the check built a variant (plain texts, …)
                origin = source if source is not None and failure.conversation.source == source else None
                entry = self.classes[key] = _Class(failure.as_class(key[1], key[2]), origin)
            entry.count += 1
            if source is not None:
                entry.record_count += 1
                if len(entry.records) < MAX_RECORD_NAMES:
                    entry.records.append(source)


def class_keys(failure: Failure, control: frozenset[int]) -> list[tuple]:
    """The divergence classes ``failure`` belongs to: ``failure.keys()`` with ids that are not control tokens
    counted as one kind, ``text`` (which word of the data diverges first does not make a new class)."""
    out = []
    for severity, cause, where, pair in failure.keys():
        key = (severity, cause, where, tuple(i if i is None or i in control else "text" for i in pair))
        if key not in out:
            out.append(key)
    return out


def _same_class(key: tuple, want: tuple) -> bool:
    """``key`` is class ``want``; a later divergence (no id pair) may become the first one while shrinking."""
    return key[:3] == want[:3] and (want[3] == (None, None) or key[3] == want[3])


@dataclass
class Sweep:
    """What sweeping a run of conversations counted. Sweeps of contiguous runs merge in order
    (:func:`merge_sweeps`) into exactly what one sweep of the whole run counts."""

    tallies: list[_Tally]
    n: int = 0
    rejected: int = 0  # conversations the training template rejected (counted for every check)
    first_reason: str = ""


def run_pair(pair: Pair, conversations: Iterable[Conversation], *, checks: Sequence[str] | None = None,
             shrink_failures: bool = True, advance: Callable[[int], None] | None = None) -> TargetResult:
    """Sweep ``conversations`` through every check. Rejections by the training template are counted, not failed."""
    return finish(pair, sweep(pair, conversations, checks=checks, advance=advance), shrink_failures)


def sweep(pair: Pair, conversations: Iterable[Conversation], *, checks: Sequence[str] | None = None,
          advance: Callable[[int], None] | None = None) -> Sweep:
    """Run every check on every conversation and count: no shrinking (that is :func:`finish`'s)."""
    out = Sweep([_Tally(CHECKS[name]) for name in (checks or list(CHECKS))])
    tallies = out.tallies
    control = frozenset(pair.tokenizer.added_tokens.values())
    for conv in conversations:
        out.n += 1
        case = pair.case(conv)
        try:
            case.train  # noqa: B018 - render once, shared by every check
        except RenderRejected as exc:
            out.rejected += 1
            out.first_reason = out.first_reason or exc.reason
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
            except NotApplicable as why:
                t.not_applicable += 1
                t.first_not_applicable = t.first_not_applicable or str(why)
                continue
            except Skip as why:
                t.skipped = str(why)
                continue
            except RenderRejected as exc:
                if exc.side == "train":
                    t.rejected += 1
                else:
                    t.rejected_deploy += 1
                continue
            t.run += 1
            if failure is not None:
                t.add(failure, control, conv.source)
        if advance:
            advance(1)
    return out


def merge_sweeps(parts: Sequence[Sweep]) -> Sweep:
    """Sweeps of contiguous runs, in conversation order, as one sweep: counts add, each class keeps the first
    failure of the earliest run, classes keep the order they were first seen in, a check skipped in one run
    counts nothing after it (as a serial sweep stops running it)."""
    out = Sweep([_Tally(t.check) for t in parts[0].tallies])
    for part in parts:
        out.n += part.n
        out.rejected += part.rejected
        out.first_reason = out.first_reason or part.first_reason
        for mine, t in zip(out.tallies, part.tallies):
            if mine.skipped:  # a serial sweep still counts the training side's rejections for every check
                mine.rejected += part.rejected
                continue
            mine.run += t.run
            mine.errors += t.errors
            mine.warnings += t.warnings
            mine.rejected += t.rejected
            mine.rejected_deploy += t.rejected_deploy
            mine.not_applicable += t.not_applicable
            mine.first_not_applicable = mine.first_not_applicable or t.first_not_applicable
            mine.skipped = t.skipped
            for key, c in t.classes.items():
                have = mine.classes.get(key)
                if have is None:
                    mine.classes[key] = c.copy()
                    continue
                have.count += c.count
                have.record_count += c.record_count
                have.records = (have.records + c.records)[:MAX_RECORD_NAMES]
    return out


def finish(pair: Pair, sw: Sweep, shrink_failures: bool = True,
           shrunk: Callable[[Check, tuple, _Class], Failure] | None = None) -> TargetResult:
    """The result of a (merged) sweep: classes ranked, the largest shrunk (``shrunk(check, key, class)`` when given
    returns a class's counterexample instead of shrinking here)."""
    n = sw.n
    describe = {"train": pair.train.describe(), "deploy": pair.deploy.describe()}
    if n and sw.rejected == n:
        return TargetResult(pair.train.spec, pair.deploy.spec, "error", (), n, describe=describe,
                            error=all_rejected(pair.train.spec, n, sw.first_reason))
    results = tuple(_result(pair, t, shrink_failures, n, shrunk) for t in sw.tallies)
    verdict = "inconsistent" if any(r.verdict == "fail" for r in results) else "consistent"
    return TargetResult(pair.train.spec, pair.deploy.spec, verdict, results, n, describe=describe)


def all_rejected(train: str, n: int, first_reason: str) -> str:
    return (f"the training template {train!r} rejected all {n} conversations (first: {first_reason}); fix the "
            "template or generate shapes it accepts")


def ranked(classes: dict[tuple, _Class]) -> list[tuple[tuple, _Class]]:
    """Classes in report order (errors first, then by count, then as first seen), after each later divergence
    without an id pair joined the largest class of its kind. Works on any ``_Class.first`` payload."""
    classes = dict(classes)
    for key in [k for k in classes if k[3] == (None, None)]:  # a later divergence joins a class of its kind
        home = max((k for k in classes if k[:3] == key[:3] and k[3] != (None, None)),
                   key=lambda k: classes[k].count, default=None)
        if home is not None:
            classes[home] = classes[home].copy()
            classes[home].merge(classes.pop(key))
    order = {key: i for i, key in enumerate(classes)}
    return sorted(classes.items(), key=lambda kv: (kv[0][0] != "error", -kv[1].count, order[kv[0]]))


def _record_order(name: str) -> tuple[int, str]:
    """Records in file order: by the line or index number their name ends with."""
    digits = name.rstrip("]").rsplit(":", 1)[-1].rsplit("[", 1)[-1]
    return (int(digits) if digits.isdigit() else -1, name)


def _skip_reason(t: _Tally, n: int) -> str:
    if t.skipped:
        return t.skipped
    if n == 0:
        return "no conversations were generated"
    parts = []
    if t.rejected:
        parts.append(f"{t.rejected} rejected by the training template")
    if t.rejected_deploy:
        parts.append(f"{t.rejected_deploy} rejected by a render the check needs")
    if t.not_applicable:
        parts.append(f"{t.not_applicable} not applicable, e.g. {t.first_not_applicable}")
    return "ran on no conversation" + (f" ({', '.join(parts)})" if parts else "")


def _result(pair: Pair, t: _Tally, shrink_failures: bool, n: int,
            shrunk: Callable[[Check, tuple, _Class], Failure] | None = None) -> CheckResult:
    if t.run == 0:
        return CheckResult(t.check.name, "skipped", 0, rejected_train=t.rejected, note=_skip_reason(t, n))
    classes = []
    for rank, (key, c) in enumerate(ranked(t.classes)):
        # a record's counterexample is the record as found (re-checked in detail, never shrunk)
        small = None
        if rank < MAX_SHRUNK_CLASSES:
            small = shrunk(t.check, key, c) if shrunk is not None else \
                minimal(pair, t.check, c.first, shrink_failures and c.source is None, key)
        classes.append(divergence_class(key, c, small))
    return CheckResult(t.check.name, t.verdict, t.run, t.errors, t.warnings, t.rejected, tuple(classes))


def divergence_class(key: tuple, c: _Class, shrunk: Failure | None) -> DivergenceClass:
    """The reported class of counted class ``c`` under ``key``, with its counterexample ``shrunk`` (or None)."""
    severity, cause, where, ids = key
    shown = c.first.pair if ids != (None, None) else ids
    return DivergenceClass(cause, severity, where, shown, c.count, shrunk, c.first, ids, c.source, c.record_count,
                           tuple(c.records))


def minimal(pair: Pair, check: Check, failure: Failure, shrinking: bool = True, key: tuple | None = None) -> Failure:
    """Shrink ``failure.conversation`` while ``check`` still fails with the same severity; the check re-runs on
    detailed cases (``Pair.case(detailed=True)``), so the reported TokenDiff names every message."""

    def fails(conv: Conversation) -> Failure | None:
        try:
            got = check.run(pair.case(conv, detailed=True))
        except (Skip, RenderRejected, ConversationError):
            return None
        if got is None or not any(_same_class(key, want) for key in class_keys(got, control)):
            return None
        return got.as_class(want[1], want[2])

    control = frozenset(pair.tokenizer.added_tokens.values())
    want = key or class_keys(failure, control)[0]

    start = failure.conversation
    found = fails(start)
    if found is None:  # a variant built by the check (e.g. system) — keep it as found
        return failure
    if not shrinking:
        return found
    _, smallest = shrink(start, fails)
    return smallest
