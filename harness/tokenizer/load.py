"""Load a model dir's tokenizer offline and prove its ids trustworthy, once per set of files.

The first load of a dir's files runs ``transformers.AutoTokenizer`` (what vLLM/TRL use) beside the raw
``tokenizers.Tokenizer`` and checks they agree: ids on :data:`PROBES` (transformers 5.6–5.21 silently
dropped spaces, newlines, CJK and emoji for DeepSeek tokenizers), added tokens, and the values the
harness reads from the files (special tokens and ids, ``add_special_tokens=True`` ids, decoded pieces).
Success is recorded in the user cache (:mod:`harness.tokenizer.verified`); later loads of the same files
import neither transformers nor torch. The model dir is only read, never written.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from harness.errors import TokenizerError
from harness.tokenizer import verified
from harness.tokenizer.core import Specials, Tokenizer
from harness.tokenizer.files import _EXTRA_TEMPLATES, check_config_files
from harness.tokenizer.probes import PROBES

_DEEPSEEK_BUG = (
    "This is the known transformers 5.6–5.21 DeepSeek bug (spaces, newlines, CJK and emoji vanish); "
    "remedy: pip install 'transformers>=5.22'"
)
_PIECE_STRIDE = 101  # decoded pieces compared with AutoTokenizer: every added token and every 101st id


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
    _shared_hf.cache_clear()


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
    raw, specials, hf_class = _load_verified(model_dir, stamp)  # shared by every name the dir is loaded under
    if specials is None:  # the files do not say what AutoTokenizer says: ask it, as before
        return Tokenizer(name, Path(model_dir), _shared_hf(model_dir, stamp), raw)
    return Tokenizer(name, Path(model_dir), None, raw, specials=specials, hf_class=hf_class,
                     hf_loader=functools.partial(_shared_hf, model_dir, stamp))


@functools.lru_cache(maxsize=16)
def _shared_hf(model_dir: str, stamp: tuple[tuple[str, int, int], ...]) -> Any:
    del stamp  # only part of the cache key
    return _load_hf(Path(model_dir))


@functools.lru_cache(maxsize=16)
def _load_verified(model_dir: str, stamp: tuple[tuple[str, int, int], ...]) -> tuple[Any, Specials | None, str]:
    """raw tokenizer, the Specials read from files when proven equal to AutoTokenizer's (else None), hf class."""
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
    specials = Specials.from_files(path, raw)
    key = verified.record_key(path)
    record = verified.read_record(key)
    if record is not None:
        return raw, specials, record["hf_class"]
    hf = _shared_hf(model_dir, stamp)
    where = f"model_dir='{model_dir}'"
    names = [t.content for _, t in sorted(raw.get_added_tokens_decoder().items()) if t.special]
    extra = tuple("".join(f"{tok} a" for tok in names[i : i + 64]) for i in range(0, min(len(names), 1024), 64))
    try:
        _check_added_tokens(hf, raw, where=where)
        check_ids_agree(hf, raw, PROBES + extra, where=where)
    except TokenizerError:
        _shared_hf.cache_clear()  # a refused AutoTokenizer is not kept for a later load
        raise
    if not _files_agree(hf, raw, specials, PROBES + extra):
        return raw, None, type(hf).__name__
    verified.write_record(key, {"hf_class": type(hf).__name__, "model_dir": model_dir})
    return raw, specials, type(hf).__name__


def _files_agree(hf: Any, raw: Any, specials: Specials, probes: tuple[str, ...]) -> bool:
    """Do the values read from the files equal AutoTokenizer's? Special tokens and ids, the ids
    ``add_special_tokens=True`` adds on every probe, and the decoded piece of every added token and
    every 101st id."""
    if Specials.from_hf(hf) != specials:
        return False
    for probe in probes:
        ids = list(raw.encode(probe, add_special_tokens=False).ids)
        if list(hf(probe, add_special_tokens=True)["input_ids"]) != [*specials.prefix_ids, *ids, *specials.suffix_ids]:
            return False
    sample = sorted({*range(0, raw.get_vocab_size(with_added_tokens=True), _PIECE_STRIDE),
                     *raw.get_added_tokens_decoder()})
    batch = [[i] for i in sample]
    return bool(hf.batch_decode(batch, skip_special_tokens=False, clean_up_tokenization_spaces=False)
                == raw.decode_batch(batch, skip_special_tokens=False))


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


