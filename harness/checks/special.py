"""``special-tokens``: template control text spells this tokenizer's control tokens, the same way on both sides.

Template text is the text of a rendering outside the messages' own spans; it is read once per conversation
shape on the plain variant. Rules:

* **near-miss** (error, cause ``control-text``): template text ``W`` that nearly spells a control token ``T``
  of this tokenizer (an added token written with a delimiter ``< > [ ] | ｜``) without being it. *Nearly*:
  after normalising both (NFKC, so full-width ``｜`` is ``|``; ``▁`` read as ``_``; case-folded; whitespace
  removed) ``W == T``, or — for ``T`` of at least :data:`EDIT_MIN_CHARS` normalised characters — they differ
  by one delimiter ``< > | [ ]`` deleted or replaced by another (a changed letter is another word:
  ``<tool_calls>`` is no typo of ``<tool_call>``). ``W`` overlapping an exact added token is not a near-miss.
  Examples: ``<|im_end |>``, ``<|IM_END|>``, ``<|im_start|`` and ``<|im_end>`` on ChatML tokens;
  ``<｜end▁of▁sentence｜>`` for ``<|end_of_sentence|>``.
* **split** (error, cause ``control-text``): the same control-looking text (an added token, ``<|x|>``,
  ``<｜x｜>``, ``[X]``, ``</s>``) is one id on one side and several ids on the other — a token only one
  side's tokenizer has (LLaMA-Factory adds stop words as tokens), or a trainer encoding with
  ``split_special_tokens``.
* plain text both sides tokenise alike is fine, however much it looks like a marker (``[INST]`` on a
  tokenizer without that token, ``### Instruction:``, ``</s>`` written as text).
* **user control text** (warning, cause ``user-control-text``): a user/system/tool message holds
  special-token text that the deploy engine parses as a control token.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from harness.checks.base import Case, Check, Failure, deploy_rejected
from harness.errors import RenderRejected

if TYPE_CHECKING:
    from harness.renderers.base import Encoded
    from harness.tokenizer import Tokenizer

#: Text that looks like a control token: <|x|>, <｜x｜>, [INST], </s>.
CONTROL_LIKE = re.compile(r"<\|[^<>|\n]{1,48}\|>|<｜[^<>｜\n]{1,48}｜>|\[/?[A-Z][A-Z_]{1,30}\]|</?s>")
#: Characters that make an added token a control token (markup, not a word).
DELIMITERS = frozenset("<>[]|｜")
#: Delimiters whose one-character typo makes a near-miss (``/`` is left out: ``</x>`` is another marker).
EDIT_DELIMITERS = frozenset("<>|[]")
#: A control token this long (normalised) also has one-delimiter-edit near-misses (``<s`` is no typo of ``<s>``).
EDIT_MIN_CHARS = 6


def normalise(text: str) -> str:
    """The form near-misses are compared in: NFKC, ``▁`` as ``_``, case-folded, no whitespace."""
    return _normalise(text)[0]


def _normalise(text: str) -> tuple[str, list[int]]:
    """``normalise(text)`` and, for each of its characters, the index of the source character."""
    if text.isascii():
        where = [i for i, ch in enumerate(text) if not ch.isspace()]
        return "".join([text[i] for i in where]).lower(), where
    out: list[str] = []
    where = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch).replace("▁", "_").casefold():
            if not c.isspace():
                out.append(c)
                where.append(i)
    return "".join(out), where


def delimiter_edit(a: str, b: str) -> bool:
    """True when template text ``a`` is control token ``b`` with one delimiter (``< > | [ ]``) dropped or replaced
    by another delimiter (``<|im_start|``, ``<|im_end>``). A changed letter makes another word (``<tool_calls>``
    is no typo of ``<tool_call>``), and an added delimiter makes another model's marker (Gemma's ``<|tool_call>``
    is no typo of Qwen's ``<tool_call>``)."""
    if a == b or len(a) > len(b) or len(b) - len(a) > 1:
        return False
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] and a[i] in EDIT_DELIMITERS and b[i] in EDIT_DELIMITERS
    return a[i:] == b[i + 1:] and b[i] in EDIT_DELIMITERS


@dataclass(frozen=True)
class _Vocab:
    """Per tokenizer (plus tokens a training side added): control tokens and a matcher for marker-like text."""

    controls: tuple[tuple[str, str], ...]  # (token, normalised token), longest first
    exact: "re.Pattern[str] | None"  # every added token, longest first
    markers: "re.Pattern[str]"  # exact added tokens, then CONTROL_LIKE
    memo: dict = field(default_factory=dict, compare=False, hash=False, repr=False)  # template text → near-misses


@functools.lru_cache(maxsize=16)
def _vocab(tok: "Tokenizer", extra: tuple[str, ...]) -> _Vocab:
    tokens = sorted(set(tok.added_tokens) | set(extra), key=lambda t: (-len(t), t))
    controls = tuple((t, normalise(t)) for t in tokens if DELIMITERS & set(t) and len(normalise(t)) >= 3)
    alternation = "|".join(re.escape(t) for t in tokens if t)
    exact = re.compile(alternation) if alternation else None
    markers = re.compile(f"{alternation}|{CONTROL_LIKE.pattern}" if alternation else CONTROL_LIKE.pattern)
    return _Vocab(controls, exact, markers)


def _template_text(enc: "Encoded") -> list[tuple[int, int]]:
    """Char ranges of template text: everything outside message spans."""
    out, pos = [], 0
    for s in sorted(enc.spans, key=lambda s: s.char_start):
        if s.char_start > pos:
            out.append((pos, s.char_start))
        pos = max(pos, s.char_end)
    out.append((pos, len(enc.text or "")))
    return [(a, b) for a, b in out if b > a]


@dataclass(frozen=True)
class NearMiss:
    """Template text ``text`` at chars ``[start, end)`` that nearly spells the control token ``token``."""

    text: str
    token: str
    start: int
    end: int
    how: str  # "spelling" (equal once normalised) or "delimiter"


def near_misses(text: str, ranges: Iterable[tuple[int, int]], vocab: _Vocab) -> list[NearMiss]:
    """Near-misses of ``vocab``'s control tokens inside ``ranges`` of ``text`` (each range on its own), in order."""
    out: list[NearMiss] = []
    for a, b in ranges:
        segment = text[a:b]
        hits = vocab.memo.get(segment)
        if hits is None:
            if len(vocab.memo) > 20_000:
                vocab.memo.clear()
            hits = vocab.memo[segment] = _scan(segment, vocab)
        out.extend(NearMiss(m.text, m.token, m.start + a, m.end + a, m.how) for m in hits)
    return out


def _scan(text: str, vocab: _Vocab) -> tuple[NearMiss, ...]:
    """Near-misses in one stretch of template text (offsets into ``text``)."""
    if not vocab.controls:
        return ()
    norm, where = _normalise(text)
    exact = [m.span() for m in vocab.exact.finditer(text)] if vocab.exact else []
    found: list[tuple[tuple[bool, int, int, int, int], NearMiss]] = []

    def occurrences(needle: str) -> Iterable[int]:
        at = norm.find(needle)
        while at >= 0:
            yield at
            at = norm.find(needle, at + 1)

    def consider(p: int, q: int, token: str, nt: str, how: str) -> None:
        if p < 0 or q > len(norm) or q <= p:
            return
        a, b = where[p], where[q - 1] + 1
        word = text[a:b]
        if word == token or _cuts_word(text, a) or _cuts_word(text, b) or any(s < b and e > a for s, e in exact):
            return
        if how == "delimiter" and ((a > 0 and text[a - 1] in EDIT_DELIMITERS) or
                                   (b < len(text) and text[b] in EDIT_DELIMITERS)):
            return  # part of a longer marker (``|tool_call>`` inside Gemma's ``<|tool_call>``)
        nw = norm[p:q]
        shared = len(os.path.commonprefix([nt, nw])) + len(os.path.commonprefix([nt[::-1], nw[::-1]]))
        found.append(((how != "spelling", -shared, abs(len(nw) - len(nt)), b - a, a), NearMiss(word, token, a, b, how)))

    for token, nt in vocab.controls:
        n = len(nt)
        if nt in norm:
            for p in occurrences(nt):
                consider(p, p + n, token, nt, "spelling")
        if n < EDIT_MIN_CHARS:
            continue
        left, right = nt[:n // 2], nt[n // 2:]
        if left in norm:
            for p in occurrences(left):
                for size in (n - 1, n, n + 1):
                    if delimiter_edit(norm[p:p + size], nt):
                        consider(p, p + size, token, nt, "delimiter")
        if right in norm:
            for q in occurrences(right):
                end = q + len(right)
                for size in (n - 1, n, n + 1):
                    if end - size >= 0 and delimiter_edit(norm[end - size:end], nt):
                        consider(end - size, end, token, nt, "delimiter")
    kept: list[NearMiss] = []  # the best candidate of each place: a normalised spelling, then most shared chars
    for _, miss in sorted(found, key=lambda f: f[0]):
        if all(miss.end <= k.start or miss.start >= k.end for k in kept):
            kept.append(miss)
    return tuple(sorted(kept, key=lambda m: m.start))


def _cuts_word(text: str, at: int) -> bool:
    """True when ``at`` falls inside a word (``<tool_call`` of ``<tool_calls>`` is no near-miss)."""
    return 0 < at < len(text) and _wordy(text[at - 1]) and _wordy(text[at])


def _wordy(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _encodings(enc: "Encoded", ranges: list[tuple[int, int]], vocab: _Vocab) -> dict[str, tuple[int, ...]]:
    """Control-looking template text → the ids this side encoded its first occurrence to (from its offsets)."""
    text, offsets = enc.text or "", enc.offsets
    if offsets is None:
        return {}
    out: dict[str, tuple[int, ...]] = {}
    ends = [y for _, y in offsets]
    for a, b in ranges:
        for m in vocab.markers.finditer(text, a, b):
            word = m.group()
            if word not in out:
                out[word] = _ids_over(enc, ends, *m.span())
    return out


def _ids_over(enc: "Encoded", ends: list[int], start: int, end: int) -> tuple[int, ...]:
    """The ids whose characters overlap ``[start, end)`` (``ends``: each token's end offset, ascending)."""
    offsets, out = enc.offsets or (), []
    j = bisect.bisect_right(ends, start)
    while j < len(offsets) and offsets[j][0] < end:
        if offsets[j][1] > start:
            out.append(enc.ids[j])
        j += 1
    return tuple(out)


def _describe(case: Case, ids: tuple[int, ...]) -> str:
    return ", ".join(f"{i} {case.pair.tokenizer.piece(i)!r}" for i in ids)


def _near_miss_failure(case: Case, enc: "Encoded", side: str, miss: NearMiss) -> Failure:
    tok = case.pair.tokenizer
    ids = _ids_over(enc, [y for _, y in enc.offsets or ()], miss.start, miss.end) or tuple(tok.encode(miss.text))
    token_id = tok.added_tokens.get(miss.token)
    named = f"{miss.token!r}" + (f" (id {token_id})" if token_id is not None else "")
    how = "the same once case, whitespace, full-width bars and ▁ are ignored" if miss.how == "spelling" else \
        "one delimiter character dropped or changed"
    return Failure("special-tokens", "error",
                   f"the {side} template writes {miss.text!r}, a near-miss of this tokenizer's control token "
                   f"{named} ({how}): it encodes to {len(ids)} plain-text id(s) [{_describe(case, ids)}] where the "
                   f"control token belongs. Write {miss.token!r} exactly in the template",
                   case.conv, tokens={side: case.pieces(ids), "control_token": {"id": token_id, "piece": miss.token}},
                   cause="control-text")


def _split_failure(case: Case, word: str, train: tuple[int, ...], deploy: tuple[int, ...]) -> Failure:
    one, many = ("training", "deploy") if len(train) < len(deploy) else ("deploy", "training")
    one_ids, many_ids = (train, deploy) if len(train) < len(deploy) else (deploy, train)
    return Failure("special-tokens", "error",
                   f"the template text {word!r} is one control token on the {one} side (id {one_ids[0]}) but plain "
                   f"text on the {many} side ({len(many_ids)} ids: {_describe(case, many_ids)}): the model is served "
                   "other ids than it was trained on for the same marker. Either only one side's tokenizer has the "
                   "token (LLaMA-Factory adds its stop words as tokens: ship the training tokenizer with the model) "
                   "or one side encodes with split_special_tokens (use the same setting on both sides)",
                   case.conv, tokens={"training": case.pieces(train), "deploy": case.pieces(deploy)},
                   cause="control-text")


def _template_control_text(plain: Case) -> Failure | None:
    """Near-misses on either side, then control text encoded as one id on one side and several on the other."""
    if not plain.train.answers:  # nothing trained: no answer prompt to compare
        return None
    last = plain.train.answers[-1].message
    sides = (("training", plain.train), ("deploy", plain.prompt(last, detail=True)))
    vocab = _vocab(plain.pair.tokenizer, plain.pair.train.added_tokens)
    ranges = {side: _template_text(enc) for side, enc in sides}
    for side, enc in sides:
        misses = near_misses(enc.text or "", ranges[side], vocab)
        if misses:
            return _near_miss_failure(plain, enc, side, misses[0])
    train, deploy = (_encodings(enc, ranges[side], vocab) for side, enc in sides)
    tok = plain.pair.tokenizer
    added = set(tok.added_tokens.values())

    def control(ids: tuple[int, ...]) -> bool:  # one added-token id (ids past the vocab: a training-only token)
        return len(ids) == 1 and (ids[0] in added or ids[0] >= len(tok))

    for word, ids in train.items():
        other = deploy.get(word)
        if other and ids and control(ids) != control(other) and len(ids) != len(other):
            return _split_failure(plain, word, ids, other)
    return None


def special_tokens(case: Case) -> Failure | None:
    train = case.train
    if not train.answers:  # nothing trained: no answer prompt to compare
        return None
    last = train.answers[-1].message
    try:
        prompt = case.prompt(last)
    except RenderRejected as exc:
        return deploy_rejected(case, "special-tokens", last, exc)
    failure = case.by_shape("special-tokens", case.conv, _template_control_text)
    if failure:
        return failure
    specials = case.pair.tokenizer.special_tokens
    for i, m in enumerate(case.conv.messages[:last]):
        if m.role == "assistant" or not m.content:
            continue
        found = sorted(t for t in specials if t in m.content)
        if not found:
            continue
        ids = {case.pair.tokenizer.added_tokens[t] for t in found}
        prompt = case.prompt(last, detail=True)
        spans = [s for s in prompt.spans if s.message == i and s.part == "content"]
        if any(prompt.ids[j] in ids for s in spans for j in range(s.start, s.end)):
            return Failure("special-tokens", "warning",
                           f"messages[{i}].content contains {found[0]!r}, which the deploy engine parses as a control "
                           "token (prompts are tokenised with special-token parsing on): user text can end a turn or "
                           "forge a role", case.conv, message=i, cause="user-control-text")
    return None


CHECKS = (Check("special-tokens", special_tokens,
                "no near-miss of a control token in template text; control text is one id on both sides or on "
                "neither; user text is not parsed as control"),)
