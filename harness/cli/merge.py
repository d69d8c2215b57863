"""``harness merge``: combine the report.json files of ``harness check --shard i/n`` runs into one run's reports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from harness.cli.common import writable_dir
from harness.errors import InputError


def add_merge(sub) -> None:
    m = sub.add_parser("merge", help="combine the report.json of every `harness check --shard I/N` run into the "
                       "reports one run writes")
    m.add_argument("reports", nargs="+", type=Path, help="each shard's report.json")
    m.add_argument("--report-dir", type=Path, default=Path("reports"), help="where reports go (default reports/)")
    m.add_argument("--format", default="json,md",
                   help="report formats, a comma list of json, md, junit, html (default json,md)")


def merge(args: argparse.Namespace, out: Console) -> int:
    """Exit status as the single run's: 0 consistent, 1 inconsistent (warnings too when the shards ran
    ``--strict``), 2 when a target errored."""
    from harness.cli.check import parse_formats
    from harness.report import clear_reports, write_reports
    from harness.report.shard import merge_shards

    formats = parse_formats(args.format)
    reports = []
    for path in args.reports:
        try:
            reports.append((str(path), json.loads(path.read_text(encoding="utf-8"))))
        except OSError as exc:
            raise InputError(f"{str(path)!r}: cannot read it ({exc.strerror or type(exc).__name__}); pass each "
                             "shard's report.json") from None
        except ValueError as exc:
            raise InputError(f"{str(path)!r}: is not JSON ({exc}); pass each shard's report.json") from None
    report = merge_shards(reports)
    writable_dir(args.report_dir)
    clear_reports(args.report_dir)
    paths = write_reports(report, args.report_dir, formats)
    counts = [f"{t['train']} vs {t['deploy']}: {t['verdict']}" for t in report["targets"]]
    out.print(f"merged {len(reports)} shards: " + "; ".join(counts), markup=False)
    out.print("reports: " + ", ".join(str(p) for p in paths), markup=False)
    return report["harness"]["exit_status"]
