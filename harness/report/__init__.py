"""Reports: one dict (JSON) built from run results; Markdown and HTML render that dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from harness.report.json import build_report, write_json
from harness.report.markdown import render_markdown

FORMATS = ("json", "md")


def write_reports(report: dict[str, Any], directory: Path, formats: Sequence[str]) -> list[Path]:
    """Write ``report.<ext>`` for each format into ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        if fmt == "json":
            paths.append(write_json(report, directory / "report.json"))
        elif fmt == "md":
            path = directory / "report.md"
            path.write_text(render_markdown(report), encoding="utf-8")
            paths.append(path)
    return paths


__all__ = ["FORMATS", "build_report", "render_markdown", "write_reports"]
