"""A cache of verified tokenizers: once AutoTokenizer has been proven to agree with what the harness reads
from a model dir's files, later loads of the same files (same library versions) skip transformers.

Records live in ``$HARNESS_VERIFY_CACHE_DIR`` if set, else ``$HARNESS_CACHE_DIR/verified``, else
``$XDG_CACHE_HOME/template-harness/verified``, else ``~/.cache/template-harness/verified`` — never in the
model dir. A record is named by the sha256 of the tokenizer files, the transformers, tokenizers and
harness versions and :data:`FORMAT`; a missing, corrupt or unwritable record only means verifying again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.tokenizer.files import sha256_file

#: Bump when what a record vouches for changes (new values compared at verification).
FORMAT = 1

#: Files whose content can change what AutoTokenizer or tokenizer.json answer.
KEY_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
             "config.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt")


def cache_root() -> Path:
    """The harness's user cache dir (``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/template-harness``,
    else ``~/.cache/template-harness``)."""
    root = os.environ.get("HARNESS_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "template-harness"


def records_dir() -> Path:
    override = os.environ.get("HARNESS_VERIFY_CACHE_DIR")
    return Path(override).expanduser() if override else cache_root() / "verified"


@functools.lru_cache(maxsize=None)
def package_version(dist: str) -> str | None:
    """An installed distribution's version from its metadata (no import; each lookup scans sys.path once)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _versions() -> tuple[str, ...]:
    return tuple(f"{dist}={package_version(dist)}" for dist in ("transformers", "tokenizers", "template-harness"))


def record_key(model_dir: Path) -> str:
    """sha256 over :data:`KEY_FILES` (name and content, or absent), library versions and :data:`FORMAT`."""
    h = hashlib.sha256(f"format={FORMAT}\n".encode())
    for version in _versions():
        h.update(f"{version}\n".encode())
    for name in KEY_FILES:
        try:
            size, digest = (model_dir / name).stat().st_size, sha256_file(model_dir / name)
        except FileNotFoundError:
            h.update(f"{name} absent\n".encode())
            continue
        except OSError:
            h.update(f"{name} unreadable\n".encode())  # verification will then read it and fail loudly
            continue
        h.update(f"{name} {size} {digest}\n".encode())
    return h.hexdigest()


def read_record(key: str) -> dict[str, Any] | None:
    """The record stored under ``key``, or None when absent, unreadable, corrupt or for another key."""
    try:
        data = json.loads((records_dir() / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("hf_class"), str):
        return None
    return data


def write_record(key: str, record: dict[str, Any]) -> bool:
    """Store ``record`` under ``key`` atomically (temp file + rename); False when the dir is unwritable."""
    folder = records_dir()
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({**record, "key": key}, f, sort_keys=True)
        os.replace(tmp, folder / f"{key}.json")
        return True
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return False
