"""The speed shortcuts give exactly the ids of the slow, obvious path (counted over real renderings)."""

from __future__ import annotations

import pytest

from harness.api import load_model, make_pair
from harness.generate import generate
from harness.zoo import zoo_names

pytestmark = pytest.mark.real_tokenizer


@pytest.mark.parametrize("model", [n for n in zoo_names() if n != "qwen3-alt"])
def test_split_at_added_tokens_equals_whole_string_encoding(model):
    tok = load_model(model=model)
    pair = make_pair(tok, "jinja:.", "hf:.")
    texts = []
    for conv in generate(150, seed=11, tools="any", reasoning="any"):
        try:
            texts.append(pair.train.render_text(conv))
        except Exception:  # templates refuse some shapes (raise_exception); nothing to tokenise then
            continue
    texts += [f"x{t}y {t}\n{t}" for t in list(tok.added_tokens)[:300]]
    agree = sum(tok.encode_offsets(t) == tok._full_encode(t) for t in texts)
    print(f"{model}: split encoding == whole encoding on {agree}/{len(texts)} texts "
          f"(fast path {'on' if tok.split_at_added_tokens else 'off'})")
    assert agree == len(texts)
    assert all(tok.encode(t) == tok._full_encode(t)[0] for t in texts[:50])


def test_sentencepiece_tokenizers_do_not_split():
    """Metaspace prepends '▁' to the first piece only: splitting at added tokens would change ids."""
    tok = load_model(model="mistral-v3")
    assert tok.split_at_added_tokens is False
    text = "x[REFERENCE_DOC_3]\tY"
    assert tok._split_encode(text) != tok._full_encode(text)  # the planted bug the self-check prevents


@pytest.mark.parametrize("path", ["encode_offsets", "encode"])
def test_audit_stops_the_run_when_the_shortcut_disagrees(monkeypatch, path):
    from harness.errors import TokenizerError
    from harness.tokenizer import load_tokenizer
    from harness.zoo import zoo_model_dir

    tok = load_tokenizer(zoo_model_dir("qwen2.5"), name="audit-probe")
    monkeypatch.setattr(tok, "split_at_added_tokens", True)
    monkeypatch.setattr(tok, "_split_encode", lambda text: ([0], [(0, 1)]))  # a broken shortcut
    monkeypatch.setattr(tok, "_split_ids", lambda text: (0,))
    monkeypatch.setattr(tok, "_calls", 96)
    text = f"hello audited world via {path}"  # fresh text: no cache may answer for it
    with pytest.raises(TokenizerError, match="HARNESS_EXACT_TOKENIZE"):
        getattr(tok, path)(text)
    assert tok.split_at_added_tokens is False and tok.split_at_words is False
    assert tok.encode(text) == tok._full_encode(text)[0]


def test_exact_mode_takes_no_shortcut(monkeypatch):
    from harness.tokenizer import Tokenizer

    monkeypatch.setenv("HARNESS_EXACT_TOKENIZE", "1")
    base = load_model(model="qwen2.5")
    tok = Tokenizer("exact", base.model_dir, base.hf, base.raw)
    assert tok.split_at_added_tokens is False and tok.split_at_words is False


def test_render_cache_and_ids_only_prompts_match_the_detailed_path():
    tok = load_model(model="qwen3")
    pair = make_pair(tok, "jinja:.", "hf:.")
    for conv in generate(60, seed=5, tools="any", reasoning="any"):
        for k in conv.assistant_indices:
            fast = pair.deploy.render(conv.prefix(k), detail=False)
            full = pair.deploy.render(conv.prefix(k), detail=True)
            assert fast.ids == full.ids and fast.text == full.text
            assert list(full.ids) == tok._full_encode(full.text)[0]


@pytest.mark.parametrize("model", [n for n in zoo_names() if n != "qwen3-alt"])
def test_post_processor_ids_wrap_like_add_special_tokens(model):
    """Renderers add ``special_prefix_ids``/``special_suffix_ids`` instead of re-tokenising with the slow
    ``hf(text, add_special_tokens=True)``: the same ids on real renderings."""
    tok = load_model(model=model)
    pair = make_pair(tok, "jinja:.", "hf:.,add_special_tokens=true")
    checked = 0
    for conv in generate(40, seed=3, tools="any", reasoning=False):
        try:
            text = pair.deploy.render_text(conv.prefix(conv.assistant_indices[-1]))
        except Exception:  # a template refusing the shape
            continue
        want = tok.encode(text, add_special_tokens=True)
        assert list(pair.deploy.render(conv.prefix(conv.assistant_indices[-1]), detail=False).ids) == want
        assert list(pair.deploy.render(conv.prefix(conv.assistant_indices[-1]), detail=True).ids) == want
        checked += 1
    assert checked > 0
