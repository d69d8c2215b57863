"""Piece-wise encoding helpers: cut a text at added tokens and words, encode the parts
(cached) and join them with shifted offsets. Only used where the load-time self-check proves it exact."""

from __future__ import annotations

import re
from typing import Any

#: Extra texts for the split-at-added-tokens self-check: added tokens glued to words, spaces, newlines.
_SPLIT_PROBES: tuple[str, ...] = (
    "<|im_start|>assistant\n\nHello<|im_end|>\n\n",
    " <|im_end|> x<|im_end|>\n <|endoftext|>",
    "<s> [INST]  hi  [/INST]  ok </s>  ",
    "<|eot_id|>\n\n<|start_header_id|> user<|end_header_id|>",
    "\u200b<|im_end|>\u0301 é<｜Assistant｜> \n",
)

#: Texts for the word-cut self-check: every kind of character before and after `` word`` cuts.
_CHUNK_PROBES: tuple[str, ...] = (
    "It rained. Then it stopped! Did it? Yes, it did; mostly: x y z. " * 3,
    "Sentence one is long enough to be cut into sentences. Sentence two follows it here. And three.",
    "numbers 123 abc 4567 d 89, e 1e10 f 3.14 g (h) [i] {j} <k> \"l\" 'm' `n` ~o @p #q $r %s ^t &u *v",
    "é a ü b ß c Ж d ض e 中 f 🙂 g \u0301 h \u00a0 i \u200b j \t k \n l \r\n m  n   o",
    "don't it's we're I've I'm you'll he'd DON'T IT'S x's y'T z'LL a 's b 'd",
    "e\u0301 a e\u0301\u0301 b \u1100\u1161 c \uac00\u11a8 d ㄱ e ﬁ f Ａ g ａ h",
    "x. A x! B x? C x, D x; E x: F x- G x/ H x\\ I x) J x] K x} L x> M x' N x\" O",
    "def f(x):\n    return x * 2  # doubled\n" * 2 + '{"name": "get_weather", "arguments": {"city": "Paris"}} ok',
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen",
    'x {"a": 1, "b": [2, 3], "c": {"d": "e f", "g": null, "h": true}} y\nZ\n\nw\r\nv \nu\t\nt  s',
    "it 's a ' b ` c - d + e = f ( g ) h [ i ] j 12 34 k 5 , l . m ! n ? o ... p -- q ** r // s",
    "user\nwhich assistant\n \nlist tool\n\n\nx\nDone. Next! Why? Yes. No.\nOk",
)

#: Cut points: before a single space between two printable ASCII non-spaces, and after a newline before an ASCII
#: letter. Byte-level BPE pre-tokenizers (GPT-2, Llama-3, Qwen, GLM, DeepSeek regexes) always start a pre-token
#: there, and BPE never merges across pre-tokens, so encoding the parts one by one gives the same ids and offsets
#: (self-checked). Each part is cached, so a text's new words are the only ones encoded.
_WORD_CUT = re.compile(r"(?<=[!-~]) (?=[!-~])|(?<=\n)(?=[A-Za-z])")


def _join(text: str, cut: "re.Pattern[str]", encode: Any) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Encode ``text`` part by part between ``cut`` points (each part through ``encode``) and join them."""
    ids: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for match in cut.finditer(text):
        at = match.start()
        if at > pos:
            _extend_shifted(ids, starts, ends, encode(text[pos:at]), pos)
            pos = at
    if pos == 0:  # no cut
        return encode(text)
    _extend_shifted(ids, starts, ends, encode(text[pos:]), pos)
    return tuple(ids), tuple(starts), tuple(ends)


def _extend_shifted(ids: list[int], starts: list[int], ends: list[int],
                    part: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], shift: int) -> None:
    """Append one encoded part (ids, token starts, token ends) whose offsets are relative to ``shift``."""
    ids.extend(part[0])
    starts.extend(map(shift.__add__, part[1]))
    ends.extend(map(shift.__add__, part[2]))


def _prepends_space(raw: Any) -> bool:
    """SentencePiece-style tokenizers (Metaspace / Prepend) treat the first piece specially: no splitting."""
    parts = [p.__getstate__() for p in (raw.pre_tokenizer, raw.normalizer) if p is not None]
    return any(k in bytes(p) for p in parts for k in (b'"Metaspace"', b'"Prepend"'))


def _byte_level(raw: Any) -> bool:
    """A byte-level BPE (GPT-2 / Llama-3 / Qwen style): regex pre-tokenizers that start a pre-token at `` word``
    after a non-space, and no normalizer but NFC (which never composes across a space)."""
    if type(raw.model).__name__ != "BPE" or raw.pre_tokenizer is None:
        return False
    pre = bytes(raw.pre_tokenizer.__getstate__())
    norm = bytes(raw.normalizer.__getstate__()) if raw.normalizer is not None else b'{"type":"NFC"}'
    return b'"ByteLevel"' in pre and norm in _SAFE_NORMALIZERS and b'"Metaspace"' not in pre


_SAFE_NORMALIZERS = (b'{"type":"NFC"}', b'{"type":"Sequence","normalizers":[]}')


def _added_token_splitter(raw: Any) -> "re.Pattern[str] | None":
    """A regex matching added tokens longest-first, when every added token splits plainly (no l/rstrip,
    no single_word); None otherwise."""
    tokens = list(raw.get_added_tokens_decoder().values())
    if not tokens or any(t.lstrip or t.rstrip or t.single_word for t in tokens):
        return None
    contents = sorted({t.content for t in tokens if t.content}, key=len, reverse=True)
    return re.compile("|".join(re.escape(c) for c in contents))

