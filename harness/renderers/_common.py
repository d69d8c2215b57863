"""Pieces every renderer shares: the template context, message spans, char→token lookup."""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harness.errors import InputError
from harness.renderers.base import Span

if TYPE_CHECKING:
    from harness.conversation import Conversation
    from harness.tokenizer import Tokenizer


def special_tokens_context(tokenizer: "Tokenizer") -> dict[str, Any]:
    """``bos_token``, ``eos_token``… as ``apply_chat_template`` passes them (its ``special_tokens_map``)."""
    return {k: v for k, v in dict(tokenizer.special_tokens_map).items() if isinstance(v, (str, list))}


def text_stop_ids(tokenizer: "Tokenizer", texts: Sequence[str]) -> set[int]:
    """Ids of request stop strings that are exactly one token (others stop on text, not on an id)."""
    return {tid for text in texts if (tid := tokenizer.token_id(text)) is not None}


def read_template_file(path: Path, what: str) -> str:
    """Read a template file or raise an InputError that names it and the remedy."""
    if not path.is_file():
        raise InputError(f"{what}={str(path)!r}: no such file; pass the path of a .jinja chat template")
    check_file_size(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{what}={str(path)!r}: cannot read it as UTF-8 text ({exc}); pass a .jinja text file") from None


def check_file_size(path: Path, what: str) -> None:
    """Refuse a template-like input file past :data:`harness.limits.MAX_TEMPLATE_CHARS` bytes before reading it."""
    from harness.limits import MAX_TEMPLATE_CHARS, mib

    try:
        size = path.stat().st_size
    except OSError:
        return  # reading it will report the problem
    if size > MAX_TEMPLATE_CHARS:
        raise InputError(f"{what}={str(path)!r}: the file is {size:,} bytes, over the {mib(MAX_TEMPLATE_CHARS)} cap on "
                         "template files (real chat templates are < 50 KB); pass the template itself")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_at(offsets: Sequence[tuple[int, int]], ends: Sequence[int], char: int) -> int:
    """Index of the first token whose end is past ``char`` (the token that holds ``char``)."""
    return bisect_right(ends, char)


def locate_spans(text: str, conv: "Conversation", offsets: Sequence[tuple[int, int]],
                 ends: Sequence[int] | None = None) -> tuple[Span, ...]:
    """Find each message's own text (reasoning, content, tool-call names) in ``text``, in order.

    Parts a template rewrote (trimmed, re-serialised) are searched by their stripped text and skipped
    when absent, so spans mark where a message's words are, not the template around them.
    """
    ends = ends if ends is not None else [e for _, e in offsets]
    spans: list[Span] = []
    cursor = 0
    for i, m in enumerate(conv.messages):
        parts: list[tuple[str, str]] = []
        if m.reasoning:
            parts.append(("reasoning", m.reasoning))
        if m.content:
            parts.append(("content", m.content))
        for call in m.tool_calls:
            parts.append(("tool_calls", call.name))
        for part, value in parts:
            needle = value if value in text[cursor:] else value.strip()
            if not needle:
                continue
            at = text.find(needle, cursor)
            if at < 0:
                continue
            end = at + len(needle)
            start_tok = token_at(offsets, ends, at)
            end_tok = token_at(offsets, ends, end - 1) + 1
            spans.append(Span(i, part, start_tok, end_tok, at, end))
            cursor = end
    return tuple(spans)


_REASONING = re.compile(r"reasoning_content|\bthinking\b|<think>|\.Thinking\b|\.Think\b|enable_thinking")


def template_reads_reasoning(renderer: object) -> bool:
    """Does ``renderer``'s template read reasoning? Its source mentions ``reasoning_content``, ``thinking``,
    ``<think>`` or Ollama's ``.Thinking``/``.Think``, or LLaMA-Factory's template is a ``ReasoningTemplate``."""
    template = getattr(renderer, "template", None)
    if type(template).__name__ == "ReasoningTemplate":
        return True
    sources = [getattr(template, "source", None), getattr(getattr(renderer, "modelfile", None), "template", None)]
    return any(isinstance(s, str) and _REASONING.search(s) for s in sources)
