"""TokenDiff: where two id sequences part, shown as ids beside visible pieces.

Common ends are trimmed before ``difflib`` runs on the middle (10–30× faster than diffing whole lists), and
its longest-match search visits only the positions inside the range it searches (:class:`_Matcher`).

>>> d = TokenDiff.compute([1, 2, 3], [1, 2, 4], piece=str)
>>> d.index, d.headline()
(2, "At token 2 (?): 3 '3' != 4 '4'")
"""

from __future__ import annotations

import bisect
import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from harness.renderers.base import Encoded

_VISIBLE = str.maketrans({" ": "␠", "\n": "␤", "\t": "⇥", "\r": "␍"})


def visible(text: str) -> str:
    """Whitespace made visible: ␠ ␤ ⇥ ␍."""
    return text.translate(_VISIBLE)


def region(enc: Encoded | None, index: int, bounds: Sequence[int] | None = None) -> str:
    """Which message (and part) token ``index`` lies in, or the template text around it.

    ``bounds[i]`` is where message ``i``'s rendering ends (chars); without them only located
    message text can be named.
    """
    if enc is None:
        return "?"
    if index >= len(enc.ids):
        return "end of sequence"
    span = enc.span_at(index)
    if span is not None:
        return f"messages[{span.message}].{span.part}"
    if bounds and enc.offsets:
        char = enc.offsets[index][0]
        for i, end in enumerate(bounds):
            if char < end:
                return f"messages[{i}] (template text)"
        return "generation prompt" if enc.labels is None else "template text after the last message"
    before = [s for s in enc.spans if s.end <= index]
    if not before:
        return "template text before the first message"
    last = before[-1]
    return f"template text after messages[{last.message}].{last.part}"


def _marks(enc: Encoded | None, bounds: Sequence[int] | None) -> tuple[tuple[int, int, str], ...]:
    """``enc``'s message spans ``(start, end, "messages[i].part")`` and, given ``bounds`` (char end of each
    message's rendering) and offsets, each message's whole extent ``(start, end, "messages[i]")`` (template text
    included) and what follows the last message (``generation prompt`` or ``after the last message``)."""
    if enc is None:
        return ()
    out = [(s.start, s.end, f"messages[{s.message}].{s.part}") for s in enc.spans if s.end > s.start]
    if bounds and enc.offsets:
        chars = [start for start, _ in enc.offsets]
        lo = 0
        for i, end in enumerate(bounds):
            hi = bisect.bisect_left(chars, end, lo)
            if hi > lo:
                out.append((lo, hi, f"messages[{i}]"))
            lo = hi
        if lo < len(chars):
            out.append((lo, len(chars), "generation prompt" if enc.labels is None else "after the last message"))
    return tuple(sorted(out))


#: Seed length of the long-run search: every common run of at least ``2 * _SEED - 1`` ids holds a seed.
_SEED = 16


class _Matcher(difflib.SequenceMatcher):
    """``difflib.SequenceMatcher(None, a, b, autojunk=False)`` with the same blocks and opcodes, faster.

    With no junk, difflib's longest match is the longest common run, the first in ``a`` then in ``b``. Its
    search pairs every ``a`` position with every equal id in ``b`` (slow on token streams full of the same few
    ids). Here: every run of at least ``2 * q - 1`` ids contains a seed ``a[g:g + q]`` with ``g`` on a grid of
    step ``q`` (``_SEED``), so finding the seeds in ``b`` and extending each hit along its diagonal finds every
    such run; the longest (first in ``a``, then ``b``) is difflib's match. Ranges with no run that long fall back
    to difflib's own search over an index of the range alone (difflib indexes all of ``b`` and skips)."""

    def __init__(self, a: Sequence[int], b: Sequence[int]) -> None:
        self._sa, self._sb = "".join(map(chr, a)), "".join(map(chr, b))  # one character per id: C-speed compares
        super().__init__(None, a, b, autojunk=False)

    def _SequenceMatcher__chain_b(self) -> None:  # noqa: N802 - difflib's index of all of b: not used here
        self.bjunk, self.bpopular, self.b2j = set(), set(), {}

    def find_longest_match(self, alo: int = 0, ahi: int | None = None, blo: int = 0,
                           bhi: int | None = None) -> difflib.Match:
        ahi = len(self.a) if ahi is None else ahi
        bhi = len(self.b) if bhi is None else bhi
        if min(ahi - alo, bhi - blo) >= 2 * _SEED - 1:
            found = self._long_run(_SEED, alo, ahi, blo, bhi)
            if found is not None:
                return found
        return self._search(alo, ahi, blo, bhi)

    def _long_run(self, q: int, alo: int, ahi: int, blo: int, bhi: int) -> difflib.Match | None:
        """The longest common run in range when it has ``2 * q - 1`` ids or more, else None."""
        sa, sb = self._sa, self._sb
        best: tuple[int, int, int] | None = None  # (-size, i, j): the smallest wins
        reach: dict[int, int] = {}  # diagonal j - i -> end in a of the last run found on it
        for g in range(alo, ahi - q + 1, q):
            seed = sa[g:g + q]
            at = sb.find(seed, blo, bhi)
            while at >= 0:
                j, at = at, sb.find(seed, at + 1, bhi)
                d = j - g
                if reach.get(d, -1) > g:
                    continue  # inside a run already found on this diagonal
                back = _agree(sa, sb, g, j, min(g - alo, j - blo), -1)
                ahead = _agree(sa, sb, g, j, min(ahi - g, bhi - j), 1)
                reach[d] = g + ahead
                key = (-(back + ahead), g - back, j - back)
                if best is None or key < best:
                    best = key
        if best is None or -best[0] < 2 * q - 1:
            return None
        return difflib.Match(best[1], best[2], -best[0])

    def _search(self, alo: int, ahi: int, blo: int, bhi: int) -> difflib.Match:
        """difflib's search (no junk), visiting only the ``b`` positions inside ``[blo, bhi)``."""
        a, sb = self.a, self._sb
        b2j: dict[int, list[int]] = {}  # where a's ids occur in the range (difflib indexes all of b, then skips)
        for x in set(a[alo:ahi]):
            c, js = chr(x), []
            j = sb.find(c, blo, bhi)
            while j >= 0:
                js.append(j)
                j = sb.find(c, j + 1, bhi)
            if js:
                b2j[x] = js
        besti, bestj, bestsize = alo, blo, 0
        j2len: dict[int, int] = {}
        for i in range(alo, ahi):
            js = b2j.get(a[i])
            new: dict[int, int] = {}
            if js:
                get = j2len.get
                for j in js:
                    k = new[j] = get(j - 1, 0) + 1
                    if k > bestsize:
                        besti, bestj, bestsize = i - k + 1, j - k + 1, k
            j2len = new
        return difflib.Match(besti, bestj, bestsize)


def _agree(sa: str, sb: str, i: int, j: int, limit: int, step: int) -> int:
    """How many characters ``sa`` and ``sb`` agree on from ``i``/``j`` on (``step`` 1) or before them (``-1``),
    at most ``limit`` (bisection on the length: each probe is one C comparison)."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        same = sa[i:i + mid] == sb[j:j + mid] if step > 0 else sa[i - mid:i] == sb[j - mid:j]
        if same:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class TokenDiff:
    """The difference between training ids and deploy ids. ``index`` is None when they are equal."""

    train: tuple[int, ...]
    deploy: tuple[int, ...]
    index: int | None
    train_region: str = "?"
    deploy_region: str = "?"
    opcodes: tuple[tuple[str, int, int, int, int], ...] = ()
    pieces: dict[int, str] = field(default_factory=dict, compare=False, repr=False)
    #: per side (train, deploy): where each message lies, as ``(start, end, label)`` (see ``_marks``), for
    #: reports that show whole streams; tokens in no ``messages[i].part`` span are template text
    marks: tuple[tuple[tuple[int, int, str], ...], tuple[tuple[int, int, str], ...]] = \
        field(default=((), ()), compare=False, repr=False)

    @classmethod
    def compute(cls, train: Sequence[int], deploy: Sequence[int], *, piece: Callable[[int], str],
                train_enc: Encoded | None = None, deploy_enc: Encoded | None = None,
                train_bounds: Sequence[int] | None = None, deploy_bounds: Sequence[int] | None = None) -> "TokenDiff":
        train, deploy = tuple(train), tuple(deploy)
        n = min(len(train), len(deploy))
        index = next((i for i in range(n) if train[i] != deploy[i]), n)
        if index == n and len(train) == len(deploy):
            return cls(train, deploy, None)
        tail = 0
        while tail < n - index and train[-1 - tail] == deploy[-1 - tail]:
            tail += 1
        matcher = _Matcher(train[index:len(train) - tail], deploy[index:len(deploy) - tail])
        opcodes = tuple((tag, a + index, b + index, c + index, d + index)
                        for tag, a, b, c, d in matcher.get_opcodes() if tag != "equal")
        lo = max(0, index - 8)
        wanted = set(train[lo:index + 8]) | set(deploy[lo:index + 8])
        for _, a, b, c, d in opcodes[:8]:
            wanted |= set(train[a:min(b, a + 16)]) | set(deploy[c:min(d, c + 16)])
        pieces = {i: piece(i) for i in wanted}
        return cls(train, deploy, index, region(train_enc, index, train_bounds),
                   region(deploy_enc, index, deploy_bounds), opcodes, pieces,
                   (_marks(train_enc, train_bounds), _marks(deploy_enc, deploy_bounds)))

    @property
    def first_pair(self) -> tuple[int | None, int | None]:
        """(training id, deploy id) at the first divergence; None for a side that ended there."""
        i = self.index
        if i is None:
            return (None, None)
        return (self.train[i] if i < len(self.train) else None, self.deploy[i] if i < len(self.deploy) else None)

    def _tok(self, ids: tuple[int, ...], i: int) -> str:
        if i >= len(ids):
            return "<end>"
        return f"{ids[i]} {visible(self.pieces.get(ids[i], '?'))!r}"

    def headline(self) -> str:
        """``At token 37 (messages[3].content): 128009 '<|eot_id|>' != 198 '␤'``."""
        if self.index is None:
            return "identical"
        where = self.train_region if self.train_region == self.deploy_region else \
            f"train {self.train_region} / deploy {self.deploy_region}"
        return f"At token {self.index} ({where}): {self._tok(self.train, self.index)} != {self._tok(self.deploy, self.index)}"

    def side_tokens(self, side: str, context: int = 3, after: int = 6) -> list[dict[str, Any]]:
        """A window of ``{"index", "id", "piece"}`` around the divergence on one side."""
        ids = self.train if side == "train" else self.deploy
        if self.index is None:
            return []
        lo, hi = max(0, self.index - context), min(len(ids), self.index + after)
        return [{"index": i, "id": ids[i], "piece": self.pieces.get(ids[i], "?")} for i in range(lo, hi)]

    def render(self, context: int = 3) -> str:
        """Headline, a window of both sides, then the aligned opcodes (identical runs collapsed)."""
        if self.index is None:
            return "identical"
        lines = [self.headline()]
        for side in ("train", "deploy"):
            toks = self.side_tokens(side, context)
            shown = " ".join(("▶" if t["index"] == self.index else "") + f"{t['id']}:{visible(t['piece'])}" for t in toks)
            skipped = f"…{toks[0]['index']} identical… " if toks and toks[0]["index"] > 0 else ""
            lines.append(f"  {side:>6}: {skipped}{shown}")
        for tag, a, b, c, d in self.opcodes[:6]:
            left = " ".join(f"{t}:{visible(self.pieces.get(t, '?'))}" for t in self.train[a:min(b, a + 8)])
            right = " ".join(f"{t}:{visible(self.pieces.get(t, '?'))}" for t in self.deploy[c:min(d, c + 8)])
            lines.append(f"  {tag:>7} train[{a}:{b}] [{left}] -> deploy[{c}:{d}] [{right}]")
        if len(self.opcodes) > 6:
            lines.append(f"  … {len(self.opcodes) - 6} more differing runs")
        return "\n".join(lines)

    def window(self, side: str, before: int = 60, after: int = 40, cap: int = 600) -> tuple[int, int]:
        """Token range ``[lo, hi)`` of one side worth showing whole: ``before`` tokens before the first divergence
        through the end of the last differing run + ``after`` (at most ``cap`` tokens)."""
        ids = self.train if side == "train" else self.deploy
        if self.index is None:
            return (0, 0)
        lo = max(0, self.index - before)
        end = max([self.index + 1, *((b if side == "train" else d) for _, _, b, _, d in self.opcodes)])
        return lo, min(len(ids), end + after, lo + cap)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "message_path": self.train_region if self.train_region == self.deploy_region else
            {"train": self.train_region, "deploy": self.deploy_region},
            "train": self.side_tokens("train"),
            "deploy": self.side_tokens("deploy"),
            "train_length": len(self.train),
            "deploy_length": len(self.deploy),
        }
