"""Argument types and helpers every ``harness`` subcommand shares."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path
from typing import NoReturn

from harness.errors import InputError
from harness.limits import MAX_EXAMPLES


def seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed={text!r}: must be a non-negative integer, e.g. --seed 0") from None
    if value < 0 or value >= 2**63:
        raise argparse.ArgumentTypeError(f"seed={text!r}: must be between 0 and 2**63-1")
    return value


def examples(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"examples={text!r}: must be a positive integer, e.g. --examples 2000") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"examples={text!r}: must be at least 1")
    if value > MAX_EXAMPLES:
        raise argparse.ArgumentTypeError(f"examples={text!r}: at most {MAX_EXAMPLES:,} conversations per run "
                                         "(that is already hours of work); pass a smaller --examples")
    return value


class Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one ``harness: error:`` line like every other bad input."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"harness: error: {one_line(message)}; see `{self.prog} --help`\n")


def flag(value: str) -> bool | str:
    return {"on": True, "off": False}.get(value, value)


def one_line(message: object) -> str:
    """Error messages are one line on stderr (a multi-line library message is joined)."""
    return re.sub(r"\s*\n\s*", " ", str(message)).strip()


def writable_dir(path: Path) -> None:
    """Create ``--report-dir`` and prove it writable now, before any work (not after a long run)."""
    remedy = "pass --report-dir with a directory you can write"
    if path.exists() and not path.is_dir():
        raise InputError(f"--report-dir={str(path)!r}: is a file, not a directory; {remedy}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".harness-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            why = "a part of the path is a file, not a directory"
        raise InputError(f"--report-dir={str(path)!r}: cannot write there ({why}); {remedy}") from None




def jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"jobs={text!r}: must be a positive integer, e.g. --jobs 2") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"jobs={text!r}: must be at least 1 (1 runs in this process)")
    return value


def shard(text: str) -> tuple[int, int]:
    """``--shard i/n`` (1-based) → ``(i, n)``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise argparse.ArgumentTypeError(f"shard={text!r}: must be i/n with 1 <= i <= n, e.g. --shard 2/3")
    return int(m[1]), int(m[2])
