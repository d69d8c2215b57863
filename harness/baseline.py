"""``--baseline``: compare this run's divergence classes with those of a stored ``report.json``.

A class's identity is (train spec, deploy spec, check, severity, cause, where, first ids pair as classes are
grouped: control-token ids as ids, any other id as ``text``) — never its count, its place in the list or its
example conversation. Classes of this run the baseline lacks are **new** (error classes fail the run; warning
classes only with ``--strict``); baseline classes this run lacks are **fixed**; the rest are **unchanged** and do
not fail the run. Only (target, check) pairs both reports ran (this run not skipping the check) are compared
for *fixed*; a class of a target or check the baseline never ran is new."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from harness.errors import InputError

if TYPE_CHECKING:
    from deepdiff import DeepDiff

#: Baseline files past this size are refused (a real report.json is well under a few MiB).
MAX_BASELINE_BYTES = 64 << 20
#: Run options whose values decide which classes a run can find.
_SAMPLING = ("seed", "examples", "tools", "reasoning", "checks")

PairId = int | str | None
#: How reports title the two lists of a baseline comparison: (heading, key in ``report["baseline"]``).
SECTIONS = (("New (not in the baseline)", "new"), ("Fixed (in the baseline, not found now)", "fixed"))


@dataclass(frozen=True)
class ClassId:
    """The identity of one divergence class across runs."""

    train: str
    deploy: str
    check: str
    severity: str
    cause: str
    where: str
    first_pair: tuple[PairId, PairId]

    def to_json(self) -> dict[str, Any]:
        return {"train": self.train, "deploy": self.deploy, "check": self.check, "severity": self.severity,
                "cause": self.cause, "where": self.where,
                "first_pair": {"train": self.first_pair[0], "deploy": self.first_pair[1]}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ClassId":
        pair = d.get("first_pair") or {}
        return cls(d["train"], d["deploy"], d["check"], d["severity"], d["cause"], d["where"] or "",
                   (pair.get("train"), pair.get("deploy")))

    def describe(self) -> str:
        where = f" at {self.where}" if self.where else ""
        ids = "" if self.first_pair == (None, None) else \
            " (first ids " + " -> ".join("end" if i is None else str(i) for i in self.first_pair) + ")"
        return f"{self.check}: {self.severity} {self.cause}{where}{ids} — {self.train} vs {self.deploy}"


def _pair_id(side: Any) -> PairId:
    return side.get("id") if isinstance(side, dict) else side


def class_id(target: dict[str, Any], check: dict[str, Any], k: dict[str, Any]) -> ClassId:
    """The identity of class ``k`` of ``check`` of ``target`` (report dicts)."""
    pair = k["class_pair"]
    return ClassId(str(target["train"]), str(target["deploy"]), str(check["name"]), str(k["severity"]),
                   str(k["cause"]), str(k.get("where") or ""), (_pair_id(pair.get("train")),
                                                                 _pair_id(pair.get("deploy"))))


def class_ids(report: dict[str, Any]) -> dict[str, dict[str, set[tuple]]]:
    """{``train vs deploy``: {check: {identity tuple, …}}} for every check that ran or was skipped."""
    tree: dict[str, dict[str, set[tuple]]] = {}
    for t in report["targets"]:
        checks = tree.setdefault(f"{t['train']} vs {t['deploy']}", {})
        for c in t.get("checks") or []:
            checks.setdefault(c["name"], set()).update(_astuple(class_id(t, c, k)) for k in c.get("classes") or [])
    return tree


def find_class(report: dict[str, Any], cid: ClassId) -> dict[str, Any] | None:
    """The class dict of ``report`` whose identity is ``cid`` (the first, if a report holds it twice)."""
    for t in report["targets"]:
        for c in t.get("checks") or []:
            for k in c.get("classes") or []:
                if class_id(t, c, k) == cid:
                    return k
    return None


def _astuple(c: ClassId) -> tuple:
    return (c.train, c.deploy, c.check, c.severity, c.cause, c.where, *c.first_pair)


@dataclass(frozen=True)
class Baseline:
    """A stored report, read and validated before a run."""

    path: str
    sha256: str
    report: dict[str, Any]

    @property
    def targets(self) -> list[tuple[str, str]]:
        return [(t["train"], t["deploy"]) for t in self.report["targets"]]


def load_baseline(path: Path) -> Baseline:
    """Read ``path`` as a harness ``report.json``; InputError naming the file and the fix when it is not one."""
    fix = "pass --baseline a report.json written by `harness check --format json`"
    name = f"--baseline={str(path)!r}"
    try:
        if path.is_file() and path.stat().st_size > MAX_BASELINE_BYTES:
            raise InputError(f"{name}: larger than {MAX_BASELINE_BYTES >> 20} MiB; {fix}")
        data = path.read_bytes()
    except OSError as exc:
        why = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror or type(exc).__name__
        raise InputError(f"{name}: cannot read it ({why}); {fix}") from None
    try:
        report = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{name}: not JSON ({exc}); {fix}") from None
    if not _is_report(report):
        raise InputError(f"{name}: JSON but not a harness report of this version (it needs targets[] with train, "
                         f"deploy and checks[].classes[] each with severity, cause and class_pair; older reports "
                         f"lack class_pair); {fix}")
    return Baseline(str(path), hashlib.sha256(data).hexdigest(), report)


def _is_report(report: Any) -> bool:
    if not isinstance(report, dict) or not isinstance(report.get("harness"), dict):
        return False
    targets = report.get("targets")
    if not isinstance(targets, list) or not targets:
        return False
    for t in targets:
        if not (isinstance(t, dict) and isinstance(t.get("train"), str) and isinstance(t.get("deploy"), str)
                and isinstance(t.get("checks"), list)):
            return False
        for c in t["checks"]:
            if not (isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("classes"), list)):
                return False
            for k in c["classes"]:
                if not (isinstance(k, dict) and all(isinstance(k.get(f), str) for f in ("severity", "cause"))
                        and isinstance(k.get("class_pair"), dict)):
                    return False
    return True


def check_overlap(baseline: Baseline, train: str, deploys: Sequence[str]) -> None:
    """InputError unless the baseline has a target (train spec, deploy spec) this run will check."""
    ours = {(train, d) for d in deploys}
    if ours & set(baseline.targets):
        return
    theirs = "; ".join(f"{t} vs {d}" for t, d in baseline.targets)
    raise InputError(f"--baseline={baseline.path!r}: its targets ({theirs}) do not overlap this run's "
                     f"({'; '.join(f'{train} vs {d}' for d in deploys)}); regenerate the baseline with this "
                     f"run's --train/--deploy specs (run with --format json and keep report.json)")


@dataclass(frozen=True)
class Comparison:
    """This run against a baseline: new, fixed and unchanged class identities, and what differs in sampling."""

    new: tuple[ClassId, ...]
    fixed: tuple[ClassId, ...]
    unchanged: int
    sampling: tuple[tuple[str, Any, Any], ...] = ()  # (option, baseline value, this run's value)
    missing_targets: tuple[str, ...] = ()  # baseline targets this run did not check

    def failed(self, strict: bool) -> bool:
        """New error classes fail the run; new warning classes only with ``strict``."""
        return any(c.severity == "error" or strict for c in self.new)


def compare(baseline: Baseline, report: dict[str, Any]) -> Comparison:
    """Classify this run's classes against the baseline's (see the module docstring for the identity rule)."""
    from deepdiff import DeepDiff  # ~1 s of imports: only for runs with --baseline
    now, old = class_ids(report), class_ids(baseline.report)
    ran = {(f"{t['train']} vs {t['deploy']}", c["name"]) for t in report["targets"] for c in t.get("checks") or []
           if c.get("verdict") != "skipped"}
    # fixed only where both ran the same (target, check); a check or target the baseline never ran is all new
    old = {t: {c: v for c, v in checks.items() if (t, c) in ran} for t, checks in old.items() if t in now}
    diff = DeepDiff(old, now, ignore_order=True, view="tree")
    new = _leaves(diff, ("set_item_added", "dictionary_item_added"), "t2")
    fixed = _leaves(diff, ("set_item_removed", "dictionary_item_removed"), "t1")
    total = sum(len(v) for checks in now.values() for v in checks.values())
    return Comparison(_sorted(new), _sorted(fixed), total - len(new), _sampling(baseline.report, report),
                      tuple(sorted({f"{t} vs {d}" for t, d in baseline.targets} - set(now))))


def _sorted(ids: set[ClassId]) -> tuple[ClassId, ...]:
    return tuple(sorted(ids, key=lambda c: json.dumps(_astuple(c))))


def _leaves(diff: DeepDiff, kinds: Iterable[str], side: str) -> set[ClassId]:
    out: set[ClassId] = set()
    for kind in kinds:
        for item in diff.get(kind, ()):
            stack = [getattr(item, side)]
            while stack:
                value = stack.pop()
                if isinstance(value, dict):
                    stack.extend(value.values())
                elif isinstance(value, (set, frozenset, list)):
                    stack.extend(value)
                elif isinstance(value, tuple):
                    out.add(ClassId(*value[:6], (value[6], value[7])))
    return out


def _sampling(old: dict[str, Any], now: dict[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    a, b = old.get("harness", {}), now.get("harness", {})
    ai, bi = a.get("inputs") or {}, b.get("inputs") or {}
    out = []
    for key in _SAMPLING:  # an option the baseline does not record (an older or a plugin report) is not compared
        if (key in ai or key in a) and (key in bi or key in b):
            x, y = ai.get(key, a.get(key)), bi.get(key, b.get(key))
            if x != y:
                out.append((key, x, y))
    return tuple(out)


def summary_line(c: Comparison) -> str:
    """``baseline: 0 new, 2 fixed, 3 unchanged`` plus what makes the comparison weaker, when anything does."""
    line = f"baseline: {len(c.new)} new, {len(c.fixed)} fixed, {c.unchanged} unchanged"
    if c.sampling:
        diffs = ", ".join(f"{k} {x!r} → {y!r}" for k, x, y in c.sampling)
        line += (f" (the baseline was made with other sampling: {diffs}; the classes found depend on them, so "
                 "regenerate the baseline with this run's options for a like-for-like comparison)")
    if c.missing_targets:
        line += f"; not checked in this run: {'; '.join(c.missing_targets)}"
    return line


def to_json(baseline: Baseline, c: Comparison) -> dict[str, Any]:
    """The ``baseline`` section of report.json."""
    return {"path": baseline.path, "sha256": baseline.sha256, "new": [k.to_json() for k in c.new],
            "fixed": [k.to_json() for k in c.fixed], "unchanged": c.unchanged, "summary": summary_line(c),
            "sampling_differs": [{"option": k, "baseline": x, "run": y} for k, x, y in c.sampling],
            "targets_not_checked": list(c.missing_targets)}
