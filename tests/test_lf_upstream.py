"""LLaMA-Factory's own template tests (tests/data/test_template.py at tag v0.9.5), reproduced on the harness.

Upstream loads hub tokenizers; here each is mapped to the zoo model with the same tokenizer:
  * ``llamafactory/tiny-random-Llama-3`` and ``meta-llama/Meta-Llama-3-8B-Instruct`` → zoo ``llama3``
    (Llama-3.2 tokenizer: the same 128k vocab and the same <|begin_of_text|>/<|eot_id|> ids; its *chat template*
    is Meta's Llama-3.2 one, not Llama-3's, so the apply_chat_template halves are compared with that);
  * ``Qwen/Qwen3-8B`` → zoo ``qwen3``; ``Qwen/Qwen2.5-7B-Instruct`` → zoo ``qwen2.5``.
Upstream calls ``template.encode_oneturn`` / ``encode_multiturn`` directly; the harness's ``llamafactory:``
renderer goes through the supervised processor (``encode_multiturn``, plus ``discarding_history_cot`` =
``mask_history and not preserve_thinking``), so ``encode_oneturn`` cases map to ``mask_history=true`` (same
ids, loss on the last answer only) and ``discarding_history_cot`` to ``mask_history``. Every case asserts the
harness's ids and labels, split at its own answer boundaries, equal upstream's expected strings encoded.

Not reproduced (counted in ``SKIPPED``): no zoo tokenizer (gemma, gemma2, llama4, phi4); Llama-3's chat template
(parse_llama3, jinja_template: the zoo llama3 carries Llama-3.2's); ollama Modelfile (no harness renderer in
this tree); ``enable_thinking=None`` (6 parametrisations: the harness spec accepts only true/false).
"""

from __future__ import annotations

import pytest

from harness.conversation import Conversation
from harness.errors import InputError

try:
    from harness.renderers.llamafactory.upstream import import_llamafactory

    import_llamafactory()
except InputError as exc:  # the optional extra is not installed
    pytest.skip(f"llamafactory is not importable ({exc})", allow_module_level=True)

from harness.api import load_model  # noqa: E402
from harness.specs import build_renderer  # noqa: E402

pytestmark = pytest.mark.real_tokenizer

SKIPPED = {
    "test_gemma_template": "no zoo tokenizer (google/gemma-3-4b-it)",
    "test_gemma2_template": "no zoo tokenizer (google/gemma-2-2b-it)",
    "test_llama4_template": "no zoo tokenizer (tiny-random-Llama-4)",
    "test_phi4_template": "no zoo tokenizer (microsoft/phi-4)",
    "test_parse_llama3_template": "needs Llama-3's chat template; the zoo llama3 has Llama-3.2's",
    "test_jinja_template": "compares with Llama-3's chat template; the zoo llama3 has Llama-3.2's",
    "test_ollama_modelfile": "no ollama renderer in this tree",
    "test_reasoning_encode_oneturn[enable_thinking=None] x2": "enable_thinking=None is not a harness option",
    "test_reasoning_encode_multiturn[enable_thinking=None] x2": "enable_thinking=None is not a harness option",
    "test_reasoning_encode_multiturn_discarding_history_cot[enable_thinking=None] x2":
        "enable_thinking=None is not a harness option",
}
UPSTREAM_CASES = 34  # parametrisations in v0.9.5 tests/data/test_template.py

MESSAGES = [
    {"role": "user", "content": "How are you"},
    {"role": "assistant", "content": "I am fine!"},
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "很高兴认识你！"},
]
THOUGHTS = ("Model thought here", "模型思考内容")
WITH_THOUGHT = [
    MESSAGES[0], {"role": "assistant", "content": "<think>\nModel thought here\n</think>\n\nI am fine!"},
    MESSAGES[2], {"role": "assistant", "content": "<think>\n模型思考内容\n</think>\n\n很高兴认识你！"},
]
EMPTY_COT = "<think>\n\n</think>\n\n"


def conversation(cot: bool = False) -> Conversation:
    """Upstream's messages in the harness's data form (reasoning as a field; LF gets it back as thought words)."""
    msgs = [dict(m) for m in MESSAGES]
    if cot:
        msgs[1]["reasoning_content"], msgs[3]["reasoning_content"] = THOUGHTS
    return Conversation.from_openai({"messages": msgs})


_TOKENIZERS: dict = {}


def tok(model: str):
    if model not in _TOKENIZERS:
        _TOKENIZERS[model] = load_model(model=model)
    return _TOKENIZERS[model]


def render(model: str, spec: str, conv: Conversation):
    renderer = build_renderer(spec, tok(model), side="train")
    return renderer, renderer.render(conv)


def split(enc) -> list[tuple[int, ...]]:
    """(prompt, answer) id pieces at the harness's own answer boundaries; the last answer runs to the end."""
    out, pos = [], 0
    for n, ans in enumerate(enc.answers):
        end = len(enc.ids) if n == len(enc.answers) - 1 else ans.end
        out += [enc.ids[pos:ans.start], enc.ids[ans.start:end]]
        pos = end
    return out


def assert_tokenization(model: str, pieces, texts) -> None:
    """Upstream's _check_tokenization: encode(text) == ids and decode(ids) == text, piece by piece."""
    hf = tok(model).hf
    assert len(pieces) == len(texts)
    for ids, text in zip(pieces, texts):
        assert list(ids) == hf.encode(text, add_special_tokens=False), text
        assert hf.decode(list(ids)) == text


def assert_labels(enc, trained: list[bool]) -> None:
    """Loss exactly on the ids of every answer marked trained (one flag per answer, in order) and nowhere else."""
    assert len(enc.answers) == len(trained), [a.message for a in enc.answers]
    want = [False] * len(enc.ids)
    for ans, on in zip(enc.answers, trained):
        want[ans.start:ans.end] = [on] * (ans.end - ans.start)
    assert list(enc.labels) == want


# --- llama3 (tiny-random-Llama-3 → zoo llama3) ------------------------------------------------------------
LLAMA3_P1 = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHow are you<|eot_id|>"
             "<|start_header_id|>assistant<|end_header_id|>\n\n")
LLAMA3_A1 = "I am fine!<|eot_id|>"
LLAMA3_P2 = "<|start_header_id|>user<|end_header_id|>\n\n你好<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
LLAMA3_A2 = "很高兴认识你！<|eot_id|>"


def test_encode_oneturn():
    _, enc = render("llama3", "llamafactory:llama3,mask_history=true", conversation())
    prompt, answer = enc.ids[:enc.answers[-1].start], enc.ids[enc.answers[-1].start:]
    assert_tokenization("llama3", (prompt, answer), (LLAMA3_P1 + LLAMA3_A1 + LLAMA3_P2, LLAMA3_A2))
    assert enc.labels == tuple(i >= len(prompt) for i in range(len(enc.ids)))


def test_encode_multiturn():
    _, enc = render("llama3", "llamafactory:llama3", conversation())
    assert_tokenization("llama3", split(enc), (LLAMA3_P1, LLAMA3_A1, LLAMA3_P2, LLAMA3_A2))
    assert_labels(enc, [True, True])


def test_get_stop_token_ids():
    renderer, _ = render("llama3", "llamafactory:llama3", conversation())
    assert set(renderer.stop_ids) == {128008, 128009}


def test_llama3_template():
    """Upstream: prompt/answer strings, and equality with Meta-Llama-3-8B-Instruct's own template. The strings
    reproduce; the zoo's Llama-3.2 template differs (it always writes a dated system block) — the harness's
    prompt-prefix check reports exactly that (docs/llamafactory.md)."""
    _, enc = render("llama3", "llamafactory:llama3,mask_history=true", conversation())
    prompt, answer = enc.ids[:enc.answers[-1].start], enc.ids[enc.answers[-1].start:]
    assert_tokenization("llama3", (prompt, answer), (LLAMA3_P1 + LLAMA3_A1 + LLAMA3_P2, LLAMA3_A2))
    served = build_renderer("hf:.", tok("llama3"), side="deploy").render(conversation(), add_generation_prompt=False)
    assert served.text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge")
    assert served.ids != enc.ids


# --- qwen3 (Qwen/Qwen3-8B → zoo qwen3) ---------------------------------------------------------------------
def qp(i: int) -> str:
    return f"<|im_start|>user\n{MESSAGES[i]['content']}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("enable_thinking", [True, False])
@pytest.mark.parametrize("cot", [True, False])
def test_reasoning_encode_oneturn(cot, enable_thinking):
    spec = f"llamafactory:qwen3,mask_history=true,enable_thinking={str(enable_thinking).lower()}"
    _, enc = render("qwen3", spec, conversation(cot))
    prompt_str = qp(0) + f"{MESSAGES[1]['content']}<|im_end|>\n" + qp(2)
    if not cot or enable_thinking is False:
        answer_str = f"{MESSAGES[3]['content']}<|im_end|>\n"
        if enable_thinking:
            answer_str = EMPTY_COT + answer_str
        else:
            prompt_str += EMPTY_COT
    else:
        answer_str = f"{WITH_THOUGHT[3]['content']}<|im_end|>\n"
    start = enc.answers[-1].start
    assert_tokenization("qwen3", (enc.ids[:start], enc.ids[start:]), (prompt_str, answer_str))
    assert enc.labels == tuple(i >= start for i in range(len(enc.ids)))


@pytest.mark.parametrize("enable_thinking", [True, False])
@pytest.mark.parametrize("cot", [True, False])
def test_reasoning_encode_multiturn(cot, enable_thinking):
    _, enc = render("qwen3", f"llamafactory:qwen3,enable_thinking={str(enable_thinking).lower()}", conversation(cot))
    messages = MESSAGES if not cot or enable_thinking is False else WITH_THOUGHT
    p1, p2 = qp(0), qp(2)
    a1, a2 = f"{messages[1]['content']}<|im_end|>\n", f"{messages[3]['content']}<|im_end|>\n"
    if not cot or enable_thinking is False:
        if enable_thinking:
            a1, a2 = EMPTY_COT + a1, EMPTY_COT + a2
        else:
            p1, p2 = p1 + EMPTY_COT, p2 + EMPTY_COT
    assert_tokenization("qwen3", split(enc), (p1, a1, p2, a2))
    assert_labels(enc, [True, True])


@pytest.mark.parametrize("discarding_history_cot", [True, False])
@pytest.mark.parametrize("enable_thinking", [True, False])
def test_reasoning_encode_multiturn_discarding_history_cot(enable_thinking, discarding_history_cot):
    spec = (f"llamafactory:qwen3,enable_thinking={str(enable_thinking).lower()},"
            f"mask_history={str(discarding_history_cot).lower()}")
    _, enc = render("qwen3", spec, conversation(cot=True))
    p1, p2 = qp(0), qp(2)
    if enable_thinking is False:
        a1, a2 = f"{MESSAGES[1]['content']}<|im_end|>\n", f"{MESSAGES[3]['content']}<|im_end|>\n"
        if discarding_history_cot:
            p2 += EMPTY_COT
        else:
            p1, p2 = p1 + EMPTY_COT, p2 + EMPTY_COT
    else:
        a1 = f"{(MESSAGES if discarding_history_cot else WITH_THOUGHT)[1]['content']}<|im_end|>\n"
        a2 = f"{WITH_THOUGHT[3]['content']}<|im_end|>\n"
    expected = (p1, a1, p2, a2)
    hf = tok("qwen3").hf
    assert list(enc.ids) == [i for text in expected for i in hf.encode(text, add_special_tokens=False)]
    start = enc.answers[-1].start  # the last answer (the only trained one with mask_history)
    assert_tokenization("qwen3", (enc.ids[start:],), (a2,))
    assert_labels(enc, [True] if discarding_history_cot else [True, True])


@pytest.mark.parametrize("cot", [True, False])
def test_qwen3_template(cot):
    """Upstream's _check_template: strings, and Qwen3's own template renders prompt + answer."""
    _, enc = render("qwen3", "llamafactory:qwen3,mask_history=true", conversation(cot))
    prompt_str = qp(0) + f"{MESSAGES[1]['content']}<|im_end|>\n" + qp(2)
    answer_str = (f"{WITH_THOUGHT[3]['content']}<|im_end|>\n" if cot else
                  f"{EMPTY_COT}{MESSAGES[3]['content']}<|im_end|>\n")
    start = enc.answers[-1].start
    assert_tokenization("qwen3", (enc.ids[:start], enc.ids[start:]), (prompt_str, answer_str))
    served = build_renderer("hf:.", tok("qwen3"), side="deploy").render(conversation(cot), add_generation_prompt=False)
    assert served.text == prompt_str + answer_str
    assert served.ids == enc.ids


def test_parse_qwen3_template(tmp_path):
    yaml = tmp_path / "train.yaml"
    yaml.write_text("model_name_or_path: Qwen/Qwen3-8B\nstage: sft\n")
    renderer = build_renderer(f"llamafactory:{yaml}", tok("qwen3"), side="train")
    t = renderer.template
    assert type(t).__name__ == "ReasoningTemplate"
    assert t.format_user.slots == ["<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"]
    assert t.format_assistant.slots == ["{{content}}<|im_end|>\n"]
    assert t.format_system.slots == ["<|im_start|>system\n{{content}}<|im_end|>\n"]
    assert t.format_prefix.slots == []
    assert t.default_system == ""


# --- qwen2.5 (Qwen/Qwen2.5-7B-Instruct → zoo qwen2.5) ------------------------------------------------------
QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def test_qwen2_5_template():
    _, enc = render("qwen2.5", "llamafactory:qwen", conversation())
    prompt_str = (f"<|im_start|>system\n{QWEN25_SYSTEM}<|im_end|>\n" + qp(0)
                  + f"{MESSAGES[1]['content']}<|im_end|>\n" + qp(2))
    answer_str = f"{MESSAGES[3]['content']}<|im_end|>\n"
    start = enc.answers[-1].start
    assert_tokenization("qwen2.5", (enc.ids[:start], enc.ids[start:]), (prompt_str, answer_str))
    served = build_renderer("hf:.", tok("qwen2.5"), side="deploy").render(conversation(), add_generation_prompt=False)
    assert served.text == prompt_str + answer_str and served.ids == enc.ids


def test_parse_qwen_template(tmp_path):
    yaml = tmp_path / "train.yaml"
    yaml.write_text("model_name_or_path: Qwen/Qwen2.5-7B-Instruct\nstage: sft\n")
    t = build_renderer(f"llamafactory:{yaml}", tok("qwen2.5"), side="train").template
    assert type(t).__name__ == "Template"
    assert t.format_user.slots == ["<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"]
    assert t.format_assistant.slots == ["{{content}}<|im_end|>\n"]
    assert t.format_system.slots == ["<|im_start|>system\n{{content}}<|im_end|>\n"]
    assert t.format_prefix.slots == []
    assert t.default_system == QWEN25_SYSTEM


def test_case_accounting():
    """34 upstream parametrisations = 21 reproduced here + 13 skipped (listed in SKIPPED)."""
    skipped = sum(2 if key.endswith("x2") else 1 for key in SKIPPED)
    assert skipped == 13 and UPSTREAM_CASES - skipped == 21
