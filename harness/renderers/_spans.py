"""Where a trained answer lies in a whole rendering whose history later turns rewrote.

TRL's completion for answer ``k`` is ``D[len(P):]`` with ``P = render(messages[:k], add_generation_prompt=True)``
and ``D = render(messages[:k+1])``. That is where the answer lies in the whole rendering ``full`` only when
``full`` starts with both. Templates rewrite the history once later turns follow (Mistral v3 drops the
system prompt and moves the tool list to the last user turn, Qwen3 strips ``<think>`` from earlier answers)
or never repeat their generation prompt (DeepSeek-R1's opens ``<think>``), so the answer is found in two
steps, pure string work on renders the caller already has:

1. :func:`answer_start` — where the answer starts in ``D`` (its last message): after ``P`` when ``D``
   extends it; else after the history ``H = render(messages[:k])`` (when ``D`` rewrote ``H`` too: after the
   last place before the answer's own text where ``D`` repeats ``H``'s longest tail), plus the part of the
   generation prompt ``P[len(H):]`` that ``D`` repeats, cut at a token border of that prompt.
2. :func:`place` — ``D``'s answer ``R`` goes where ``full``'s text before it agrees longest with ``D``'s
   text before it (ties: the later place) and some of ``R`` follows, ending by ``hi`` (the next answer's
   start, so answers are placed last to first). Where the whole rendering keeps another form of ``R``
   (Qwen3's history form drops the ``<think>`` block), the answer ends where ``R``'s longest suffix found
   there, or its last own text and the template text after it, end.
"""

from __future__ import annotations

import os
from typing import Callable, Collection, Sequence

#: How many trailing characters of the text before an answer pick the candidate places for it.
_TAIL = 8


def common_suffix(a: str, b: str, end: int) -> int:
    """Length of the longest common suffix of ``a`` and ``b[:end]``."""
    lo, hi = 0, min(len(a), end)
    if b.startswith(a[len(a) - hi:], end - hi):
        return hi
    hi -= 1
    while lo < hi:  # "the last m characters agree" holds for every m up to the answer: bisect on m
        mid = (lo + hi + 1) // 2
        if b.startswith(a[len(a) - mid:], end - mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def longest_tail_in(a: str, text: str, lo: int, hi: int) -> int:
    """Length of the longest suffix of ``a`` that occurs in ``text[lo:hi]``."""
    low, high = 0, min(len(a), max(hi - lo, 0))
    while low < high:
        mid = (low + high + 1) // 2
        if text.find(a[len(a) - mid:], lo, hi) >= 0:
            low = mid
        else:
            high = mid - 1
    return low


def answer_start(done: str, prompt: str, history: str, contents: Sequence[str], limit: int | None = None,
                 gen_cuts: Callable[[str], Collection[int]] = lambda gen: (0, len(gen))) -> int:
    """Where the answer, the last message of ``done``, starts in ``done``.

    ``prompt``/``history`` are the renders of the messages before it with/without the generation prompt;
    ``contents`` the answer's content as the template may write it; ``limit`` a place in ``done`` at or after
    the answer's start and before its own text (where ``done`` and the same turn with an empty answer part);
    ``gen_cuts(gen)`` the offsets in the generation prompt where its tokens end (the answer cannot start
    inside one of them).
    """
    if done.startswith(prompt):
        return len(prompt)
    if done.startswith(history):
        h = len(history)
    else:  # done rewrote the history too: the history ends where done last repeats its tail before the answer
        cp = len(os.path.commonprefix([history, done]))
        bound = len(done) if limit is None else max(limit, cp)
        n = longest_tail_in(history, done, cp, bound)
        h = done.rfind(history[len(history) - n:], cp, bound) + n if n else cp
    gen = prompt[len(history):] if prompt.startswith(history) else ""
    g = len(os.path.commonprefix([gen, done[h:h + len(gen)]]))
    if not g or any(done.startswith(c, h + g) for c in contents):
        return h + g
    # the answer may begin like the rest of the generation prompt ("<think>…" or "<｜end▁of▁sentence｜>" after
    # "<｜Assistant｜>"): it starts where its content does, else at the last token border of that prompt
    starts = [p for p in range(h, h + g) if any(done.startswith(c, p) for c in contents)]
    return starts[-1] if starts else h + max(c for c in gen_cuts(gen) if c <= g)


def _answer_end(answer: str, texts: Sequence[str], full: str, j: int, hi: int) -> int | None:
    """Where ``answer`` (or the form of it the whole rendering keeps) that starts at ``full[j]`` ends.

    The answer itself; else the longest suffix of the answer found at ``j`` (Qwen3's history form drops
    ``<think>…</think>``) unless it is shorter than the answer's last own text (``texts``: non-blank content,
    tool-call names) and the template text after it: then where those are next found (that history form
    also keeps the content's leading newlines)."""
    n = len(answer)
    if j + n <= hi and full.startswith(answer, j):
        return j + n
    kept = _suffix_at(answer, full, j, hi)
    last = max(((at, at + len(t)) for t in texts if (at := answer.rfind(t)) >= 0), key=lambda x: x[1], default=None)
    if last is not None and kept < n - last[0]:
        at = full.find(answer[last[0]:], j, hi)
        if at >= 0:
            return at + n - last[0]
    return j + kept if kept else None


def _suffix_at(answer: str, full: str, j: int, hi: int) -> int:
    """How far past ``j`` the longest suffix of ``answer`` reaches that ``full[:hi]`` holds from ``j`` on, or
    from just after blanks at ``j`` (a history form may keep blank content a last answer strips); 0: none."""
    n = len(answer)
    if j + n <= hi and full.startswith(answer, j):
        return n
    if not n or j >= hi:
        return 0
    last, stop = answer[-1], j
    while stop < hi - 1 and full[stop].isspace():
        stop += 1
    best = best_len = 0  # reach past j of the longest suffix found, its length
    for p in range(j, stop + 1):
        first = full[p]
        i = answer.find(first, 1)
        while i >= 0 and n - i > best_len:
            end = p + n - i
            if end <= hi and full[end - 1] == last and full.startswith(answer[i:], p):
                best, best_len = end - j, n - i
                break
            i = answer.find(first, i + 1)
    return best


def place(context: str, answer: str, full: str, hi: int, texts: Sequence[str] = ()) -> tuple[int, int] | None:
    """``(start, end)`` of ``answer`` in ``full[:hi]``, ``context`` being the text before it where it was
    rendered and ``texts`` its own texts; None when no place before ``hi`` follows the end of ``context``
    with any of ``answer``.

    Where ``full`` repeats ``context`` (the served prompt is the training text's prefix) the answer starts
    right after it even when later turns rewrote the answer itself (GLM-4.5 and Gemma 4 empty the reasoning
    of answered turns, Gemma 4 writes the tool response into the model's turn): it ends where its rewritten
    form found after its own opening text ends, else where ``full`` stops repeating the answer."""
    c = len(context)
    if c + len(answer) <= hi and full.startswith(context) and full.startswith(answer, c):
        return c, c + len(answer)
    found = _search(context, answer, full, hi, texts)
    if c > hi or not full.startswith(context):
        return found
    own = len(os.path.commonprefix([answer, full[c:hi]]))
    if found is not None and c <= found[0] <= c + own:
        return c, found[1]
    return (c, c + own) if own else found


def _search(context: str, answer: str, full: str, hi: int, texts: Sequence[str]) -> tuple[int, int] | None:
    """The place of ``answer`` whose preceding text agrees longest with ``context``'s tail (ties: the later)."""
    if not context:
        end = _answer_end(answer, texts, full, 0, hi) if answer else 0
        return None if end is None else (0, end)
    for width in (min(len(context), _TAIL), 1):
        tail = context[len(context) - width:]
        best: tuple[int, int, int] | None = None  # (agreement, start, end)
        at = full.find(tail, 0, hi)
        while at >= 0:
            j = at + width
            end = _answer_end(answer, texts, full, j, hi) if answer else j
            if end is not None:
                score = (common_suffix(context, full, j), j, end)
                if best is None or score[:2] > best[:2]:
                    best = score
            at = full.find(tail, at + 1, hi)
        if best is not None:
            return best[1], best[2]
    return None

