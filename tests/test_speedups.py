"""The word/sentence-cut tokenisation and the sandbox's dict fast path equal the slow, obvious paths."""

from __future__ import annotations

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness.api import load_model, make_pair
from harness.generate import generate
from harness.sandbox import _ENV, _StrictSandbox
from harness.tokenizer import _CHUNK_PROBES, PROBES
from harness.zoo import zoo_names


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model", [n for n in zoo_names() if n != "qwen3-alt"])
def test_word_cut_encoding_equals_whole_string_encoding(model):
    tok = load_model(model=model)
    if not tok.split_at_added_tokens:
        assert not tok.split_at_words or tok._splitter is None
        pytest.skip(f"{model}: no split fast path (SentencePiece-style)")
    assert tok.split_at_words, f"{model}: byte-level BPE, the word cut should pass its self-check"
    pair = make_pair(tok, "jinja:.", "hf:.")
    texts = list(PROBES + _CHUNK_PROBES)
    for conv in generate(120, seed=23, tools="any", reasoning="any"):
        try:
            texts.append(pair.train.render_text(conv))
        except Exception:  # templates refuse some shapes (raise_exception)
            continue
    for text in texts:
        assert tok._split_encode(text) == tok._full_encode(text), text[:200]
        assert list(tok._encode_uncached(text)) == tok._full_encode(text)[0], text[:200]


def test_sentencepiece_tokenizers_do_not_cut_words():
    assert load_model(model="mistral-v3").split_at_words is False


_PROBE_TEMPLATE = (
    "{% for m in messages %}{{ m.role }}|{{ m.content }}|{{ m.missing is defined }}"
    "|{{ m.get('role') }}|{{ m.keys() | list | length }}|{{ m['content'] }}|{{ m.tool_calls[0].function.name "
    "if m.tool_calls is defined else '-' }}\n{% endfor %}{{ ns.x if ns is defined }}"
)


def test_dict_fast_path_matches_the_sandbox():
    plain = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo", "items": "shadow", "keys": "k",
                 "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]
    want = plain.from_string(_PROBE_TEMPLATE).render(messages=messages)
    got = _ENV.from_string(_PROBE_TEMPLATE).render(messages=messages)
    assert got == want
    strict = _StrictSandbox()
    base = ImmutableSandboxedEnvironment()
    d = {"role": "user", "pop": 1, "__class__": 2}
    for name in ("role", "nope", "items", "get"):
        a, b = strict.getattr(d, name), base.getattr(d, name)
        assert type(a) is type(b) and (a == b or isinstance(a, jinja2.Undefined)), name
    for name in ("pop", "__class__"):  # unsafe on dict: blocked (the strict sandbox raises), the key is not read
        with pytest.raises(jinja2.exceptions.SecurityError):
            strict.getattr(d, name)


class _Sub(dict):
    pass


def test_dict_subclasses_take_the_sandbox_path():
    sub = _Sub(role="x")
    sub.extra = "attr"  # type: ignore[attr-defined]
    assert _StrictSandbox().getattr(sub, "extra") == ImmutableSandboxedEnvironment().getattr(sub, "extra") == "attr"


def test_loop_fast_path_matches_the_sandbox():
    """``loop.index0`` and the other loop properties skip the sandbox's checks; what they give is what the sandbox
    gives, at every position of nested loops, and ``loop``'s internals stay blocked."""
    from harness.sandbox import _LOOP_ATTRIBUTES

    names = sorted(_LOOP_ATTRIBUTES)
    probe = ("{% for a in xs %}{% for b in xs %}" + "".join(f"{{{{ loop.{n} }}}}," for n in names)
             + "{{ loop.cycle('p', 'q') }}|{% endfor %}{{ loop.index }}{% endfor %}")
    plain = ImmutableSandboxedEnvironment()
    assert _ENV.from_string(probe).render(xs=[1, 2, 3]) == plain.from_string(probe).render(xs=[1, 2, 3])
    with pytest.raises(jinja2.exceptions.SecurityError):
        _ENV.from_string("{% for x in xs %}{{ loop.__class__.__init__ }}{% endfor %}").render(xs=[1])


def test_tojson_memo_never_serves_another_objects_text():
    """``tojson`` is serialised once per dict/list object; a new object (even one that reuses a freed object's id)
    and other arguments get their own text."""
    t = _ENV.from_string("{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ x | tojson(sort_keys=true) }}")
    for n in range(3000):  # dicts built and dropped one after another: CPython reuses their ids
        x = {"b": n, "a": [n, str(n)]}
        assert t.render(x=x) == (f'{{"b": {n}, "a": [{n}, "{n}"]}}|{{\n  "b": {n},\n  "a": [\n    {n},\n    "{n}"\n  ]\n}}'
                                 f'|{{"a": [{n}, "{n}"], "b": {n}}}')
