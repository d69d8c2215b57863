"""The ``Tokenizer`` object: ids and offsets through the raw ``tokenizers`` model, AutoTokenizer (``hf``)
loaded only when something asks for it."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.errors import TokenizerError
from harness.tokenizer.fast import (
    _CHUNK_PROBES, _SPLIT_PROBES, _WORD_CUT, _added_token_splitter, _byte_level, _extend_shifted,
    _join, _prepends_space,
)
from harness.tokenizer.files import _as_ids, _chat_templates, _read_json, sha256_file, special_token_names
from harness.tokenizer.probes import PROBES
from harness.tokenizer.verified import package_version

_ENCODE_CACHE_SIZE = 4096  # ~550-id renderings: tens of MB at most


@dataclass(frozen=True)
class Specials:
    """A model's named special tokens (``special_tokens_map``), their ids, and the ids
    ``add_special_tokens=True`` puts before / after a text (GLM-4: ``[gMASK] <sop>``)."""

    names: tuple[tuple[str, str], ...]
    bos_id: int | None
    eos_id: int | None
    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]

    @classmethod
    def from_hf(cls, hf: Any) -> "Specials":
        """As AutoTokenizer reports them."""
        bare = list(hf("x", add_special_tokens=False)["input_ids"])
        full = list(hf("x", add_special_tokens=True)["input_ids"])
        return cls(tuple(sorted(dict(hf.special_tokens_map).items())),
                   hf.bos_token_id if hf.bos_token is not None else None,
                   hf.eos_token_id if hf.eos_token is not None else None, *_around(bare, full))

    @classmethod
    def from_files(cls, model_dir: Path, raw: Any) -> "Specials":
        """From tokenizer_config.json / special_tokens_map.json and tokenizer.json's post-processor."""
        names = special_token_names(model_dir)
        bare = list(raw.encode("x", add_special_tokens=False).ids)
        full = list(raw.encode("x", add_special_tokens=True).ids)
        ids = {k: raw.token_to_id(v) for k, v in names.items() if k in ("bos_token", "eos_token")}
        return cls(tuple(sorted(names.items())), ids.get("bos_token"), ids.get("eos_token"), *_around(bare, full))


def _around(bare: list[int], full: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    start = next((i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare), 0)
    return tuple(full[:start]), tuple(full[start + len(bare) :])


class Tokenizer:
    """One model's tokenizer: ``raw`` (tokenizer.json) for ids, ``hf`` (AutoTokenizer) for engine behaviour.

    ``encode(text)`` equals ``hf(text, add_special_tokens=False)["input_ids"]`` (checked at load on
    :data:`PROBES`) but goes through ``raw`` and a bounded memo, so repeated segments cost a dict lookup.
    ``hf`` is loaded on first access when ``specials`` (read from the model's files) were proven equal to
    AutoTokenizer's: then ``piece`` and ``encode(..., add_special_tokens=True)`` need no transformers either.
    """

    def __init__(self, name: str, model_dir: Path, hf: Any, raw: Any, *, specials: Specials | None = None,
                 hf_loader: Callable[[], Any] | None = None, hf_class: str | None = None) -> None:
        if hf is None and (specials is None or hf_loader is None or hf_class is None):
            raise TypeError("Tokenizer without hf needs specials, hf_loader and hf_class")
        self.name = name
        self.model_dir = model_dir
        self._hf = hf
        self._hf_loader = hf_loader
        self.raw = raw
        #: True when ``specials``, ``piece`` and ``encode(add_special_tokens=True)`` are served from the files
        #: (proven to agree with AutoTokenizer, the proof cached); False: asked of ``hf`` as engines do.
        self.mirrors_hf: bool = specials is not None
        specials = specials if specials is not None else Specials.from_hf(hf)
        self.hf_class: str = hf_class or type(hf).__name__
        config = _read_json(model_dir / "tokenizer_config.json", required=False) or {}
        self.tokenizer_config: Mapping[str, Any] = MappingProxyType(config)
        #: Every named chat template, as transformers loads them (``default``, ``tool_use``, ``rag``…).
        self.chat_templates: Mapping[str, str] = MappingProxyType(_chat_templates(model_dir, config))
        #: The one named ``default`` (None when there is none): what a request without tools renders.
        self.chat_template: str | None = self.chat_templates.get("default")
        #: ``hf.special_tokens_map``: what ``apply_chat_template`` passes to templates (``bos_token``…).
        self.special_tokens_map: Mapping[str, str] = MappingProxyType(dict(specials.names))
        self.bos_token: str | None = self.special_tokens_map.get("bos_token")
        self.bos_id: int | None = specials.bos_id
        self.eos_token: str | None = self.special_tokens_map.get("eos_token")
        self.eos_id: int | None = specials.eos_id
        self.pad_token: str | None = self.special_tokens_map.get("pad_token")
        gen = _read_json(model_dir / "generation_config.json", required=False) or {}
        self.generation_config: Mapping[str, Any] = MappingProxyType(gen)
        self.generation_eos_ids: tuple[int, ...] = _as_ids(gen.get("eos_token_id"))
        decoder = raw.get_added_tokens_decoder()
        self.added_tokens: Mapping[str, int] = MappingProxyType({t.content: i for i, t in sorted(decoder.items())})
        self.special_tokens: frozenset[str] = frozenset(t.content for t in decoder.values() if t.special)
        #: ids ``hf(text, add_special_tokens=True)`` puts before / after the text (GLM-4: [gMASK] <sop>).
        self.special_prefix_ids: tuple[int, ...] = specials.prefix_ids
        self.special_suffix_ids: tuple[int, ...] = specials.suffix_ids
        self.adds_bos: bool = self.bos_id is not None and self.special_prefix_ids[:1] == (self.bos_id,)
        self._encode_raw = functools.lru_cache(maxsize=_ENCODE_CACHE_SIZE)(self._encode_uncached)
        self._segment = functools.lru_cache(maxsize=1 << 16)(self._segment_uncached)
        self._word = functools.lru_cache(maxsize=1 << 17)(self._word_uncached)
        self._splitter = _added_token_splitter(raw)
        self._calls = 0
        #: True when encoding the text between added tokens piece by piece (cached) gives the same ids and
        #: offsets as encoding the whole text: verified on the probes now and audited every 97th call.
        glued = tuple(f"a{t}b {t} c\n{t}\td" for t in list(self.added_tokens)[:200])
        probes = PROBES + _SPLIT_PROBES + glued
        #: True when pieces are further cut before `` word`` (a space then an ASCII letter, after a non-space),
        #: where byte-level BPE pre-tokenizers always start a new pre-token: words are then
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

    @property
    def hf(self) -> Any:
        """transformers' AutoTokenizer for this dir (loaded, verified and shared on first access)."""
        if self._hf is None:
            self._hf = self._hf_loader()  # type: ignore[misc]
        return self._hf

    def _piece_uncached(self, token_id: int) -> str:
        if self.mirrors_hf:
            return str(self.raw.decode([token_id], skip_special_tokens=False))
        return str(self.hf.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Ids of ``text``. Special-token text is parsed as control tokens, as engines do."""
        if add_special_tokens and not self.mirrors_hf:
            return list(self.hf(text, add_special_tokens=True)["input_ids"])
        if add_special_tokens:
            return [*self.special_prefix_ids, *self._encode_raw(text), *self.special_suffix_ids]
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
        for cache in (self._encode_raw, self._segment, self._word):
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
        """A piece between added tokens: cut at words (each encoded once, cached) when ``split_at_words``."""
        if not self.split_at_words:
            return self._encode_piece(piece)
        return _join(piece, _WORD_CUT, self._word)

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

        if self._sha256 is None:
            self._sha256 = sha256_file(self.model_dir / "tokenizer.json")
        out: dict[str, Any] = {
            "name": self.name,
            "model_dir": str(self.model_dir),
            "tokenizer_json_sha256": self._sha256,
            "hf_class": self.hf_class,
            "transformers": package_version("transformers"),
            "tokenizers": tokenizers.__version__,
        }
        manifest = self.model_dir / "harness-zoo.json"
        if manifest.is_file():
            out["zoo"] = _read_json(manifest, required=False)
        return out


