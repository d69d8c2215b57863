"""The ``--data`` options of ``harness check``: declared, read and checked here so cli.py stays small."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from harness.errors import InputError

#: generated conversations per target when neither --examples nor --data is given
DEFAULT_EXAMPLES = 2000


def add_arguments(check: argparse.ArgumentParser) -> None:
    check.add_argument("--data", type=Path, help="sweep the records of this training file (JSON/JSONL) first")
    check.add_argument("--data-format", help="the --data file's format (default: detected): openai, sharegpt, "
                       "alpaca, xtuner, paddlenlp")
    check.add_argument("--data-info", type=Path, help="LLaMA-Factory dataset_info.json mapping the file's columns "
                       "(default: the one beside --data)")
    check.add_argument("--data-name", help="the dataset_info.json entry to use (default: the one whose file_name is "
                       "--data)")


def from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any] | None]:
    """``(DataSource or None, the report's data dict or None)``: the --data file opened and scanned (InputError at
    its first bad record). Sets ``args.examples`` to the generated conversations: as given, else
    ``DEFAULT_EXAMPLES`` without --data and none with it."""
    if args.data is None:
        if args.data_format or args.data_info or args.data_name:
            raise InputError("--data-format, --data-info and --data-name describe a --data file; pass --data FILE")
        args.examples = DEFAULT_EXAMPLES if args.examples is None else args.examples
        return None, None
    from harness.data import open_data, scan

    source = open_data(args.data, fmt=args.data_format, info=args.data_info, name=args.data_name)
    found = scan(source)
    args.examples = args.examples or 0
    return source, {**source.describe(), **found.to_json(), "generated": args.examples}


def with_records(source: Any, generated: Iterator[Any]) -> Iterator[Any]:
    """What a target sweeps: the --data records the trainer keeps first, then the generated conversations."""
    return generated if source is None else chain(source.conversations(), generated)


def kept(data: dict[str, Any] | None) -> int:
    """How many --data records are swept (read minus skipped; 0 without --data)."""
    return data["records"] - data["skipped"]["count"] if data else 0


def class_records_line(k: Any) -> str | None:
    """:func:`harness.report.build.records_line` for a runner ``DivergenceClass``."""
    from harness.causes import cause_summary
    from harness.report.build import records_line

    return records_line({"records": {"count": k.record_count, "first": list(k.records)},
                         "cause_summary": cause_summary(k.cause), "cause": k.cause, "severity": k.severity,
                         "where": k.where})
