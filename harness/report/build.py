"""The JSON report. Same run, same seed → byte-identical file: no timestamps, sorted keys, paths as given.
The CLI adds ``harness.inputs`` (what was checked, with sha256s) and ``harness.exit_status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.causes import cause_summary
from harness.checks.base import Failure
from harness.diff import TokenDiff
from harness.runner import CheckResult, DivergenceClass, TargetResult


def _failure(f: Failure | None) -> dict[str, Any]:
    if f is None:
        return {}
    out: dict[str, Any] = {"severity": f.severity, "explanation": f.explanation,
                           "counterexample": f.conversation.to_openai(), "message_index": f.message}
    if f.diff is not None and f.diff.index is not None:
        out["first_divergence"] = f.diff.to_json()
        out["diff_text"] = f.diff.render()
    if f.tokens:
        out["tokens"] = f.tokens
    return out


def class_dict(c: DivergenceClass, piece: Callable[[int], str] | None) -> dict[str, Any]:
    ids = {side: (None if i is None else {"id": i, "piece": piece(i) if piece else None})
           for side, i in zip(("train", "deploy"), c.pair)}
    out = {"cause": c.cause, "cause_summary": cause_summary(c.cause), "severity": c.severity, "where": c.where,
           "count": c.count, "first_pair": ids, "class_pair": dict(zip(("train", "deploy"), c.key_pair)),
           "shrunk": c.failure is not None and c.source is None, "counterexample_source": c.source}
    if c.record_count:
        out["records"] = {"count": c.record_count, "first": list(c.records)}
    out.update(_failure(c.failure or c.example))
    diff = c.failure.diff if c.failure is not None else None
    if piece is not None and diff is not None and diff.index is not None:
        out["streams"] = streams(diff, piece)
    return out


def cell_count(check: dict[str, Any]) -> str:
    """A verdict cell's count: ``k/N`` failing/checked for fail and warn, ``N`` checked for pass, '' otherwise."""
    if check["verdict"] in ("fail", "warn"):
        return f"{check['errors'] or check['warnings']}/{check['examples_run']}"
    return str(check["examples_run"]) if check["verdict"] == "pass" else ""


def first_ids(k: dict[str, Any], arrow: str = "→") -> str:
    """A class's first differing ids, ``id "piece"`` per side (``end`` for a side that ended there)."""
    def one(t: dict[str, Any] | None) -> str:
        return "end" if t is None else f"{t['id']} {json.dumps(t['piece'], ensure_ascii=False)}"
    pair = k.get("first_pair") or {}
    return f"{one(pair.get('train'))} {arrow} {one(pair.get('deploy'))}"


def records_line(k: dict[str, Any]) -> str | None:
    """The records a class holds, in one line: ``"3 records: cause summary (boundary-merge, warning at
    assistant): train.jsonl:3, :17, …"`` (names after the first shortened to their line/index); None when
    the class holds no record."""
    rec = k.get("records")
    if not rec:
        return None
    names = rec["first"]
    shown = [names[0]] + [_short(n, names[0]) for n in names[1:]]
    more = ", …" if rec["count"] > len(names) else ""
    return (f"{rec['count']} record(s): {k['cause_summary']} ({k['cause']}, {k['severity']}"
            f"{' at ' + k['where'] if k.get('where') else ''}): " + ", ".join(shown) + more)


def _short(name: str, first: str) -> str:
    for sep in (":", "["):
        stem = first.rsplit(sep, 1)[0]
        if sep in first and name.startswith(stem + sep):
            return name[len(stem):]
    return name


def streams(diff: TokenDiff, piece: Callable[[int], str]) -> dict[str, Any]:
    """Both token streams of a shrunk class for the HTML report, windowed by :meth:`TokenDiff.window`: per side
    ``start`` (index of ``ids[0]``), ``ids`` and ``length``; ``pieces`` (id → text) for every id shown; ``marks``
    (message spans per side) and ``opcodes`` (differing runs) as ``[tag, train_lo, train_hi, deploy_lo,
    deploy_hi]``."""
    out: dict[str, Any] = {"index": diff.index, "opcodes": [list(op) for op in diff.opcodes], "marks": {}}
    shown: set[int] = set()
    for side, ids, marks in (("train", diff.train, diff.marks[0]), ("deploy", diff.deploy, diff.marks[1])):
        lo, hi = diff.window(side)
        out[side] = {"start": lo, "ids": list(ids[lo:hi]), "length": len(ids)}
        out["marks"][side] = [[a, b, label] for a, b, label in marks if a < hi and b > lo]
        shown.update(ids[lo:hi])
    out["pieces"] = {str(i): piece(i) for i in sorted(shown)}
    return out


#: The keys a failure adds to a class dict (and the leading class's to its check dict).
FAILURE_KEYS = ("severity", "explanation", "counterexample", "message_index", "first_divergence", "diff_text", "tokens")


def _check(result: CheckResult, piece: Callable[[int], str] | None = None) -> dict[str, Any]:
    return check_dict(result.name, result.verdict, result.examples_run, result.errors, result.warnings,
                      result.rejected_train, result.note, [class_dict(c, piece) for c in result.classes])


def check_dict(name: str, verdict: str, examples_run: int, errors: int, warnings: int, rejected: int, note: str,
               classes: list[dict[str, Any]]) -> dict[str, Any]:
    """A check's dict from its counts and its class dicts (:func:`class_dict`), leading class first."""
    out: dict[str, Any] = {
        "name": name,
        "verdict": verdict,
        "examples_run": examples_run,
        "errors": errors,
        "warnings": warnings,
        "rejected_by_train": rejected,
        "counterexample": None,
        "first_divergence": None,
        "explanation": note or None,
        "cause": None,
        "counterexample_source": None,
        "classes": classes,
    }
    if classes:  # the leading class, at the top level too (the report contract)
        lead = classes[0]
        out.update({k: lead[k] for k in FAILURE_KEYS if k in lead}, cause=lead["cause"],
                   counterexample_source=lead["counterexample_source"])
    return out


def _target(t: TargetResult, piece: Callable[[int], str] | None) -> dict[str, Any]:
    return {"train": t.train, "deploy": t.deploy, "verdict": t.verdict, "examples": t.examples,
            "error": t.error or None, "renderers": t.describe, "checks": [_check(c, piece) for c in t.checks]}


def build_report(targets: Sequence[TargetResult], *, version: str, seed: int, examples: int,
                 model: dict[str, Any], piece: Callable[[int], str] | None = None,
                 data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report dict; ``piece`` (the tokenizer's id → text) names the ids of each class's first pair;
    ``data`` (``--data``: the file, its format, record and skipped counts) becomes the ``data`` key."""
    out = {"harness": {"version": version, "seed": seed, "examples": examples}, "model": model,
           "targets": [_target(t, piece) for t in targets]}
    if data is not None:
        out["data"] = data
    return out


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(report: dict[str, Any], path: Path) -> Path:
    from harness.report import write_atomic

    return write_atomic(path, report_json(report))
