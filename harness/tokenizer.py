"""Load a Hugging Face tokenizer from a model dir, offline, and prove its ids are trustworthy.

``load_tokenizer(dir)`` loads ``transformers.AutoTokenizer`` (what vLLM/TRL use) *and* the raw
``tokenizers.Tokenizer`` from ``tokenizer.json``, then checks both give the same ids on a probe corpus
(transformers 5.6–5.21 silently dropped spaces, newlines, CJK and emoji for DeepSeek tokenizers).
The model dir is only read, never written.

>>> tok = load_tokenizer("path/to/model")          # doctest: +SKIP
>>> tok.encode("Hello"), tok.piece(tok.eos_id)     # doctest: +SKIP
([9707], '<|im_end|>')
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.errors import TokenizerError

__all__ = [
    "PROBES", "Tokenizer", "check_ids_agree", "clear_tokenizer_cache", "load_tokenizer", "read_chat_template",
    "read_chat_templates",
]

#: Texts on which AutoTokenizer ids must equal raw ``tokenizers`` ids (plus each model's special tokens).
PROBES: tuple[str, ...] = (
    "Hello, world!",
    "two  spaces and   three",
    "   leading spaces",
    "trailing spaces   ",
    " ",
    "\nleading newline",
    "trailing newline\n",
    "\n\n",
    "a\n\nb\n\n\nc",
    "\ttab\t and \t\tmixed \t",
    "\r\nwindows\r\n",
    "你好世界",
    "中文 English 混合，标点。",
    "🙂👍🏽",
    "emoji🙂inside👨‍👩‍👧 text",
    "def f(x):\n    return x * 2  # doubled\n",
    '{"name": "get_weather", "arguments": {"city": "Paris", "n": 3}}',
    "12345 678.9 1e10 2024-07-26",
    "ÿ€ é ß Ж ض \u00a0nbsp \u200bzwsp",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>\n</think>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "[gMASK]<sop><|user|>\nhi<|assistant|>",
    "<s>[INST] hi [/INST] ok</s>",
)

_ENCODE_CACHE_SIZE = 4096  # ~550-id renderings: tens of MB at most
_DEEPSEEK_BUG = (
    "This is the known transformers 5.6–5.21 DeepSeek bug (spaces, newlines, CJK and emoji vanish); "
    "remedy: pip install 'transformers>=5.22'"
)


class Tokenizer:
    """One model's tokenizer: ``hf`` (AutoTokenizer) for engine behaviour, ``raw`` for fast ids.

    ``encode(text)`` equals ``hf(text, add_special_tokens=False)["input_ids"]`` (checked at load on
    :data:`PROBES`) but goes through ``raw`` and a bounded memo, so repeated segments cost a dict lookup.
    """

    def __init__(self, name: str, model_dir: Path, hf: Any, raw: Any) -> None:
        self.name = name
        self.model_dir = model_dir
        self.hf = hf
        self.raw = raw
        config = _read_json(model_dir / "tokenizer_config.json", required=False) or {}
        self.tokenizer_config: Mapping[str, Any] = MappingProxyType(config)
        #: Every named chat template, as transformers loads them (``default``, ``tool_use``, ``rag``…).
        self.chat_templates: Mapping[str, str] = MappingProxyType(_chat_templates(model_dir, config))
        #: The one named ``default`` (None when there is none): what a request without tools renders.
        self.chat_template: str | None = self.chat_templates.get("default")
        self.bos_token: str | None = hf.bos_token
        self.bos_id: int | None = hf.bos_token_id if hf.bos_token is not None else None
        self.eos_token: str | None = hf.eos_token
        self.eos_id: int | None = hf.eos_token_id if hf.eos_token is not None else None
        self.pad_token: str | None = hf.pad_token
        gen = _read_json(model_dir / "generation_config.json", required=False) or {}
        self.generation_config: Mapping[str, Any] = MappingProxyType(gen)
        self.generation_eos_ids: tuple[int, ...] = _as_ids(gen.get("eos_token_id"))
        decoder = raw.get_added_tokens_decoder()
        self.added_tokens: Mapping[str, int] = MappingProxyType({t.content: i for i, t in sorted(decoder.items())})
        self.special_tokens: frozenset[str] = frozenset(t.content for t in decoder.values() if t.special)
        bare = list(hf("x", add_special_tokens=False)["input_ids"])
        full = list(hf("x", add_special_tokens=True)["input_ids"])
        start = next((i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare), 0)
        #: ids ``hf(text, add_special_tokens=True)`` puts before / after the text (GLM-4: [gMASK] <sop>).
        self.special_prefix_ids: tuple[int, ...] = tuple(full[:start])
        self.special_suffix_ids: tuple[int, ...] = tuple(full[start + len(bare) :])
        self.adds_bos: bool = self.bos_id is not None and self.special_prefix_ids[:1] == (self.bos_id,)
        self._encode_raw = functools.lru_cache(maxsize=_ENCODE_CACHE_SIZE)(self._encode_uncached)
        self._segment = functools.lru_cache(maxsize=1 << 16)(self._segment_uncached)
        self._chunk = functools.lru_cache(maxsize=1 << 16)(self._chunk_uncached)
        self._word = functools.lru_cache(maxsize=1 << 17)(self._word_uncached)
        self._splitter = _added_token_splitter(raw)
        self._calls = 0
        #: True when encoding the text between added tokens piece by piece (cached) gives the same ids and
        #: offsets as encoding the whole text: verified on the probes now and audited every 97th call.
        glued = tuple(f"a{t}b {t} c\n{t}\td" for t in list(self.added_tokens)[:200])
        probes = PROBES + _SPLIT_PROBES + glued
        #: True when pieces are further cut before `` word`` (a space then an ASCII letter, after a non-space),
        #: where byte-level BPE pre-tokenizers always start a new pre-token: sentences and words are then
        #: encoded once and cached. Verified on the probes (and chunk probes) now; audited with the above.
        exact = os.environ.get("HARNESS_EXACT_TOKENIZE") == "1"  # escape hatch: never take a shortcut
        self.split_at_words: bool = _byte_level(raw) and not exact
        self.split_at_added_tokens: bool = not exact and self._splitter is not None and not _prepends_space(raw) and all(
            self._split_encode(p) == self._full_encode(p) for p in probes + _CHUNK_PROBES)
        if not self.split_at_added_tokens and self.split_at_words:  # maybe only the word cut is wrong
            self.split_at_words = False
            self._segment.cache_clear()
            self.split_at_added_tokens = self._splitter is not None and not _prepends_space(raw) and all(
                self._split_encode(p) == self._full_encode(p) for p in probes)
        self._piece = functools.lru_cache(maxsize=1 << 18)(self._piece_uncached)
        self._sha256: str | None = None

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.name!r}, model_dir='{self.model_dir}', vocab={len(self)})"

    def __len__(self) -> int:
        return int(self.raw.get_vocab_size(with_added_tokens=True))

    def _encode_uncached(self, text: str) -> tuple[int, ...]:
        if not self.split_at_added_tokens:
            return tuple(self._full_encode(text)[0])
        ids = self._split_ids(text)
        self._audit(text, ids)
        return ids

    def _split_ids(self, text: str) -> tuple[int, ...]:
        ids: list[int] = []
        pos = 0
        segment = self._segment
        for match in self._splitter.finditer(text):  # type: ignore[union-attr]
            if match.start() > pos:
                ids.extend(segment(text[pos:match.start()])[0])
            ids.append(self.added_tokens[match.group()])
            pos = match.end()
        if pos < len(text):
            ids.extend(segment(text[pos:])[0])
        return tuple(ids)

    def _piece_uncached(self, token_id: int) -> str:
        return str(self.hf.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Ids of ``text``. Special-token text is parsed as control tokens, as engines do."""
        if add_special_tokens:
            return list(self.hf(text, add_special_tokens=True)["input_ids"])
        return list(self._encode_raw(text))

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and (start, end) character offsets into ``text``, without added special tokens.

        Added tokens split the text before the model's pre-tokenizer runs, so the pieces between them are
        encoded once and cached: renderings of one conversation share almost all their pieces.
        """
        if not self.split_at_added_tokens:
            return self._full_encode(text)
        out = self._split_encode(text)
        self._audit(text, out)
        return out

    def _audit(self, text: str, out: tuple[list[int], list[tuple[int, int]]] | tuple[int, ...]) -> None:
        """Every 97th shortcut result is compared with a whole-string encode; a mismatch stops the run,
        since results already returned may be wrong too."""
        self._calls += 1
        if self._calls % 97:
            return
        full = self._full_encode(text)
        if out == full or (isinstance(out, tuple) and list(out) == full[0]):
            return
        self.split_at_added_tokens = self.split_at_words = False
        for cache in (self._encode_raw, self._segment, self._chunk, self._word):
            cache.cache_clear()
        raise TokenizerError(
            f"tokenizer={self.name!r}: the cached piece-wise tokenisation disagreed with whole-string encoding on "
            f"{text[:80]!r}; results of this run cannot be trusted. Rerun with HARNESS_EXACT_TOKENIZE=1 and "
            "report the text to the harness maintainers")

    def _full_encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.raw.encode(text, add_special_tokens=False)
        return list(enc.ids), [(int(a), int(b)) for a, b in enc.offsets]

    def _encode_piece(self, piece: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Ids, token starts and token ends of ``piece`` encoded on its own (the real tokenizer)."""
        enc = self.raw.encode(piece, add_special_tokens=False)
        offsets = enc.offsets
        return tuple(enc.ids), tuple([a for a, _ in offsets]), tuple([b for _, b in offsets])

    def _segment_uncached(self, piece: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """A piece between added tokens: cut at sentence ends (then words) when ``split_at_words``."""
        if not self.split_at_words:
            return self._encode_piece(piece)
        return _join(piece, _SENTENCE_CUT, self._chunk)

    def _chunk_uncached(self, chunk: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return _join(chunk, _WORD_CUT, self._word)

    def _word_uncached(self, word: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return self._encode_piece(word)

    def _split_encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        pos = 0
        added = self.added_tokens
        segment = self._segment
        for match in self._splitter.finditer(text):  # type: ignore[union-attr]
            start = match.start()
            if start > pos:
                _extend_shifted(ids, starts, ends, segment(text[pos:start]), pos)
            ids.append(added[match.group()])
            pos = match.end()
            starts.append(start)
            ends.append(pos)
        if pos < len(text):
            _extend_shifted(ids, starts, ends, segment(text[pos:]), pos)
        return ids, list(zip(starts, ends))

    def piece(self, token_id: int) -> str:
        """Decoded text of one id, special tokens kept (``'<|im_end|>'``, ``'\\n'``)."""
        return self._piece(token_id)

    def token_id(self, text: str) -> int | None:
        """The id when ``text`` is exactly one token (an added token, or one vocab piece), else None."""
        if text in self.added_tokens:
            return self.added_tokens[text]
        ids = self._encode_raw(text)
        if len(ids) == 1 and self.piece(ids[0]) == text:
            return ids[0]
        return None

    def describe(self) -> dict[str, Any]:
        """Provenance for reports: name, dir, sha256 of tokenizer.json, library versions, zoo source."""
        import tokenizers
        import transformers

        if self._sha256 is None:
            self._sha256 = sha256_file(self.model_dir / "tokenizer.json")
        out: dict[str, Any] = {
            "name": self.name,
            "model_dir": str(self.model_dir),
            "tokenizer_json_sha256": self._sha256,
            "hf_class": type(self.hf).__name__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        }
        manifest = self.model_dir / "harness-zoo.json"
        if manifest.is_file():
            out["zoo"] = _read_json(manifest, required=False)
        return out


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

#: Cut points. Sentences: before `` X`` after ``.``/``!``/``?``. Words: before a single space between two
#: printable ASCII non-spaces, and after a newline before an ASCII letter. Byte-level BPE pre-tokenizers
#: (GPT-2, Llama-3, Qwen, GLM, DeepSeek regexes) always start a pre-token there, and BPE never merges
#: across pre-tokens, so encoding the parts one by one gives the same ids and offsets (self-checked).
_SENTENCE_CUT = re.compile(r"(?<=[.!?]) (?=[A-Z])")
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


def check_ids_agree(hf: Any, raw: Any, probes: tuple[str, ...], *, where: str) -> None:
    """Raise TokenizerError at the first probe where AutoTokenizer ids differ from raw ids."""
    for probe in probes:
        got = list(hf(probe, add_special_tokens=False)["input_ids"])
        want = list(raw.encode(probe, add_special_tokens=False).ids)
        if got != want:
            import transformers

            i = next((k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
            raise TokenizerError(
                f"{where} : transformers {transformers.__version__} AutoTokenizer ids differ from tokenizer.json "
                f"(tokenizers) ids on probe {probe!r} at index {i}: AutoTokenizer={got[:16]} "
                f"tokenizers={want[:16]}. {_DEEPSEEK_BUG}"
            )


def load_tokenizer(model_dir: str | Path, *, name: str | None = None) -> Tokenizer:
    """Load and verify the tokenizer of a Hugging Face model dir; cached per dir and file mtimes."""
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise TokenizerError(f"model_dir='{model_dir}' : {what}; pass a Hugging Face model directory")
    path = path.resolve()
    has_json, has_config = (path / "tokenizer.json").is_file(), (path / "tokenizer_config.json").is_file()
    if not has_json and not has_config:
        raise TokenizerError(
            f"model_dir='{model_dir}' : no tokenizer.json or tokenizer_config.json; pass a Hugging Face model directory"
        )
    if not has_json:
        raise TokenizerError(
            f"model_dir='{model_dir}' : no tokenizer.json (only tokenizer_config.json); the harness needs a fast "
            "tokenizer: save one with AutoTokenizer.from_pretrained(src).save_pretrained(dir) into a copy"
        )
    return _load_cached(str(path), name if name is not None else str(model_dir), _stamp(path))


def clear_tokenizer_cache() -> None:
    """Forget every loaded Tokenizer (tests; after editing a model dir in place)."""
    _load_cached.cache_clear()
    _load_verified.cache_clear()


def _stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    names = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json",
             "generation_config.json", "special_tokens_map.json",
             *sorted(f"{_EXTRA_TEMPLATES}/{p.name}" for p in (path / _EXTRA_TEMPLATES).glob("*.jinja")))
    out = []
    for n in names:
        try:
            st = (path / n).stat()
        except OSError:
            continue
        out.append((n, st.st_mtime_ns, st.st_size))
    return tuple(out)


@functools.lru_cache(maxsize=32)
def _load_cached(model_dir: str, name: str, stamp: tuple[tuple[str, int, int], ...]) -> Tokenizer:
    hf, raw = _load_verified(model_dir, stamp)  # shared by every name the dir is loaded under
    return Tokenizer(name, Path(model_dir), hf, raw)


@functools.lru_cache(maxsize=16)
def _load_verified(model_dir: str, stamp: tuple[tuple[str, int, int], ...]) -> tuple[Any, Any]:
    del stamp  # only part of the cache key
    path = Path(model_dir)
    check_config_files(path)  # small files: fail with our message (file, key, fix) before any library reads them
    from tokenizers import Tokenizer as RawTokenizer

    try:
        raw = RawTokenizer.from_file(str(path / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises a bare Exception on schema errors
        raise TokenizerError(
            f"model_dir='{model_dir}' : tokenizer.json cannot be read by tokenizers: {exc}; "
            "regenerate it with a current transformers"
        ) from exc
    hf = _load_hf(path)
    where = f"model_dir='{model_dir}'"
    _check_added_tokens(hf, raw, where=where)
    specials = [t.content for _, t in sorted(raw.get_added_tokens_decoder().items()) if t.special]
    extra = tuple("".join(f"{tok} a" for tok in specials[i : i + 64]) for i in range(0, min(len(specials), 1024), 64))
    check_ids_agree(hf, raw, PROBES + extra, where=where)
    return hf, raw


def _load_hf(model_dir: Path) -> Any:
    """AutoTokenizer.from_pretrained, offline, quiet, with load errors as TokenizerError."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise TokenizerError(
            f"model_dir='{model_dir}' : transformers.AutoTokenizer cannot load it: {type(exc).__name__}: {exc}; "
            "check tokenizer_config.json (tokenizer_class) and that transformers>=5.22 is installed"
        ) from exc
    finally:
        hf_logging.set_verbosity(level)


def _check_added_tokens(hf: Any, raw: Any, *, where: str) -> None:
    want = {int(i): t.content for i, t in raw.get_added_tokens_decoder().items()}
    got = {int(i): str(t) for i, t in hf.added_tokens_decoder.items()}
    if got != want:
        i = min(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        raise TokenizerError(
            f"{where} : AutoTokenizer added token {i} is {got.get(i)!r} but tokenizer.json says {want.get(i)!r}; "
            "tokenizer_config.json added_tokens_decoder disagrees with tokenizer.json: make them agree"
        )


def _read_json(path: Path, *, required: bool) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise TokenizerError(f"file='{path}' : missing; pass a Hugging Face model directory") from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"file='{path}' : unreadable ({exc}); check permissions and encoding") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenizerError(
            f"file='{path}' : invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; fix or regenerate it"
        ) from exc
    except RecursionError:
        raise TokenizerError(f"file='{path}' : JSON nested deeper than Python's recursion limit; fix or regenerate it"
                             ) from None


def check_config_files(model_dir: Path) -> None:
    """Refuse config files the harness or the engines cannot use, naming the file, the key and the fix:
    JSON that is not an object, a ``chat_template`` that is neither a string nor a list of ``{name, template}``,
    an ``eos_token_id`` that is not a token id or a list of them, a ``chat_template.jinja`` that is not UTF-8."""
    for name in ("tokenizer_config.json", "generation_config.json", "chat_template.json", "special_tokens_map.json"):
        data = _read_json(model_dir / name, required=False)
        if data is None:
            continue
        where = f"file='{model_dir / name}'"
        if not isinstance(data, dict):
            raise TokenizerError(f"{where} : holds a JSON {type(data).__name__}, not an object; it must be "
                                 "{\"key\": value, ...} as transformers saves it: fix or regenerate it")
        if name in ("tokenizer_config.json", "chat_template.json") and "chat_template" in data:
            _check_template_value(data["chat_template"], where)
        if name == "chat_template.json" and "chat_template" not in data:
            raise TokenizerError(f"{where} : has no \"chat_template\" key; it must be {{\"chat_template\": \"...\"}} "
                                 "as transformers saves it: fix it or remove the file")
        if name == "generation_config.json" and data.get("eos_token_id") is not None:
            eos = data["eos_token_id"]
            ids = eos if isinstance(eos, list) else [eos]
            if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
                raise TokenizerError(f"{where} : eos_token_id={eos!r} is not a token id; it must be a non-negative "
                                     "integer or a list of them (e.g. [151645, 151643]): fix generation_config.json")
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        try:
            jinja.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TokenizerError(f"file='{jinja}' : not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                                 f"{exc.start}); save the chat template as UTF-8") from None
        except OSError as exc:
            raise TokenizerError(f"file='{jinja}' : unreadable ({exc}); check permissions") from None


def _check_template_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, str):  # null: no template
        return
    if isinstance(value, list) and value and all(
            isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("template"), str) for t in value):
        return
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise TokenizerError(f"{where} : chat_template={shown} (type={type(value).__name__}) is not a chat template; it "
                         "must be a Jinja template string or a list of {\"name\": ..., \"template\": ...} objects")


def read_chat_template(model_dir: str | Path) -> str | None:
    """A model dir's ``default`` chat template without loading its tokenizer (None when it has none)."""
    return read_chat_templates(model_dir).get("default")


def read_chat_templates(model_dir: str | Path) -> dict[str, str]:
    """Every named chat template of a model dir without loading its tokenizer ({} when it has none)."""
    path = Path(model_dir)
    check_config_files(path)
    return _chat_templates(path, _read_json(path / "tokenizer_config.json", required=False) or {})


#: transformers' ``CHAT_TEMPLATE_DIR``: one extra template per ``NAME.jinja`` file.
_EXTRA_TEMPLATES = "additional_chat_templates"


def _chat_templates(model_dir: Path, config: Mapping[str, Any]) -> dict[str, str]:
    """Named templates as transformers 5 loads them (``PreTrainedTokenizerBase._from_pretrained``).

    Template files win over the config: ``chat_template.jinja`` is ``default`` and each
    ``additional_chat_templates/NAME.jinja`` is ``NAME``; when any file exists, tokenizer_config.json's
    ``chat_template`` is ignored entirely (even with no chat_template.jinja). Otherwise tokenizer_config's
    ``chat_template`` (else chat_template.json's): a string is ``default``, a list of ``{"name", "template"}``
    is one template per entry (a repeated name: the last wins).
    """
    files: dict[str, str] = {}
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        files["default"] = _read_text(jinja)
    for extra in sorted((model_dir / _EXTRA_TEMPLATES).glob("*.jinja")):
        if extra.is_file():
            files[extra.name.removesuffix(".jinja")] = _read_text(extra)
    if files:
        return files
    template: Any = config.get("chat_template")
    where = model_dir / "tokenizer_config.json"
    extra_json = model_dir / "chat_template.json"
    if template is None and extra_json.is_file():
        template, where = (_read_json(extra_json, required=False) or {}).get("chat_template"), extra_json
    if isinstance(template, str):
        return {"default": template}
    if not isinstance(template, list):
        return {}
    named: dict[str, str] = {}
    for i, entry in enumerate(template):
        name = entry.get("name") if isinstance(entry, dict) else None
        text = entry.get("template") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(text, str):
            raise TokenizerError(f"file='{where}' : chat_template[{i}] is {str(entry)[:80]!r}, not "
                                 '{"name": "...", "template": "..."}; fix that entry of the chat_template list')
        named[name] = text
    return named


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"file='{path}' : unreadable ({exc}); check permissions and encoding") from exc


def _as_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
