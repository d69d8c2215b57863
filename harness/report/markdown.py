"""Markdown report for release notes: a verdict table, then each failing check with its TokenDiff and
minimal counterexample."""

from __future__ import annotations

import json
from typing import Any

_MARK = {"pass": "✅ pass", "fail": "❌ fail", "warn": "⚠️ warn", "skipped": "– skipped"}


def render_markdown(report: dict[str, Any]) -> str:
    h, model = report["harness"], report["model"]
    lines = [f"# Template consistency report — {model.get('name', '?')}", "",
             f"harness {h['version']}, seed {h['seed']}, {h['examples']} conversations per target.", "",
             "| train | deploy | verdict | " + " | ".join(c["name"] for c in _first_checks(report)) + " |",
             "|---|---|---|" + "---|" * len(_first_checks(report))]
    for t in report["targets"]:
        cells = [_MARK.get(c["verdict"], c["verdict"]) + (f" ({c['errors'] or c['warnings']})"
                 if c["verdict"] in ("fail", "warn") else "") for c in t["checks"]]
        lines.append(f"| `{t['train']}` | `{t['deploy']}` | **{t['verdict']}** | " + " | ".join(cells) + " |")
    for t in report["targets"]:
        if t.get("error"):
            lines += ["", f"## `{t['train']}` vs `{t['deploy']}`: error", "", t["error"]]
        for c in t["checks"]:
            if c["verdict"] not in ("fail", "warn"):
                continue
            lines += ["", f"## {c['name']}: {c['verdict']} — `{t['train']}` vs `{t['deploy']}`", "",
                      f"{c['errors']} errors and {c['warnings']} warnings in {c['examples_run']} conversations.", "",
                      f"**Why:** {c['explanation']}", ""]
            if c.get("diff_text"):
                lines += ["```text", c["diff_text"], "```", ""]
            if c.get("tokens"):
                lines += ["Tokens: `" + json.dumps(c["tokens"], ensure_ascii=False) + "`", ""]
            lines += ["Minimal counterexample:", "", "```json",
                      json.dumps(c["counterexample"], indent=2, ensure_ascii=False), "```"]
    return "\n".join(lines) + "\n"


def _first_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report["targets"][0]["checks"] if report["targets"] else []
