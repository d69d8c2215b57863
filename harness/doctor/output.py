"""``harness doctor`` output: a rich table or JSON (sorted keys, no timestamps: same inputs, same bytes)."""

from __future__ import annotations

import io
import json
from typing import Any

from harness.doctor.base import Context
from harness.doctor.registry import BY_ID, LINTS, Result


def as_dict(ctx: Context, result: Result) -> dict[str, Any]:
    return {
        "model": ctx.shown,
        "train": ctx.train_spec,
        "deploy": list(ctx.deploy_specs),
        "exit_status": result.exit_code,
        "counts": result.counts(),
        "findings": [f.as_dict(BY_ID[f.lint].explanation) for f in result.findings],
        "skipped": [{"id": i, "reason": r} for i, r in result.skipped],
        "lints": [{"id": lint.id, "severity": lint.severity, "rule": lint.rule} for lint in LINTS],
    }


def to_json(ctx: Context, result: Result) -> str:
    return json.dumps(as_dict(ctx, result), sort_keys=True, indent=2, ensure_ascii=False, default=str) + "\n"


_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def to_table(ctx: Context, result: Result, *, width: int = 200) -> str:
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=width, highlight=False, soft_wrap=False, force_terminal=False)
    counts = result.counts()
    table = Table(title=f"harness doctor {ctx.shown}: {counts['error']} error(s), {counts['warning']} warning(s)",
                  show_lines=True)
    for column in ("id", "severity", "file", "finding", "fix"):
        table.add_column(column, overflow="fold")
    for f in result.findings:
        table.add_row(f.lint, f"[{_STYLE[f.severity]}]{f.severity}[/]", f.file, f.finding, f.fix)
    if result.findings:
        console.print(table)
    else:
        console.print(f"harness doctor {ctx.shown}: no findings ({len(LINTS) - len(result.skipped)} lints applied)")
    for lint_id, reason in result.skipped:
        console.print(f"skipped {lint_id}: {reason}", markup=False, style="dim")
    return buf.getvalue()
