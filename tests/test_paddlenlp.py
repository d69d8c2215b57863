"""``paddlenlp:`` — PaddleNLP's chat_template.json training encoding, checked against PaddleNLP's own code.

The reference is built independently of the renderer: PaddleNLP 2.8.1's ``ChatTemplate`` and
``ChatTemplateMixin.encode_chat_inputs`` (from the installed wheel) over the transformers tokenizer's own
``__call__`` (not the harness's cached encoder), assembled as ``tokenize_rounds_example`` does. When
``PADDLENLP_LLM_DATA`` names PaddleNLP's ``llm/utils/data.py`` (not in the wheel), its real
``tokenize_rounds_example`` is executed instead, truncation included.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.conversation import Conversation
from harness.errors import RenderRejected
from harness.generate import generate
from tests.conftest import fixture

try:
    from harness._paddlenlp_real import load

    REAL = load()
except Exception as exc:  # noqa: BLE001
    pytest.skip(f"paddlenlp is not installed ({exc}); pip install --no-deps -r requirements-paddlenlp.txt",
                allow_module_level=True)

from harness.renderers.paddlenlp import PaddleNLPRenderer, keep_lengths  # noqa: E402

pytestmark = pytest.mark.real_tokenizer
TEMPLATES = ["qwen2.5_chatml_chat_template.json", "qwen_docs_chat_template.json",
             "paddlenlp_tests_chat_template.json", "paddlenlp_tests_chat_template_with_context.json"]


def renderer(tok, name: str, **options) -> PaddleNLPRenderer:
    return PaddleNLPRenderer(f"paddlenlp:{name}", tok, fixture(f"paddlenlp/{name}"), options)


def _real_tokenize_rounds_example():
    """PaddleNLP's own ``tokenize_rounds_example`` from ``$PADDLENLP_LLM_DATA``, or None."""
    path = os.environ.get("PADDLENLP_LLM_DATA")
    if not path:
        return None
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "tokenize_rounds_example")
    ns: dict = {}
    exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), ns)  # noqa: S102
    return ns["tokenize_rounds_example"]


def reference(tok, path: str, record: dict, max_length: int | None = None, src_length: int | None = None):
    """(input_ids, labels as bools) as PaddleNLP builds them, from its real classes over HF's tokenizer."""

    class HFPaddle(REAL.ChatTemplateMixin):
        model_input_names = ["input_ids"]

        def encode(self, text, add_special_tokens=True):
            return {"input_ids": list(tok.hf(text, add_special_tokens=add_special_tokens)["input_ids"])}

    paddle = HFPaddle()
    paddle.chat_template = REAL.ChatTemplate.from_file(path)
    example = {"src": list(record["src"]), "tgt": list(record["tgt"]), "context": dict(record["context"])}
    real = _real_tokenize_rounds_example()
    if real is not None:
        big = 1 << 30
        args = SimpleNamespace(max_length=max_length or big, src_length=src_length or max_length or big)
        source, labels = real(paddle, example, args)
        return source["input_ids"], [x != -100 for x in labels]
    assert max_length is None, "truncation fidelity needs PADDLENLP_LLM_DATA"
    out = paddle.encode_chat_inputs([[s, t] for s, t in zip(example["src"], example["tgt"])],
                                    context_data=dict(example["context"], is_training=True))
    ids, labels = list(out.get("system") or []), [False] * len(out.get("system") or [])
    for user, bot in out["conversations"]:
        ids += user + bot
        labels += [False] * len(user) + [True] * len(bot)
    return ids, labels


def agreement(tok, name: str, n: int, seed: int, **options) -> tuple[int, int, int]:
    """(agreeing, compared, rejected) over ``n`` generated conversations."""
    r = renderer(tok, name, **options)
    same = compared = rejected = 0
    for conv in generate(n, seed=seed, tools=False, reasoning=False, system="any" if r.system_slot else "absent"):
        try:
            enc = r.render(conv)
        except RenderRejected:
            rejected += 1
            continue
        ids, labels = reference(tok, fixture(f"paddlenlp/{name}"), enc.extra["record"], **options)
        compared += 1
        same += list(enc.ids) == list(ids) and list(enc.labels) == labels
    return same, compared, rejected


@pytest.mark.parametrize("name", TEMPLATES[:2])
def test_ids_and_labels_equal_paddlenlps_own_encoding(qwen, name):
    same, compared, _ = agreement(qwen, name, 40, seed=3)
    assert compared >= 20 and same == compared


@pytest.mark.slow
@pytest.mark.parametrize("name", TEMPLATES)
def test_agreement_1000(qwen, name):
    same, compared, rejected = agreement(qwen, name, 1400, seed=11)
    print(f"\nAGREEMENT {name}: {same}/{compared} equal (ids and labels), {rejected} rejected")
    assert compared >= 1000 and same == compared


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PADDLENLP_LLM_DATA"), reason="needs PaddleNLP's llm/utils/data.py")
@pytest.mark.parametrize("limits", [(64, None), (200, None), (120, 40)])
def test_truncation_agrees_with_real_tokenize_rounds_example(qwen, limits):
    max_length, src_length = limits
    same, compared, rejected = agreement(qwen, TEMPLATES[0], 1200, seed=5, max_length=max_length,
                                         src_length=src_length)
    print(f"\nTRUNCATION max_length={max_length} src_length={src_length}: {same}/{compared} equal, {rejected} rejected")
    assert compared >= 1000 and same == compared


def chat(*turns, system=None):
    msgs = ([{"role": "system", "content": system}] if system is not None else [])
    msgs += [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    return Conversation.from_openai(msgs)


def test_labels_cover_exactly_the_bot_parts(qwen):
    enc = renderer(qwen, TEMPLATES[0]).render(chat("Hi", "Hello!", "Sum 2+2", "4", system="Be brief."))
    trained = "".join(qwen.piece(i) for i, lab in zip(enc.ids, enc.labels) if lab)
    assert trained == "Hello!<|im_end|>\n4<|im_end|>\n"
    assert [a.message for a in enc.answers] == [2, 4]
    assert all(enc.labels[a.start:a.end] == (True,) * (a.end - a.start) for a in enc.answers)
    assert enc.text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_system_comes_from_context_and_default_applies_without_one(qwen):
    r = renderer(qwen, TEMPLATES[0])
    assert "You are Qwen" in r.render(chat("Hi", "Yo")).text
    assert "You are Qwen" not in r.render(chat("Hi", "Yo", system="")).text


def test_truncation_one_round_is_system_plus_round_cut_at_max_length(qwen):
    conv = chat("word " * 50, "answer " * 50, system="S")
    full = renderer(qwen, TEMPLATES[0]).render(conv)
    cut = renderer(qwen, TEMPLATES[0], max_length=90).render(conv)
    assert cut.ids == full.ids[:90] and cut.labels == full.labels[:90] and 0 < sum(cut.labels) < sum(full.labels)
    assert cut.extra["kept_messages"] == (0, 1, 2)


def test_truncation_one_round_user_cut_at_src_length(qwen):
    conv = chat("word " * 50, "answer " * 50, system="S")
    full = renderer(qwen, TEMPLATES[0]).render(conv)
    system = full.labels.index(False) and next(i for i, s in enumerate(full.segments or ()) if i == 0)
    sys_len = len(qwen.encode(full.segments[0]))
    cut = renderer(qwen, TEMPLATES[0], max_length=60, src_length=sys_len + 10).render(conv)
    assert cut.ids[:sys_len + 10] == full.ids[:sys_len + 10] and len(cut.ids) == 60 and system == 0
    assert sum(cut.labels) == 60 - sys_len - 10


def test_truncation_drops_the_crossing_round_and_all_earlier(qwen):
    conv = chat("a", "b", "long " * 100, "c", "d", "e", system="S")
    r = renderer(qwen, TEMPLATES[0], max_length=120)
    enc = r.render(conv)
    assert enc.extra["kept_messages"] == (0, 5, 6)
    assert [a.message for a in enc.answers] == [6]
    assert "long" not in enc.text and enc.text.endswith("d<|im_end|>\n<|im_start|>assistant\ne<|im_end|>\n")


def test_system_never_truncated_and_too_long_system_rejected(qwen):
    conv = chat("hi", "yo", system="sys " * 40)
    enc = renderer(qwen, TEMPLATES[0], max_length=48).render(conv)
    assert enc.text.startswith("<|im_start|>system\n" + "sys " * 40)
    with pytest.raises(RenderRejected, match="max_length"):
        renderer(qwen, TEMPLATES[0], max_length=40).render(conv)


def test_keep_lengths_rules():
    assert keep_lengths(5, [(3, 3), (4, 4)], None, None) == [(0, 3, 3), (1, 4, 4)]
    assert keep_lengths(5, [(3, 3), (4, 4)], 13, None) == [(1, 4, 4)]
    assert keep_lengths(5, [(30, 30)], 20, None) == [(0, 15, 0)]
    assert keep_lengths(5, [(30, 30)], 20, 10) == [(0, 5, 10)]


@pytest.mark.parametrize("messages, reason", [
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": None,
      "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "c", "content": "1"}, {"role": "assistant", "content": "ok"}], "tool"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "reasoning_content": "r"}], "reasoning"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
     "alternate"),
])
def test_inexpressible_conversations_rejected(qwen, messages, reason):
    with pytest.raises(RenderRejected, match=reason):
        renderer(qwen, TEMPLATES[0]).render(Conversation.from_openai(messages))


def test_fixed_system_template_rejects_a_system_message(qwen):
    with pytest.raises(RenderRejected, match="no \\{\\{system\\}\\} slot"):
        renderer(qwen, TEMPLATES[1]).render(chat("a", "b", system="custom"))
    assert renderer(qwen, TEMPLATES[1]).render(chat("a", "b")).text.startswith("You are a helpful assistant.\n<|im")


@pytest.mark.parametrize("content, needle", [
    (None, "no such file"),
    ("{not json", "not valid JSON"),
    ('{"system": "x", "query": "{{query}}"}', "no \"conversation\" field"),
    ('{"conversation": ["{{user}", "{{bot}}"]}', "does not compile as Jinja"),
    ('{"system": "{{system | \'default\'}}", "conversation": ["{{user}}", "{{bot}}"]}', "does not compile as Jinja"),
    ('{"chat_template": "{{ messages }}"}', "HF-style"),
    ('{"conversation": ["{{user}}"]}', "list of two strings"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, content, needle):
    from harness.cli import main

    path = tmp_path / "chat_template.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code = main(["check", "--model", "qwen2.5", "--train", f"paddlenlp:{path}", "--deploy", "hf:.", "--examples", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("harness: error:") and needle in err[0], err


def test_model_dir_holding_chat_template_json(qwen, tmp_path):
    (tmp_path / "chat_template.json").write_text(Path(fixture(f"paddlenlp/{TEMPLATES[0]}")).read_text())
    r = PaddleNLPRenderer("paddlenlp:dir", qwen, str(tmp_path), {})
    assert r.render(chat("a", "b")).ids == renderer(qwen, TEMPLATES[0]).render(chat("a", "b")).ids
