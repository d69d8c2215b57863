"""Markdown report for release notes: a verdict table, then each failing check with its TokenDiff and
minimal counterexample."""

from __future__ import annotations

import json
from typing import Any

from harness.report.build import cell_count, first_ids, records_line

_MARK = {"pass": "✅ pass", "fail": "❌ fail", "warn": "⚠️ warn", "skipped": "– skipped"}


def _cell(c: dict[str, Any]) -> str:
    mark = _MARK.get(c["verdict"], c["verdict"])
    count = cell_count(c)
    return f"{mark} {count}" if count else mark


def render_markdown(report: dict[str, Any]) -> str:
    h, model = report["harness"], report["model"]
    lines = [f"# Template consistency report — {model.get('name', '?')}", "",
             f"harness {h['version']}, seed {h['seed']}, {_swept(report)} per target. Cells: "
             "failing/checked conversations (pass: checked).", "",
             "| train | deploy | verdict | " + " | ".join(c["name"] for c in _first_checks(report)) + " |",
             "|---|---|---|" + "---|" * len(_first_checks(report))]
    for t in report["targets"]:
        cells = [_cell(c) for c in t["checks"]]
        lines.append(f"| `{t['train']}` | `{t['deploy']}` | **{t['verdict']}** | " + " | ".join(cells) + " |")
    lines += _data(report.get("data"))
    lines += _baseline(report.get("baseline"))
    for t in report["targets"]:
        if t.get("error"):
            lines += ["", f"## `{t['train']}` vs `{t['deploy']}`: error", "", t["error"]]
        skipped = [c for c in t["checks"] if c["verdict"] == "skipped"]
        if skipped:
            lines += ["", f"Skipped for `{t['train']}` vs `{t['deploy']}`: "
                      + "; ".join(f"{c['name']} ({c['explanation']})" for c in skipped) + "."]
        for c in t["checks"]:
            if c["verdict"] not in ("fail", "warn"):
                continue
            classes = c.get("classes") or []
            lines += ["", f"## {c['name']}: {c['verdict']} — `{t['train']}` vs `{t['deploy']}`", "",
                      f"{c['errors']} errors and {c['warnings']} warnings in {c['examples_run']} conversations, "
                      f"{len(classes)} divergence class(es):", ""]
            lines += ["| # | severity | cause | where | first ids (train → deploy) | conversations |",
                      "|---|---|---|---|---|---|"]
            for i, k in enumerate(classes, 1):
                lines.append(f"| {i} | {k['severity']} | `{k['cause']}` | {k['where']} | {_ids(k)} | {k['count']} |")
            for i, k in enumerate(classes, 1):
                lines += ["", f"### {i}. {k['severity']}: `{k['cause']}` at {k['where']} ({k['count']} conversations)",
                          "", f"**Cause:** {k['cause_summary']}.", "", f"**Why:** {k['explanation']}", ""]
                if k.get("diff_text"):
                    lines += ["```text", k["diff_text"], "```", ""]
                if k.get("tokens"):
                    lines += ["Tokens: `" + json.dumps(k["tokens"], ensure_ascii=False) + "`", ""]
                if k.get("records"):
                    lines += [f"**Records:** {records_line(k)}", ""]
                label = "Minimal counterexample:" if k.get("shrunk") else "Counterexample (as found, not shrunk):"
                if k.get("counterexample_source"):
                    label = f"Record `{k['counterexample_source']}` (as found):"
                lines += [label, "", "```json", json.dumps(k["counterexample"], indent=2, ensure_ascii=False), "```"]
    return "\n".join(lines) + "\n"


def _swept(report: dict[str, Any]) -> str:
    """``N conversations``, or with --data ``K records + N generated conversations``."""
    d, n = report.get("data"), report["harness"]["examples"]
    if not d:
        return f"{n} conversations"
    return f"{d['records'] - d['skipped']['count']} records + {n} generated conversations"


def _data(d: dict[str, Any] | None) -> list[str]:
    """``--data``: the file swept, its format, and the records the trainer skips."""
    if not d:
        return []
    skipped = d["skipped"]
    line = (f"Data: `{d['path']}` ({d['format']}), {d['records']} records swept first"
            f"{', then ' + str(d['generated']) + ' generated conversations' if d.get('generated') else ''}.")
    if skipped["count"]:
        line += (f" {skipped['count']} record(s) skipped as the trainer skips them: " + ", ".join(skipped["first"])
                 + (", …" if skipped["count"] > len(skipped["first"]) else "") + f" (first: {skipped['first_reason']}).")
    return ["", line]


def _baseline(b: dict[str, Any] | None) -> list[str]:
    """The ``--baseline`` comparison: its summary line, then new and fixed classes by identity."""
    if not b:
        return []
    from harness.baseline import SECTIONS, ClassId

    lines = ["", "## Baseline", "", f"Compared with `{b['path']}` (sha256 `{b['sha256'][:16]}…`): {b['summary']}."]
    for label, key in SECTIONS:
        if b[key]:
            lines += ["", f"{label}:", ""] + [f"- {ClassId.from_json(k).describe()}" for k in b[key]]
    return lines


def _ids(k: dict[str, Any]) -> str:
    return ("`" + first_ids(k) + "`").replace("|", "\\|")


def _first_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report["targets"][0]["checks"] if report["targets"] else []
