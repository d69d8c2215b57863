"""``xtuner:`` — XTuner 0.2.0's real template_map_fn + encode_fn: fidelity, labels, bos/SEP/suffix rules,
max_length truncation, config.py parsing without running it, rejections, bad input → exit 2."""

from __future__ import annotations

import pytest

from harness.conversation import Conversation
from harness.errors import HarnessError, RenderRejected
from harness.generate import generate

xtuner = pytest.importorskip("harness._xtuner_stub").load  # InputError (skip below) when xtuner is missing
pytestmark = pytest.mark.real_tokenizer

try:
    XT = xtuner()
except HarnessError as exc:  # pragma: no cover - optional extra
    pytest.skip(f"xtuner not installed: {exc}", allow_module_level=True)

from benchmarks.xtuner_agreement import agreement  # noqa: E402
from harness.cli import main  # noqa: E402
from harness.renderers.xtuner import XTunerRenderer  # noqa: E402
from harness.zoo import load_zoo_tokenizer  # noqa: E402

CONFIGS = __import__("pathlib").Path(XT.source) / "configs"


def conv(*pairs, system=None):
    msgs = ([{"role": "system", "content": system}] if system is not None else [])
    for user, answer in pairs:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return Conversation.from_openai(msgs)


def renderer(model, template, **options):
    return XTunerRenderer(f"xtuner:{template}", load_zoo_tokenizer(model), template, options)


@pytest.mark.parametrize("model,template", [("qwen2.5", "qwen_chat"), ("qwen2.5", "internlm2_chat"),
                                            ("llama3", "llama3_chat"), ("llama3", "default")])
def test_fidelity_against_the_real_encode_fn_on_the_transformers_tokenizer(model, template):
    counts = agreement(model, template, 40, seed=7)
    assert counts == {**counts, "ids_equal": 40, "labels_equal": 40, "rebuild_equal": 40, "labels_are_answers": 40}


@pytest.mark.slow
@pytest.mark.parametrize("model,template", [("qwen2.5", "qwen_chat"), ("qwen2.5", "internlm2_chat"),
                                            ("llama3", "llama3_chat")])
@pytest.mark.parametrize("cut", [None, 256])
def test_fidelity_1000(model, template, cut):
    counts = agreement(model, template, 1000, seed=0, max_length=cut)
    n = counts["conversations"]
    assert n == 1000 and counts["ids_equal"] == counts["labels_equal"] == counts["labels_are_answers"] == n


def test_qwen_chat_layout_labels_and_stops():
    r = renderer("qwen2.5", "qwen_chat")
    e = r.render(conv(("Hi", "Hello"), ("More", "Sure"), system="Be brief."))
    assert e.text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
                      "Hello<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\nSure<|im_end|>\n")
    trained = r.tokenizer.hf.decode([i for i, lab in zip(e.ids, e.labels) if lab])
    assert trained == "Hello<|im_end|>Sure<|im_end|>"  # SUFFIX trained, SEP '\n' and prompts not
    assert e.ids[0] != r.tokenizer.hf.bos_token_id and r.bos_ids == []  # Qwen: no bos at all
    im_end, eot = (r.tokenizer.hf.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>"))
    assert r.stop_ids == {im_end, eot}  # SUFFIX_AS_EOS + STOP_WORDS; the eos is never appended
    assert [a.message for a in e.answers] == [2, 4] and "kept_messages" not in e.extra


def test_bos_once_with_suffix_as_eos_and_before_every_turn_without():
    tok = load_zoo_tokenizer("llama3")
    bos, eos = tok.hf.bos_token_id, tok.hf.eos_token_id
    two = conv(("a", "b"), ("c", "d"))
    chat = renderer("llama3", "llama3_chat").render(two)
    assert chat.ids.count(bos) == 1 and chat.ids[0] == bos and eos not in chat.ids  # suffix <|eot_id|> as eos
    plain = renderer("llama3", "default")  # no SUFFIX: eos appended (trained), then bos again, SEP '\n' untrained
    e = plain.render(two)
    assert e.ids.count(bos) == 2 and e.ids.count(eos) == 2
    assert e.text == "<|begin_of_text|><|User|>:a\n<|Bot|>:b<|end_of_text|>\n<|begin_of_text|><|User|>:c\n<|Bot|>:d<|end_of_text|>\n"
    eos_at = [i for i, t in enumerate(e.ids) if t == eos]
    assert all(e.labels[i] for i in eos_at) and not e.labels[eos_at[0] + 1]  # eos trained, SEP not
    assert plain.stop_ids == {eos} and e.answers[0].end == eos_at[0] + 1


def test_max_length_truncation_keeps_what_encode_fn_keeps():
    long = conv(("one " * 20, "two " * 20), ("three " * 20, "four " * 20), system="sys")
    full = renderer("qwen2.5", "qwen_chat").render(long)
    second_answer = full.answers[1]
    cut = second_answer.start + 3  # inside the second answer
    r = renderer("qwen2.5", "qwen_chat", max_length=cut)
    e = r.render(long)
    ids, labels = r.encode_xtuner(long)
    assert list(e.ids) == ids == list(full.ids[:cut]) and len(e.labels) == cut
    assert e.extra["kept_messages"] == (0, 1, 2, 3, 4)  # the last answer partly kept
    assert [(a.message, a.end) for a in e.answers] == [(2, full.answers[0].end), (4, cut)]
    before = renderer("qwen2.5", "qwen_chat", max_length=second_answer.start - 5).render(long)
    assert before.extra["kept_messages"] == (0, 1, 2, 3) and [a.message for a in before.answers] == [2]
    assert not any(before.labels[full.answers[0].end:])
    with pytest.raises(RenderRejected, match="no label survives"):
        renderer("qwen2.5", "qwen_chat", max_length=5).render(long)


def test_config_py_is_read_without_running_it(tmp_path):
    real = CONFIGS / "qwen/qwen1_5/qwen1_5_0_5b_chat/qwen1_5_0_5b_chat_qlora_alpaca_e3.py"
    r = XTunerRenderer(f"xtuner:{real}", load_zoo_tokenizer("qwen2.5"), str(real), {})
    assert (r.template_name, r.max_length) == ("qwen_chat", 2048)
    planted = tmp_path / "cfg.py"
    planted.write_text("import os\nos.system('touch PWNED')\nprompt_template = PROMPT_TEMPLATE['llama3_chat']\n"
                       "max_length = int(2048 - (336 / 14)**2)\n")
    r = XTunerRenderer(f"xtuner:{planted}", load_zoo_tokenizer("llama3"), str(planted), {"max_length": 99})
    assert (r.template_name, r.max_length) == ("llama3_chat", 99)  # the spec option wins over the config
    assert not (tmp_path / "PWNED").exists()


def test_every_shipped_sft_config_parses():
    """XTuner's own configs: every one that assigns prompt_template is read; the rest say so."""
    from harness.errors import InputError
    from harness.xtuner_config import read_config

    read, missing = 0, 0
    for path in sorted(CONFIGS.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        try:
            cfg = read_config(path, "x")
            assert cfg.prompt_template in XT.prompt_template and cfg.max_length
            read += 1
        except InputError as exc:
            assert "assigns no prompt_template" in str(exc), exc
            missing += 1
    assert read > 500 and missing < 60


@pytest.mark.parametrize("body,needle", [
    ("prompt_template = make()\nmax_length = 10\n", "line 1: prompt_template = 'make()' is not PROMPT_TEMPLATE.NAME"),
    ("prompt_template = PROMPT_TEMPLATE.qwen_chat\nmax_length = L * 2\n", "line 2: max_length = 'L * 2'"),
    ("prompt_template = PROMPT_TEMPLATE.nope\n", "unknown XTuner 0.2.0 prompt template; known: baichuan2_chat"),
    ("max_length = 10\n", "assigns no prompt_template"),
    ("def (:\n", "is not valid Python"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, capsys, body, needle):
    cfg = tmp_path / "bad_config.py"
    cfg.write_text(body)
    rc = main(["check", "--model", "qwen2.5", "--train", f"xtuner:{cfg}", "--deploy", "hf:.", "--examples", "2",
               "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("harness: error:") and needle in err[0], err


def test_unknown_template_name_lists_the_names(tmp_path, capsys):
    rc = main(["check", "--model", "qwen2.5", "--train", "xtuner:qwen", "--deploy", "hf:.", "--examples", "2",
               "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "qwen_chat" in err[0] and "llama3_chat" in err[0] and "internlm2_chat" in err[0]


@pytest.mark.parametrize("messages,reason", [
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}],
     "no two users in a row"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": None,
                                         "tool_calls": [{"id": "1", "type": "function", "function": {
                                             "name": "f", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "1", "content": "r"}, {"role": "assistant", "content": "d"}], "tool"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "reasoning_content": "think"}],
     "reasoning"),
    ([{"role": "assistant", "content": "b"}], "does not follow a user"),
])
def test_inexpressible_conversations_are_rejected(messages, reason):
    with pytest.raises(RenderRejected, match=reason):
        renderer("qwen2.5", "qwen_chat").render(Conversation.from_openai(messages))


def test_every_prompt_template_renders_a_conversation():
    tok = load_zoo_tokenizer("llama3")
    for name in XT.prompt_template:
        r = XTunerRenderer(f"xtuner:{name}", tok, name, {})
        for c in generate(5, seed=3, tools=False, reasoning=False):
            if "SYSTEM" not in r.template and c.messages[0].role == "system" and c.messages[0].content:
                with pytest.raises(RenderRejected, match="has no SYSTEM"):
                    r.render(c)
                with pytest.raises(AttributeError):  # the real template_map_fn fails on it too
                    XT.template_map_fn({"conversation": [{"system": "s", "input": "i", "output": "o"}]}, r.template)
                continue
            e = r.render(c)
            assert list(e.ids) == r.encode_xtuner(c)[0] and not e.extra.get("approximate"), name
