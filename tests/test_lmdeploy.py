"""``lmdeploy:chat_template.json``: our pure-Python LMDeploy 0.18 against the real ``lmdeploy`` package, and verdicts.

Fidelity: on 1,000 generated conversations (tools included), for every assistant index ``k``, the prompt text of
``LMDeployRenderer`` for ``messages[:k]`` equals the real ``ChatTemplateConfig.from_json(FILE).chat_template()
.messages2prompt(...)`` over the request dicts after the server's own ``merge_message_content``; the ids equal
the real ``lmdeploy.tokenizer.Tokenizer.encode(prompt, add_bos=True)`` (special tokens added, a doubled BOS
collapsed); the stop ids equal the real ``indexes_containing_token`` + tokenizer eos + generation_config eos.
Full agreement is asserted (no known divergence). The real ``Tokenizer`` wants a full model dir (config.json),
so it is built around the zoo's AutoTokenizer without its constructor; everything it then runs is the package's.
"""

from __future__ import annotations

import json
import os
from collections import deque

import pytest

from harness.api import load_model, make_pair
from harness.cli import main
from harness.errors import InputError
from harness.generate import generate
from harness.renderers.lmdeploy import load_template, lmdeploy_messages
from tests.conftest import fixture, result_of, sweep

pytestmark = pytest.mark.real_tokenizer

QWEN_JSON = fixture("lmdeploy/qwen2.5.chat_template.json")
MANGLED_JSON = fixture("lmdeploy/qwen2.5-mangled.chat_template.json")
BROKEN_JSON = fixture("lmdeploy/broken-syntax.chat_template.json")
N = 1000


@pytest.fixture(scope="module")
def real():
    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
    model = pytest.importorskip("lmdeploy.model", reason="pip install --no-deps -r requirements-engines.txt")
    from lmdeploy import tokenizer as lm_tokenizer
    from lmdeploy.serve.processors.multimodal import MultimodalProcessor
    from lmdeploy.utils import get_logger

    def real_tokenizer(tok):
        hf_tok = lm_tokenizer.HuggingFaceTokenizer.__new__(lm_tokenizer.HuggingFaceTokenizer)
        hf_tok.model, hf_tok.logger, hf_tok._prefix_space_tokens = tok.hf, get_logger("lmdeploy"), None
        hf_tok._vocab_size_with_added, hf_tok._maybe_decode_bytes = None, None
        hf_tok._indexes_tokens_deque, hf_tok.max_indexes_num, hf_tok.token2id = deque(maxlen=10), 5, {}
        wrapper = lm_tokenizer.Tokenizer.__new__(lm_tokenizer.Tokenizer)
        wrapper.model, wrapper.logger = hf_tok, get_logger("lmdeploy")
        return wrapper

    return model, MultimodalProcessor.merge_message_content, real_tokenizer


def real_template(real, path):
    model, _, _ = real
    return model.ChatTemplateConfig.from_json(path).chat_template()


def test_prompt_text_and_ids_match_real_lmdeploy(real, qwen):
    _, merge, real_tokenizer = real
    template = real_template(real, QWEN_JSON)
    assert type(template).__name__ == "BaseChatTemplate"  # an unknown model_name falls back to the base template
    lm_tok = real_tokenizer(qwen)
    ours = make_pair(qwen, "jinja:.", "lmdeploy:" + QWEN_JSON).deploy
    convs = prompts = agree_text = agree_ids = 0
    first: list[str] = []
    for conv in generate(N, seed=0, tools="any", reasoning=False):
        convs += 1
        for k in conv.assistant_indices:
            prompt = conv.prefix(k)
            prompts += 1
            request = [merge(m) for m in prompt.to_openai("request")["messages"]]
            want = template.messages2prompt(request, tools=prompt.tool_dicts())
            got = ours.render_text(prompt)
            agree_text += got == want
            want_ids = lm_tok.encode(want, add_bos=True)
            ok = list(ours.render(prompt).ids) == want_ids == list(ours.render(prompt, detail=False).ids)
            agree_ids += ok
            if (got != want or not ok) and len(first) < 3:
                first.append(f"{conv.to_json()[:300]}\n  ours={got[:200]!r}\n  real={want[:200]!r}")
    print(f"\nlmdeploy fidelity: {convs} conversations, {prompts} prompts: text agrees on {agree_text}, "
          f"ids on {agree_ids}")
    assert convs == N and prompts >= N
    assert agree_text == agree_ids == prompts, "\n".join(first)


def test_stop_ids_match_real_lmdeploy(real, qwen):
    _, _, real_tokenizer = real
    lm_tok = real_tokenizer(qwen)
    ours = make_pair(qwen, "jinja:.", "lmdeploy:" + QWEN_JSON).deploy
    want = set(lm_tok.indexes_containing_token("<|im_end|>")) | {lm_tok.eos_token_id} | set(qwen.generation_eos_ids)
    assert ours.stop_ids == frozenset(want) and qwen.token_id("<|im_end|>") in ours.stop_ids


def test_substring_stop_words_and_doubled_bos_match_real_lmdeploy(real, tmp_path):
    """Llama-3: a system box that writes <|begin_of_text|> gives two BOS (one added by the tokenizer): LMDeploy
    drops one. A stop word found inside many vocab tokens ("\\n\\n") stops on at most 5 exact ones; one that encodes
    to two ids ("izeComp", inside one vocab token) stops on nothing: LMDeploy drops it."""
    _, merge, real_tokenizer = real
    llama = load_model(model="llama3")
    path = tmp_path / "llama3.chat_template.json"
    path.write_text(json.dumps({
        "model_name": "my-llama3", "system": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n",
        "meta_instruction": "You are helpful.", "eosys": "<|eot_id|>",
        "user": "<|start_header_id|>user<|end_header_id|>\n\n", "eoh": "<|eot_id|>",
        "assistant": "<|start_header_id|>assistant<|end_header_id|>\n\n", "eoa": "<|eot_id|>",
        "stop_words": ["<|eot_id|>", "\n\n", "assistant", "izeComp"]}))
    template, lm_tok = real_template(real, str(path)), real_tokenizer(llama)
    ours = make_pair(llama, "jinja:" + fixture("templates/bos_chatml.jinja"), f"lmdeploy:{path}").deploy
    for conv in generate(60, seed=1, tools=False):
        prompt = conv.prefix(conv.assistant_indices[0])
        want = lm_tok.encode(template.messages2prompt([merge(m) for m in prompt.to_openai("request")["messages"]]))
        got = list(ours.render(prompt).ids)
        assert got == want == list(ours.render(prompt, detail=False).ids)
        assert got[0] == llama.bos_id != got[1]  # the tokenizer's BOS + the template's: one is dropped
    assert lm_tok.indexes_containing_token("izeComp") == []
    want_stops = {i for w in ["<|eot_id|>", "\n\n", "assistant", "izeComp"] for i in lm_tok.indexes_containing_token(w)}
    assert ours.stop_ids == frozenset(want_stops | {lm_tok.eos_token_id} | set(llama.generation_eos_ids))


def test_meta_instruction_only_without_a_system_message():
    t = load_template(QWEN_JSON)
    no_sys = t.messages2prompt([{"role": "user", "content": "hi"}])
    with_sys = t.messages2prompt([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}])
    assert "You are Qwen" in no_sys and "You are Qwen" not in with_sys
    prefill = t.messages2prompt([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure"}])
    assert prefill.endswith("<|im_start|>assistant\nSure")


def test_lmdeploy_vs_training_verdicts_on_qwen25():
    """The real verdicts on zoo Qwen2.5 (each failure inspected):

    * ``jinja:.`` (Qwen2.5's own template as TRL trains it), no tools → consistent: the JSON reproduces ChatML and
      the default system prompt exactly.
    * ``jinja:.`` with tools → inconsistent: LMDeploy's base template ignores ``tools`` (Qwen2.5 writes a ``# Tools``
      system block), renders call-only answers as empty content, and tool results without any box.
    * ``llamafactory:qwen`` → inconsistent on ``system``: LLaMA-Factory turns an explicit empty system message into
      its default system prompt, LMDeploy renders the empty system block as sent.
    """
    assert sweep("jinja:.", "lmdeploy:" + QWEN_JSON, tools=False).verdict == "consistent"
    tools = sweep("jinja:.", "lmdeploy:" + QWEN_JSON, checks=["prompt-prefix"])
    classes = {(c.cause, c.where) for c in result_of(tools, "prompt-prefix").classes}
    for expected in (("tools-rendered", "tools"), ("tools-rendered", "assistant.tool_calls"), ("tools-rendered", "tool")):
        assert expected in classes, classes
    lf = result_of(sweep("llamafactory:qwen", "lmdeploy:" + QWEN_JSON, tools=False, checks=["system"]), "system")
    assert lf.verdict == "fail" and "empty system" in lf.failure.explanation
    assert lf.failure.conversation.system == ""


def test_mangled_system_text_fails_with_a_clear_explanation():
    """The chatbot-converted JSON (every space lost from the default system text) fails `system` and
    `prompt-prefix`, with the first diverging token inside the system block."""
    target = sweep("jinja:.", "lmdeploy:" + MANGLED_JSON, tools=False, checks=["system", "prompt-prefix"])
    assert target.verdict == "inconsistent"
    system = result_of(target, "system")
    assert system.verdict == "fail" and "default system prompt" in system.failure.explanation
    assert system.failure.conversation.system is None
    head = system.failure.diff.headline()
    # '<|im_start|>system\nYou' agree; then ' are' (trained) vs 'are' (served): the lost space, in the system block
    assert head.startswith("At token 4 (messages[0] (template text))") and "'␠are' != 546 'are'" in head, head


def test_malformed_json_exits_2_with_line_and_column(capsys):
    code = main(["check", "--model", "qwen2.5", "--train", "jinja:.", "--deploy", "lmdeploy:" + BROKEN_JSON,
                 "--examples", "5"])
    err = capsys.readouterr().err
    assert code == 2
    flat = " ".join(err.split())
    assert "line 5, column 5" in flat and "broken-syntax.chat_template.json" in flat, err


@pytest.mark.parametrize("content,needle", [
    ({"model_name": "x", "sytem": "a"}, "unknown field(s) 'sytem'"),
    ({"model_name": "x", "eoa": 5}, "field 'eoa'=5 (type=int) must be a string"),
    ({"model_name": "x", "stop_words": "<|im_end|>"}, "must be a list of strings"),
    ({"model_name": "llama2", "user": "u"}, "built-in LMDeploy template"),
    (["not", "an", "object"], "not an object"),
])
def test_bad_fields_are_input_errors(tmp_path, content, needle):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError) as info:
        load_template(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_dotted_model_name_breaks_real_lmdeploy_and_is_an_input_error(real, tmp_path):
    """Surprise: ``"model_name": "qwen2.5"`` cannot be served — mmengine's Registry reads ``qwen2`` as a scope."""
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"model_name": "qwen2.5", "user": "U:"}))
    with pytest.raises(TypeError, match="not callable"):
        real_template(real, str(path))
    with pytest.raises(InputError, match="contains '.'"):
        load_template(path)


def test_null_fields_take_base_defaults(tmp_path):
    """A file without meta_instruction still emits ``system + '' + eosys`` (BaseChatTemplate's default is '')."""
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"system": "<S>", "eosys": "</S>", "user": "U:", "meta_instruction": None}))
    assert load_template(path).messages2prompt([{"role": "user", "content": "hi"}]) == "<S></S>U:hi"


def test_messages_are_request_dicts_with_empty_content_for_calls():
    conv = next(c for c in generate(50, seed=0, tools=True) if any(m.tool_calls and m.content is None
                                                                     for m in c.messages))
    msgs = lmdeploy_messages(conv)
    assert all(isinstance(m["content"], str) for m in msgs)
