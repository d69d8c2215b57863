"""Greedy, deterministic shrinking of a failing conversation (for failures found by bulk sweeps).

Tries, until nothing changes: drop whole turns, drop the system message, drop tools, drop reasoning and
parallel calls (all but the first, then one at a time), then shorten each text (empty, one word, halves). A candidate is kept only if the check still fails
with the same severity. Inside pytest, hypothesis shrinks ``@given`` examples itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator, TypeVar

from harness.conversation import Conversation, Message
from harness.errors import ConversationError

T = TypeVar("T")


def _turns(conv: Conversation) -> list[tuple[int, int]]:
    """``[start, end)`` of each turn: a user message up to the next user message."""
    starts = [i for i, m in enumerate(conv.messages) if m.role == "user"]
    ends = starts[1:] + [len(conv.messages)]
    return list(zip(starts, ends))


def _text_variants(text: str) -> Iterator[str]:
    seen = {text}
    for cand in ("", "a", text.strip(), text[: len(text) // 2], text[len(text) // 2:], text[:-1], text[1:]):
        if cand not in seen:
            seen.add(cand)
            yield cand


def candidates(conv: Conversation) -> Iterator[Callable[[], Conversation]]:
    """Smaller variants of ``conv``, as thunks (building one may raise ConversationError)."""
    msgs = conv.messages
    for start, end in reversed(_turns(conv)):
        yield lambda start=start, end=end: Conversation(msgs[:start] + msgs[end:], conv.tools)
    for i, m in enumerate(msgs):  # drop a tool-call step: the calling message and the results after it
        if m.tool_calls:
            j = i + 1
            while j < len(msgs) and msgs[j].role == "tool":
                j += 1
            yield lambda i=i, j=j: Conversation(msgs[:i] + msgs[j:], conv.tools)
    for k in conv.assistant_indices[:-1]:  # end at an earlier answer
        yield lambda k=k: Conversation(msgs[:k + 1], conv.tools)
    if msgs and msgs[0].role == "system":
        yield lambda: Conversation(msgs[1:], conv.tools)
    if conv.tools:
        yield lambda: Conversation(msgs, ())
        for i in range(len(conv.tools)):
            yield lambda i=i: Conversation(msgs, conv.tools[:i] + conv.tools[i + 1:])
    for i, m in enumerate(msgs):
        if m.reasoning is not None:
            yield lambda i=i, m=m: Conversation(msgs[:i] + (replace(m, reasoning=None),) + msgs[i + 1:], conv.tools)
        if len(m.tool_calls) > 1:
            yield lambda i=i: _drop_call(conv, i)
            for j in reversed(range(len(m.tool_calls))) if len(m.tool_calls) > 2 else ():  # one call at a time
                yield lambda i=i, j=j: _drop_one_call(conv, i, j)
    for i, m in enumerate(msgs):
        for field in ("content", "reasoning"):
            value = getattr(m, field)
            if not value:
                continue
            for text in _text_variants(value):
                yield lambda i=i, m=m, f=field, t=text: Conversation(msgs[:i] + (replace(m, **{f: t}),) + msgs[i + 1:],
                                                                     conv.tools)


def _drop_call(conv: Conversation, i: int) -> Conversation:
    """Keep only the first of message i's parallel calls, and its tool result."""
    m = conv.messages[i]
    keep = m.tool_calls[0]
    dropped = {c.id for c in m.tool_calls[1:]}
    rest = tuple(x for x in conv.messages[i + 1:] if not (x.role == "tool" and x.tool_call_id in dropped and x.tool_call_id))
    return Conversation(conv.messages[:i] + (replace(m, tool_calls=(keep,)),) + rest, conv.tools)


def _drop_one_call(conv: Conversation, i: int, j: int) -> Conversation:
    """Drop call ``j`` of message i's parallel calls, and its tool result."""
    m = conv.messages[i]
    gone = m.tool_calls[j]
    rest = tuple(x for x in conv.messages[i + 1:] if not (x.role == "tool" and gone.id and x.tool_call_id == gone.id))
    calls = m.tool_calls[:j] + m.tool_calls[j + 1:]
    return Conversation(conv.messages[:i] + (replace(m, tool_calls=calls),) + rest, conv.tools)


def shrink(conv: Conversation, fails: Callable[[Conversation], T | None], *, budget: int = 400) -> tuple[Conversation, T]:
    """The smallest conversation found for which ``fails`` still returns something, and that result."""
    result = fails(conv)
    if result is None:
        raise ValueError("shrink() needs a conversation that fails")
    tries, improved = 0, True
    while improved and tries < budget:
        improved = False
        for cand in _valid(candidates(conv)):
            tries += 1
            if tries > budget:
                break
            got = fails(cand)
            if got is not None:
                conv, result, improved = cand, got, True
                break
    return conv, result


def _valid(cands: Iterator[Callable[[], Conversation]]) -> Iterator[Conversation]:
    for make in cands:
        try:
            cand = make()
        except ConversationError:
            continue
        if cand.messages and cand.messages[-1].role == "assistant":
            yield cand


__all__ = ["shrink", "candidates", "Message"]
