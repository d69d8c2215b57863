"""The JSON report. Same run, same seed → byte-identical file: no timestamps, sorted keys, paths as given.
The CLI adds ``harness.inputs`` (what was checked, with sha256s) and ``harness.exit_status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from harness.runner import CheckResult, TargetResult


def _check(result: CheckResult) -> dict[str, Any]:
    f = result.failure
    out: dict[str, Any] = {
        "name": result.name,
        "verdict": result.verdict,
        "examples_run": result.examples_run,
        "errors": result.errors,
        "warnings": result.warnings,
        "rejected_by_train": result.rejected_train,
        "counterexample": None,
        "first_divergence": None,
        "explanation": result.note or None,
    }
    if f is not None:
        out.update(severity=f.severity, explanation=f.explanation, counterexample=f.conversation.to_openai(),
                   message_index=f.message)
        if f.diff is not None and f.diff.index is not None:
            out["first_divergence"] = f.diff.to_json()
            out["diff_text"] = f.diff.render()
        if f.tokens:
            out["tokens"] = f.tokens
    return out


def _target(t: TargetResult) -> dict[str, Any]:
    return {"train": t.train, "deploy": t.deploy, "verdict": t.verdict, "examples": t.examples,
            "error": t.error or None, "renderers": t.describe, "checks": [_check(c) for c in t.checks]}


def build_report(targets: Sequence[TargetResult], *, version: str, seed: int, examples: int,
                 model: dict[str, Any]) -> dict[str, Any]:
    return {"harness": {"version": version, "seed": seed, "examples": examples}, "model": model,
            "targets": [_target(t) for t in targets]}


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(report: dict[str, Any], path: Path) -> Path:
    from harness.report import write_atomic

    return write_atomic(path, report_json(report))
