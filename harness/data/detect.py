"""Which format a record is in, from its keys (the first record decides for the whole file).

Rules, first match wins: ``messages`` or TRL's ``prompt`` + ``completion`` → openai; ``conversations`` →
sharegpt; ``conversation`` → xtuner; ``src`` + ``tgt`` → paddlenlp; ``instruction`` or ``output`` → alpaca."""

from __future__ import annotations

from typing import Any

from harness.errors import InputError

FORMATS = ("openai", "sharegpt", "alpaca", "xtuner", "paddlenlp")

_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("messages",), "openai"), (("prompt", "completion"), "openai"), (("conversations",), "sharegpt"),
    (("conversation",), "xtuner"), (("src", "tgt"), "paddlenlp"), (("instruction",), "alpaca"),
    (("output",), "alpaca"))


def detect(name: str, record: dict[str, Any]) -> str:
    """The format of ``record``; InputError naming it when no rule matches."""
    for keys, fmt in _RULES:
        if all(k in record for k in keys):
            return fmt
    raise InputError(f"{name}: cannot tell the data format from keys {', '.join(sorted(record)) or '(none)'}; pass "
                     f"--data-format ({', '.join(FORMATS)}) or a dataset_info.json entry mapping its columns")
