"""Stream the raw records of a training file: JSONL line by line, a JSON array element by element (ijson).

Nothing holds the whole file: a record is parsed, yielded and dropped. Each record is named for findings:
``train.jsonl:17`` (1-based line of a JSONL file) or ``train.json[16]`` (0-based index in a JSON array).
A file whose first non-blank character is ``[`` is a JSON array; anything else is JSONL (as the ``datasets``
JSON loader LLaMA-Factory uses reads a ``.json`` file holding one object per line).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import InputError

#: bytes read to find the first non-blank character
_PEEK = 1 << 16


def _first_char(path: Path) -> str:
    with path.open("rb") as f:
        while chunk := f.read(_PEEK):
            text = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")
            if text:
                return chr(text[0])
    return ""


def is_array(path: Path) -> bool:
    """The file holds one JSON array (its first non-blank character is ``[``)."""
    return _first_char(path) == "["


def iter_raw(path: Path) -> Iterator[tuple[str, Any]]:
    """``(name, parsed record)`` for every record of ``path``; InputError naming the record for invalid JSON,
    a record that is not an object, or a file with no records."""
    if not path.is_file():
        raise InputError(f"--data={str(path)!r}: no such file; pass a JSON or JSONL training file")
    first = _first_char(path)
    if not first:
        raise InputError(f"{path.name}: empty file, no records; pass a JSON array or JSONL file of training records")
    n = 0
    for name, record in (_array(path) if first == "[" else _lines(path)):
        if not isinstance(record, dict):
            raise InputError(f"{name}: a record must be a JSON object, got {type(record).__name__} "
                             f"{json.dumps(record, ensure_ascii=False)[:60]}; one object per record")
        n += 1
        yield name, record
    if n == 0:
        raise InputError(f"{path.name}: no records (an empty array or only blank lines); pass a file of training "
                         "records")


def _lines(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("r", encoding="utf-8-sig", errors="strict") as f:
        lineno = 0
        while True:
            name = f"{path.name}:{lineno + 1}"
            try:
                line = f.readline()
            except UnicodeDecodeError as exc:
                raise InputError(f"{name}: not UTF-8 ({exc.reason}); save the file as UTF-8") from None
            if not line:
                return
            lineno += 1
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{name}: invalid JSON ({exc.msg} at column {exc.colno}); each line must be one "
                                 "JSON object (JSONL)") from None
            yield name, record


def _array(path: Path) -> Iterator[tuple[str, Any]]:
    import ijson

    index = 0
    with path.open("rb") as f:
        items = ijson.items(f, "item", use_float=True)
        while True:
            name = f"{path.name}[{index}]"
            try:
                record = next(items)
            except StopIteration:
                return
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                raise InputError(f"{name}: invalid JSON in the array ({str(exc).strip() or type(exc).__name__}); "
                                 "fix the file or write it as JSONL") from None
            yield name, record
            index += 1
