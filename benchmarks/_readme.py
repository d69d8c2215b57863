"""Replace one generated block of README.md (between marker comments) with new text."""

from __future__ import annotations


def replace_block(readme: str, start: str, end: str, body: str, *, script: str) -> str:
    """``readme`` with the text between ``start`` and ``end`` replaced by ``body`` (exit naming ``script`` when
    the README does not hold exactly one such pair)."""
    if readme.count(start) != 1 or readme.count(end) != 1 or readme.index(start) > readme.index(end):
        raise SystemExit(f"{script}: README must hold one {start!r} … {end!r} pair")
    head, rest = readme.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{body}\n{end}{tail}"
