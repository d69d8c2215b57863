"""harness.tokenizer on a tiny byte-level BPE built here (fast), plus planted failures."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InputError, TokenizerError
from harness.tokenizer import (
    PROBES,
    Tokenizer,
    check_ids_agree,
    clear_tokenizer_cache,
    load_tokenizer,
    read_chat_template,
)

@pytest.fixture(autouse=True)
def _fresh_verification_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test verifies against AutoTokenizer anew (no record from another test's identical files)."""
    clear_tokenizer_cache()
    folder = tmp_path / "verified"
    monkeypatch.setenv("HARNESS_VERIFY_CACHE_DIR", str(folder))
    return folder


TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}"
CORPUS = ["Hello, world! two  spaces.\n\n", "def f(x):\n    return x * 2\n", "你好世界 🙂👍🏽", "the quick brown fox"]


def make_model_dir(path: Path, **config: Any) -> Path:
    """A model dir with a 400-piece byte-level BPE, <s> prepended by its post-processor, one plain added token."""
    from tokenizers import Tokenizer as Raw
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    raw = Raw(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(CORPUS * 20, trainer)
    raw.add_tokens(["<tool>"])
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 0)])
    path.mkdir(parents=True, exist_ok=True)
    raw.save(str(path / "tokenizer.json"))
    base = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
            "pad_token": "<pad>", "chat_template": TEMPLATE}
    (path / "tokenizer_config.json").write_text(json.dumps({**base, **config}), encoding="utf-8")
    return path


def fingerprint(path: Path) -> dict[str, tuple[str, int]]:
    """Every entry under path with its content hash and mtime: any write shows."""
    out = {}
    for p in sorted(path.rglob("*")):
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(path))] = (digest, p.stat().st_mtime_ns)
    return out


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    clear_tokenizer_cache()
    return make_model_dir(tmp_path / "model")


def test_attributes_of_a_synthetic_model(model_dir: Path) -> None:
    (model_dir / "generation_config.json").write_text(json.dumps({"eos_token_id": [1, 2], "bos_token_id": 0}))
    tok = load_tokenizer(model_dir)
    assert isinstance(tok, Tokenizer)
    assert tok.name == str(model_dir) and tok.model_dir == model_dir.resolve()
    assert (tok.bos_token, tok.bos_id, tok.eos_token, tok.eos_id, tok.pad_token) == ("<s>", 0, "</s>", 1, "<pad>")
    assert tok.generation_eos_ids == (1, 2)
    assert tok.special_tokens == frozenset({"<s>", "</s>", "<pad>"})
    tool = len(tok) - 1  # the one token added after training
    assert tok.added_tokens == {"<s>": 0, "</s>": 1, "<pad>": 2, "<tool>": tool} and "<tool>" not in tok.special_tokens
    assert tok.adds_bos is True and tok.special_prefix_ids == (0,) and tok.special_suffix_ids == ()
    assert tok.chat_template == TEMPLATE == read_chat_template(model_dir)
    assert 300 < len(tok) <= 401


def test_encode_matches_autotokenizer_and_is_memo_safe(model_dir: Path) -> None:
    tok = load_tokenizer(model_dir)
    for probe in PROBES:
        assert tok.encode(probe) == tok.hf(probe, add_special_tokens=False)["input_ids"], probe
    first = tok.encode("Hello  world")
    first.append(-1)  # callers may mutate what they get; the memo must not change
    assert tok.encode("Hello  world") == first[:-1]
    assert tok.encode("Hello", add_special_tokens=True) == [0, *tok.encode("Hello")]
    assert tok.encode("a<tool>b")[1] == len(tok) - 1  # added-token text is parsed, as engines do


def test_offsets_pieces_and_token_ids(model_dir: Path) -> None:
    tok = load_tokenizer(model_dir)
    text = "Hello, world!\n\n你好"
    ids, offsets = tok.encode_offsets(text)
    assert ids == tok.encode(text)
    assert "".join(text[a:b] for a, b in offsets) == text
    assert "".join(tok.piece(i) for i in ids) == text
    assert tok.piece(tok.eos_id) == "</s>"
    assert tok.token_id("</s>") == 1 and tok.token_id("<tool>") == len(tok) - 1
    hello = tok.encode("Hello")
    assert len(hello) == 1 and tok.token_id("Hello") == hello[0]
    assert tok.token_id("Hello, world! and more") is None


def test_generation_eos_ids_forms(tmp_path: Path) -> None:
    clear_tokenizer_cache()
    absent = load_tokenizer(make_model_dir(tmp_path / "a"))
    assert absent.generation_eos_ids == () and dict(absent.generation_config) == {}
    one = make_model_dir(tmp_path / "b")
    (one / "generation_config.json").write_text('{"eos_token_id": 1}')
    assert load_tokenizer(one).generation_eos_ids == (1,)


def test_chat_template_sources(tmp_path: Path) -> None:
    clear_tokenizer_cache()
    jinja = make_model_dir(tmp_path / "jinja")
    (jinja / "chat_template.jinja").write_text("FROM FILE", encoding="utf-8")
    assert load_tokenizer(jinja).chat_template == "FROM FILE" == read_chat_template(jinja)
    named = make_model_dir(tmp_path / "named", chat_template=[{"name": "tool_use", "template": "T"},
                                                              {"name": "default", "template": "D"}])
    assert load_tokenizer(named).chat_template == "D"
    none = make_model_dir(tmp_path / "none", chat_template=None)
    assert load_tokenizer(none).chat_template is None and read_chat_template(none) is None


def test_loads_are_cached_until_a_file_changes(model_dir: Path) -> None:
    first = load_tokenizer(model_dir)
    assert load_tokenizer(model_dir) is first
    other = load_tokenizer(model_dir, name="other")
    assert other.name == "other" and other is not first and other.hf is first.hf  # loaded once
    config = model_dir / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"<pad>"', '"</s>"'))
    os.utime(config, ns=(1, 1))  # a different mtime even on coarse clocks
    second = load_tokenizer(model_dir)
    assert second is not first and second.pad_token == "</s>"


def test_model_dir_is_never_written(model_dir: Path) -> None:
    (model_dir / "generation_config.json").write_text('{"eos_token_id": 1}')
    before = fingerprint(model_dir)
    tok = load_tokenizer(model_dir)
    tok.encode("x"), tok.piece(3), tok.describe(), tok.encode("y", add_special_tokens=True)
    assert fingerprint(model_dir) == before


def test_describe(model_dir: Path) -> None:
    import tokenizers
    import transformers

    info = load_tokenizer(model_dir, name="tiny").describe()
    assert info["name"] == "tiny" and info["model_dir"] == str(model_dir.resolve())
    assert info["tokenizer_json_sha256"] == hashlib.sha256((model_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert (info["transformers"], info["tokenizers"]) == (transformers.__version__, tokenizers.__version__)
    assert "zoo" not in info


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist; pass a Hugging Face model directory"),
        ("file", "is not a directory"),
        ("empty", "no tokenizer.json or tokenizer_config.json; pass a Hugging Face model directory"),
        ("config_only", "no tokenizer.json (only tokenizer_config.json)"),
        ("bad_config", "tokenizer_config.json' : invalid JSON at line 1 column 2"),
        ("bad_generation", "generation_config.json' : invalid JSON"),
        ("bad_tokenizer_json", "tokenizer.json cannot be read by tokenizers"),
    ],
)
def test_load_errors_name_the_value_and_the_remedy(tmp_path: Path, setup: str, message: str) -> None:
    clear_tokenizer_cache()
    target = tmp_path / "m"
    if setup == "file":
        target.write_text("x")
    elif setup == "empty":
        target.mkdir()
    elif setup == "config_only":
        target.mkdir()
        (target / "tokenizer_config.json").write_text("{}")
    elif setup != "missing":
        make_model_dir(target)
        name = {"bad_config": "tokenizer_config.json", "bad_generation": "generation_config.json",
                "bad_tokenizer_json": "tokenizer.json"}[setup]
        (target / name).write_text("{oops")
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(target)
    assert message in str(info.value)
    assert isinstance(info.value, InputError)


class _SpaceDroppingHF:
    """A planted transformers bug: AutoTokenizer that loses spaces, like 5.6–5.21 on DeepSeek."""

    def __init__(self, hf: Any) -> None:
        self._hf = hf

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hf, name)

    def __call__(self, text: str, **kwargs: Any) -> Any:
        return self._hf(text.replace(" ", ""), **kwargs)


def test_planted_autotokenizer_disagreement_is_caught(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.tokenizer.load as mod

    real = mod._load_hf
    monkeypatch.setattr(mod, "_load_hf", lambda path: _SpaceDroppingHF(real(path)))
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(model_dir)
    text = str(info.value)
    assert "on probe 'Hello, world!' at index 2" in text
    assert "transformers 5.6–5.21 DeepSeek bug" in text and "pip install 'transformers>=5.22'" in text
    monkeypatch.setattr(mod, "_load_hf", real)
    assert load_tokenizer(model_dir).encode("a b")  # the failed load was not cached


def test_planted_added_token_disagreement_is_caught(tmp_path: Path) -> None:
    clear_tokenizer_cache()
    extra = {"400": {"content": "<extra>", "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}}
    target = make_model_dir(tmp_path / "m", added_tokens_decoder=extra)
    pattern = r"added token \d+ is '<extra>' but tokenizer.json says None; .*make them agree"
    with pytest.raises(TokenizerError, match=pattern):
        load_tokenizer(target)


def test_check_ids_agree_reports_first_difference() -> None:
    class Raw:
        def encode(self, text: str, add_special_tokens: bool) -> Any:
            return type("E", (), {"ids": [1, 2, 3] if text == "b" else [1]})()

    def hf(text: str, add_special_tokens: bool) -> dict[str, list[int]]:
        return {"input_ids": [1, 9, 3] if text == "b" else [1]}

    check_ids_agree(hf, Raw(), ("a",), where="x")
    with pytest.raises(TokenizerError, match=r"x : .* on probe 'b' at index 1: AutoTokenizer=\[1, 9, 3\] "):
        check_ids_agree(hf, Raw(), ("a", "b"), where="x")


# ---------------------------------------------------------------- the verification cache

_PROBE_CODE = ("import sys; from harness.tokenizer import load_tokenizer; t = load_tokenizer(sys.argv[1]); "
               "t.encode('a b'); t.piece(3); t.encode('x', add_special_tokens=True); t.describe(); "
               "print(t.mirrors_hf, 'transformers' in sys.modules, 'torch' in sys.modules)")


def _fresh_load(path: Path) -> str:
    """Load ``path`` in a new interpreter: mirrors_hf, transformers imported, torch imported."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", _PROBE_CODE, str(path)], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    return done.stdout.strip()


def test_a_verified_dir_loads_without_transformers_in_a_fresh_interpreter(model_dir: Path,
                                                                           _fresh_verification_cache: Path) -> None:
    assert _fresh_load(model_dir).startswith("True True")  # first load: AutoTokenizer verifies, the proof is kept
    assert len(list(_fresh_verification_cache.glob("*.json"))) == 1
    assert _fresh_load(model_dir) == "True False False"  # second: neither transformers nor torch


def test_a_cached_success_does_not_cover_edited_files(model_dir: Path, _fresh_verification_cache: Path) -> None:
    assert load_tokenizer(model_dir).mirrors_hf
    config = model_dir / "tokenizer_config.json"
    original = config.read_text()
    config.write_text(original.replace('"bos_token": "<s>"', '"bos_token": "<pad>"'))
    clear_tokenizer_cache()
    tok = load_tokenizer(model_dir)  # a new key: verified again, and the new value is AutoTokenizer's
    assert (tok.bos_token, tok.bos_id, tok.hf.bos_token) == ("<pad>", 2, "<pad>")
    assert len(list(_fresh_verification_cache.glob("*.json"))) == 2
    extra = {"400": {"content": "<extra>", "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}}
    config.write_text(json.dumps({**json.loads(original), "added_tokens_decoder": extra}))
    clear_tokenizer_cache()
    with pytest.raises(TokenizerError, match=r"added token \d+ is '<extra>' but tokenizer.json says None"):
        load_tokenizer(model_dir)  # the planted disagreement is caught despite the earlier records


class _PlantedHF(_SpaceDroppingHF):
    """AutoTokenizer that differs from the files in one place only: ``what``."""

    def __init__(self, hf: Any, what: str) -> None:
        super().__init__(hf)
        self._what = what

    def __call__(self, text: str, **kwargs: Any) -> Any:
        out = self._hf(text, **kwargs)
        if self._what == "special_ids" and kwargs.get("add_special_tokens") and len(text) > 1:
            out["input_ids"] = [*out["input_ids"], 1]  # an eos appended, but not after "x"
        return out

    @property
    def special_tokens_map(self) -> dict[str, str]:
        names = dict(self._hf.special_tokens_map)
        return {**names, "unk_token": "<pad>"} if self._what == "names" else names

    def batch_decode(self, batch: list[list[int]], **kwargs: Any) -> list[str]:
        out = list(self._hf.batch_decode(batch, **kwargs))
        return [*out[:-1], out[-1] + " "] if self._what == "pieces" else out


@pytest.mark.parametrize("what", ["names", "special_ids", "pieces"])
def test_planted_file_value_disagreements_fall_back_to_autotokenizer(
        model_dir: Path, monkeypatch: pytest.MonkeyPatch, _fresh_verification_cache: Path, what: str) -> None:
    import harness.tokenizer.load as mod

    real = mod._load_hf
    monkeypatch.setattr(mod, "_load_hf", lambda path: _PlantedHF(real(path), what))
    tok = load_tokenizer(model_dir)
    assert tok.mirrors_hf is False and not list(_fresh_verification_cache.glob("*.json"))  # nothing vouched for
    if what == "names":
        assert tok.special_tokens_map["unk_token"] == "<pad>"  # AutoTokenizer's value, not the files'
    if what == "special_ids":
        assert tok.encode("ab", add_special_tokens=True)[-1] == 1


def test_a_corrupt_or_unwritable_cache_means_verifying_again(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                           _fresh_verification_cache: Path, tmp_path: Path) -> None:
    import harness.tokenizer.load as mod

    calls: list[Path] = []
    real = mod._load_hf
    monkeypatch.setattr(mod, "_load_hf", lambda path: calls.append(path) or real(path))
    load_tokenizer(model_dir)
    (record,) = _fresh_verification_cache.glob("*.json")
    record.write_text('{"key": "trunc')
    clear_tokenizer_cache()
    assert load_tokenizer(model_dir).mirrors_hf and len(calls) == 2  # verified again, record rewritten
    assert json.loads(record.read_text())["hf_class"]
    clear_tokenizer_cache()
    load_tokenizer(model_dir)
    assert len(calls) == 2  # the rewritten record is trusted
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("HARNESS_VERIFY_CACHE_DIR", str(blocker))
    clear_tokenizer_cache()
    assert load_tokenizer(model_dir).encode("a b") and len(calls) == 3  # unwritable: verified, still works


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness.tokenizer.verified import cache_root, records_dir

    monkeypatch.delenv("HARNESS_VERIFY_CACHE_DIR")
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert records_dir() == tmp_path / "xdg" / "template-harness" / "verified"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "h"))
    assert cache_root() == tmp_path / "h" and records_dir() == tmp_path / "h" / "verified"
