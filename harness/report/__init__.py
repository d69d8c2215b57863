"""Reports: one dict (JSON) built from run results; Markdown, HTML and JUnit XML render that dict.

Files are written atomically (a temp file in the same directory, then ``os.replace``), so a reader never
sees a half-written report; :func:`clear_reports` removes a previous run's reports when a run starts, so an
interrupted or failed run leaves none that could be mistaken for its own."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from harness.report.build import build_report, report_json
from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown

FORMATS = ("json", "md", "junit", "html")
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILES = {"json": "report.json", "md": "report.md", "junit": "report.junit.xml", "html": "report.html"}
_RENDER = {"json": report_json, "md": render_markdown, "junit": render_junit, "html": render_html}


def write_reports(report: dict[str, Any], directory: Path, formats: Sequence[str]) -> list[Path]:
    """Write ``report.<ext>`` for each format into ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        render = _RENDER.get(fmt)
        if render is not None:
            paths.append(write_atomic(directory / FILES[fmt], render(report)))
    return paths


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file and a rename: readers see the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it 0600; a report is as readable as any new file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def clear_reports(directory: Path) -> None:
    """Remove the reports a previous run left in ``directory`` (a run that stops early leaves none)."""
    for name in FILES.values():
        (directory / name).unlink(missing_ok=True)


__all__ = ["FILES", "FORMATS", "build_report", "clear_reports", "render_html", "render_junit", "render_markdown",
           "write_atomic", "write_reports"]
