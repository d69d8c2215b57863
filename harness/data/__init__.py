"""Real training files read as conversations: ``harness check --data FILE``.

:func:`open_data` detects the format from the first record (or takes ``--data-format`` / a dataset_info.json
entry), :meth:`DataSource.records` streams named :class:`Record` s — one module per format (``openai``,
``sharegpt``, ``alpaca``, ``xtuner``, ``paddle``), ``stream`` for JSON/JSONL — never the whole file in
memory. :func:`scan` reads the file once up front, so a bad record stops the run before any work."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.conversation import Conversation
from harness.data import alpaca, openai, paddle, sharegpt, xtuner
from harness.data.detect import FORMATS, detect
from harness.data.lfinfo import Mapping, conventional, find_entry
from harness.data.records import Record
from harness.data.stream import iter_raw
from harness.errors import InputError

#: how many record names a report lists per finding
MAX_NAMES = 20


@dataclass(frozen=True)
class DataSource:
    """A training file, its format and (sharegpt/alpaca) its column mapping."""

    path: Path
    format: str
    mapping: Mapping | None = None
    entry: str | None = None

    def records(self) -> Iterator[Record]:
        """Every record, in file order (a generator: one record in memory at a time)."""
        for name, raw in iter_raw(self.path):
            yield self._read(name, raw)

    def conversations(self) -> Iterator[Conversation]:
        """The conversations of the records the trainer keeps (skipped ones left out)."""
        for record in self.records():
            if record.conversation is not None:
                yield record.conversation

    def _read(self, name: str, raw: dict[str, Any]) -> Record:
        if self.format == "openai":
            return openai.read(name, raw)
        if self.format == "sharegpt":
            return sharegpt.read(name, raw, self.mapping or conventional("sharegpt"))
        if self.format == "alpaca":
            return alpaca.read(name, raw, self.mapping or conventional("alpaca"))
        if self.format == "xtuner":
            return xtuner.read(name, raw)
        return paddle.read(name, raw)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "dataset_info_entry": self.entry}


def open_data(path: Path, *, fmt: str | None = None, info: Path | None = None, name: str | None = None) -> DataSource:
    """The DataSource for ``path``: ``fmt`` when given, else a dataset_info.json entry's ``formatting``, else
    detected from the first record."""
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"--data-format={fmt!r}: unknown format; use one of {', '.join(FORMATS)}")
    found = find_entry(path, info, name)
    mapping, entry = found if found is not None else (None, None)
    if fmt is None and mapping is not None:
        fmt = mapping.formatting
    if fmt is None:
        first_name, first = next(iter_raw(path))
        fmt = detect(first_name, first)
    return DataSource(path, fmt, mapping if fmt in ("sharegpt", "alpaca") else None, entry)


@dataclass(frozen=True)
class Scan:
    """One pass over a file: how many records, how many the trainer skips (the first names, the first reason)."""

    records: int
    skipped: int
    skipped_names: tuple[str, ...]
    first_reason: str

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "skipped": {"count": self.skipped, "first": list(self.skipped_names),
                                                      "first_reason": self.first_reason or None}}


def scan(source: DataSource) -> Scan:
    """Read every record once; raise InputError at the first bad one; InputError too when every record is
    skipped (there is nothing the trainer would train on)."""
    n, names, reason, skipped = 0, [], "", 0
    for record in source.records():
        n += 1
        if record.conversation is None:
            skipped += 1
            reason = reason or f"{record.name}: {record.skipped}"
            if len(names) < MAX_NAMES:
                names.append(record.name)
    if skipped == n:
        raise InputError(f"{source.path.name}: all {n} records are skipped by the trainer (first: {reason}); fix the "
                         "records or the dataset_info.json mapping")
    return Scan(n, skipped, tuple(names), reason)


__all__ = ["FORMATS", "MAX_NAMES", "DataSource", "Record", "Scan", "open_data", "scan"]
