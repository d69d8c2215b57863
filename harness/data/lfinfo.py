"""LLaMA-Factory's ``dataset_info.json``: which columns and role tags a sharegpt/alpaca file uses.

:class:`Mapping` mirrors ``llamafactory.data.parser.DatasetAttr`` — the same defaults, and ``columns`` /
``tags`` applied as ``DatasetAttr.join`` applies them (a key absent from ``columns`` becomes None, so an
alpaca entry with ``columns`` but no ``system`` reads no system). Without a dataset_info.json the harness
uses :data:`CONVENTIONAL`: LLaMA-Factory's defaults plus the ``system``, ``tools`` and ``history`` columns its
example datasets map (LLaMA-Factory itself cannot load a local file without a dataset_info.json entry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import InputError

_COLUMNS = ("prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios",
            "chosen", "rejected", "kto_tag")
_TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")


@dataclass(frozen=True)
class Mapping:
    """Column names and role tags, with ``DatasetAttr``'s defaults."""

    formatting: str = "alpaca"
    ranking: bool = False
    file_name: str | None = None
    system: str | None = None
    tools: str | None = None
    kto_tag: str | None = None
    prompt: str | None = "instruction"
    query: str | None = "input"
    response: str | None = "output"
    history: str | None = None
    messages: str | None = "conversations"
    role_tag: str | None = "from"
    content_tag: str | None = "value"
    user_tag: str | None = "human"
    assistant_tag: str | None = "gpt"
    observation_tag: str | None = "observation"
    function_tag: str | None = "function_call"
    system_tag: str | None = "system"


def conventional(formatting: str) -> Mapping:
    """The mapping used without a dataset_info.json entry."""
    return Mapping(formatting=formatting, system="system", tools="tools",
                   history="history" if formatting == "alpaca" else None)


def from_entry(entry: dict[str, Any], where: str) -> Mapping:
    """``DatasetAttr.join(entry)``: formatting, ranking, then every column / tag key (absent → None)."""
    if not isinstance(entry, dict):
        raise InputError(f"{where}: must be an object with file_name, formatting, columns, tags")
    fields: dict[str, Any] = {"formatting": entry.get("formatting", "alpaca"), "ranking": entry.get("ranking", False),
                              "file_name": entry.get("file_name")}
    for group, names in (("columns", _COLUMNS), ("tags", _TAGS)):
        if group in entry:
            if not isinstance(entry[group], dict):
                raise InputError(f"{where}.{group}={entry[group]!r}: must be an object mapping names to keys")
            fields.update({n: entry[group].get(n) for n in names if n in Mapping.__dataclass_fields__})
    if fields["formatting"] not in ("alpaca", "sharegpt"):
        raise InputError(f"{where}.formatting={fields['formatting']!r}: the harness reads alpaca and sharegpt "
                         "entries; pass --data-format for other files")
    return replace(Mapping(), **fields)


def _load(info: Path) -> dict[str, Any]:
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--data-info={str(info)!r}: no such file; pass LLaMA-Factory's dataset_info.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{info}: not valid JSON ({exc}); fix dataset_info.json") from None
    if not isinstance(data, dict):
        raise InputError(f"{info}: must be an object of dataset entries")
    return data


def find_entry(data_file: Path | None, info: Path | None, name: str | None) -> tuple[Mapping, str] | None:
    """The mapping for ``data_file``: the entry ``name`` of ``info`` (or of the data file's dir's
    dataset_info.json), else the entry whose ``file_name`` is the data file; None when there is no info file.
    Returns ``(mapping, entry name)``."""
    if info is None and data_file is not None and (data_file.parent / "dataset_info.json").is_file():
        info = data_file.parent / "dataset_info.json"
    if info is None:
        if name is not None:
            raise InputError(f"--data-name={name!r}: no dataset_info.json next to the data file; pass --data-info PATH")
        return None
    entries = _load(info)
    if name is not None:
        if name not in entries:
            raise InputError(f"--data-name={name!r}: not in {info}; use one of {', '.join(sorted(entries)[:20])}")
        return from_entry(entries[name], f"{info.name}[{name!r}]"), name
    if data_file is None:
        return None
    for key in sorted(entries):
        entry = entries[key]
        if isinstance(entry, dict) and isinstance(entry.get("file_name"), str):
            if (info.parent / entry["file_name"]).resolve() == data_file.resolve():
                return from_entry(entry, f"{info.name}[{key!r}]"), key
    return None
