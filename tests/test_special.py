"""``special-tokens`` on real templates and tokenizers: near-misses of a control token and control text split
on one side are errors; plain-text markers that both sides tokenise alike stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.api import load_model, make_pair
from harness.causes import CAUSES
from harness.checks import CHECKS
from harness.checks.special import CONTROL_LIKE, _vocab, near_misses
from harness.conversation import Conversation, plain_variant
from harness.errors import RenderRejected
from harness.generate import generate
from tests.conftest import fixture, needs_lf, result_of, sweep

pytestmark = pytest.mark.real_tokenizer


def _axolotl_templates() -> Path:
    """axolotl's shipped chat templates (found without importing axolotl)."""
    import importlib.util

    spec = importlib.util.find_spec("axolotl")
    roots = list(spec.submodule_search_locations or ()) if spec else []
    return Path(roots[0] if roots else "/nonexistent") / "utils" / "chat_templates" / "templates"


AXOLOTL = _axolotl_templates()
needs_axolotl = pytest.mark.skipif(not AXOLOTL.is_dir(), reason="axolotl's chat templates are not installed")
CHATML = "hf:" + fixture("templates/chatml.jinja")


def ax(name: str) -> tuple[str, str]:
    """An axolotl chat template as the training side (TRL-style) and as the deploy side (vLLM)."""
    path = AXOLOTL / f"{name}.jinja"
    return "jinja:" + str(path), "hf:" + str(path)


def chat(*turns: str) -> Conversation:
    roles = ("user", "assistant")
    return Conversation.from_openai({"messages": [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]})


# --- the near-miss rule --------------------------------------------------------------------------------------

@pytest.mark.parametrize("model,text,word,token", [
    ("qwen2.5", "<|im_start|>user\nhi<|im_end |>\n", "<|im_end |>", "<|im_end|>"),  # whitespace
    ("qwen2.5", "<|IM_END|>\n", "<|IM_END|>", "<|im_end|>"),  # case
    ("qwen2.5", "<|im_start|user\n", "<|im_start|", "<|im_start|>"),  # a delimiter dropped
    ("qwen2.5", "x<|im_end>\n", "<|im_end>", "<|im_end|>"),  # a delimiter dropped inside
    ("qwen2.5", "<｜im_end｜>", "<｜im_end｜>", "<|im_end|>"),  # full-width bars
    ("deepseek-v3", "hi<|end_of_sentence|>", "<|end_of_sentence|>", "<｜end▁of▁sentence｜>"),  # ASCII for ｜ and ▁
    ("mistral-v3", "[inst] hi [/INST]", "[inst]", "[INST]"),
])
def test_near_miss_of_a_control_token(model, text, word, token):
    tok = load_model(model=model)
    assert token in tok.added_tokens and word not in tok.added_tokens
    misses = near_misses(text, [(0, len(text))], _vocab(tok, ()))
    assert [(m.text, m.token) for m in misses] == [(word, token)]


@pytest.mark.parametrize("model,text", [
    ("qwen2.5", "<s>[INST] hi [/INST] ok</s>"),  # Llama-2 / Mistral v1 markers: plain text on Qwen2.5
    ("qwen2.5", "### Instruction:\nhi\n\n### Response:\n"),
    ("qwen2.5", "USER: hi ASSISTANT: ok</s>"),
    ("qwen2.5", "<tool_calls>[{}]</tool_calls>"),  # another word, not a typo of <tool_call>
    ("qwen2.5", "<|tool_call>call:f{}<tool_call|>"),  # Gemma's markers: a delimiter added makes another model's
    ("qwen2.5", "<|im_start|>user\nhi<|im_end|>\n<|im_end|>>"),  # exact tokens (and one stray '>')
    ("llama3", "<|im_start|>user\nhi<|im_end|>\n"),  # ChatML as plain text on Llama 3
    ("deepseek-r1-distill-qwen", "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>"),  # DeepSeek-V3 markers
    ("mistral-v3", "[INST] hi [/INST] ok</s>[TOOL_CALLS]"),
])
def test_plain_markers_and_exact_tokens_are_no_near_miss(model, text):
    tok = load_model(model=model)
    assert near_misses(text, [(0, len(text))], _vocab(tok, ())) == []


def test_planted_typo_is_a_control_text_error():
    result = result_of(sweep("jinja:" + fixture("planted/special_typo.jinja"), CHATML, checks=["special-tokens"], n=30),
                       "special-tokens")
    failure = result.failure
    assert result.verdict == "fail" and failure.severity == "error" and failure.cause == "control-text"
    assert "'<|im_end |>', a near-miss of this tokenizer's control token '<|im_end|>' (id 151645)" in failure.explanation
    assert len(failure.tokens["training"]) > 1  # the typo is plain text


# --- plain-text markers of real templates stay quiet ---------------------------------------------------------

def _plain_markers(model: str, train: str, deploy: str) -> set[str]:
    """Control-looking template text of the training rendering that is NOT one token of this tokenizer (what
    the old rule called an error on every conversation)."""
    tok = load_model(model=model)
    pair = make_pair(tok, train, deploy)
    enc = pair.train.render(plain_variant(chat("hi", "ok", "hi", "ok")), add_generation_prompt=False)
    return {w for w in CONTROL_LIKE.findall(enc.text) if tok.token_id(w) is None}


QUIET_LF = [  # (model, LLaMA-Factory template, a marker that is plain text on this tokenizer or None)
    ("qwen2.5", "alpaca", None),  # '### Instruction:'
    ("qwen2.5", "llama2", "[INST]"),
    ("qwen2.5", "mistral", "[INST]"),
    ("qwen2.5", "vicuna", None),  # 'USER: … ASSISTANT:'
    ("llama3", "mistral", "[INST]"),
    ("llama3", "vicuna", None),
]


@needs_lf
@pytest.mark.parametrize("model,template,marker", QUIET_LF, ids=[f"{m}-{t}" for m, t, _ in QUIET_LF])
def test_llamafactory_plain_marker_templates_are_quiet(model, template, marker):
    train, deploy = f"llamafactory:{template}", f"llamafactory-jinja:{template},generated=true"
    if marker:
        assert marker in _plain_markers(model, train, deploy)
    result = result_of(sweep(train, deploy, model=model, n=60, tools=False, checks=["special-tokens"]), "special-tokens")
    assert result.examples_run > 0 and result.errors == 0, result.failure


QUIET_AX = [  # (model, axolotl template, a marker that is plain text on this tokenizer)
    ("qwen2.5", "mistral_v1", "[INST]"),
    ("qwen2.5", "phi_3", "<|user|>"),
    ("qwen2.5", "llama4", "<|header_start|>"),
    ("qwen2.5", "deepseek_v2", "<｜User｜>"),
    ("llama3", "mistral_v2v3", "[INST]"),
    ("llama3", "qwen_25", "<|im_start|>"),
    ("llama3", "gemma", None),  # '<start_of_turn>'
]


@needs_axolotl
@pytest.mark.parametrize("model,name,marker", QUIET_AX, ids=[f"{m}-{n}" for m, n, _ in QUIET_AX])
def test_axolotl_templates_on_another_tokenizer_are_quiet(model, name, marker):
    train, deploy = ax(name)
    if marker:
        assert marker in _plain_markers(model, train, deploy)
    result = result_of(sweep(train, deploy, model=model, n=60, checks=["special-tokens"]), "special-tokens")
    assert result.examples_run > 0 and result.errors == 0, result.failure


@pytest.mark.parametrize("train,deploy", [("jinja:.", "hf:."), ax("mistral_v1") if AXOLOTL.is_dir() else ("jinja:.", "hf:.")],
                         ids=["own-template", "axolotl-mistral_v1"])
def test_mistral_v3_inst_is_a_control_token_and_quiet(train, deploy):
    tok = load_model(model="mistral-v3")
    assert tok.token_id("[INST]") == tok.added_tokens["[INST]"]
    result = result_of(sweep(train, deploy, model="mistral-v3", n=60, checks=["special-tokens"]), "special-tokens")
    assert result.examples_run > 0 and result.errors == 0, result.failure


@pytest.mark.parametrize("model,marker", [("deepseek-r1-distill-qwen", "<｜tool▁outputs▁begin｜>"), ("glm4", "<|tool|>")])
def test_own_template_markers_missing_from_the_tokenizer_are_quiet(model, marker):
    """R1-distill-Qwen's template writes DeepSeek-V3 tool markers, GLM-4's writes '<|tool|>': no token of their
    tokenizers, but TRL-style training and vLLM serving encode them as the same plain text."""
    tok = load_model(model=model)
    pair = make_pair(tok, "jinja:.", "hf:.")
    rendered = []
    for conv in generate(60, seed=0, tools=True, reasoning=False):
        try:
            rendered.append(pair.train.render(conv).text)
        except RenderRejected:
            continue
    assert marker not in tok.added_tokens and any(marker in text for text in rendered)
    result = result_of(sweep("jinja:.", "hf:.", model=model, n=60, tools=True, checks=["special-tokens"]),
                       "special-tokens")
    assert result.examples_run > 0 and result.errors == 0, result.failure


# --- the same control text split on one side ------------------------------------------------------------------

@needs_lf
@pytest.mark.parametrize("model,template,token", [("qwen2.5", "phi", "<|end|>"), ("llama3", "qwen", "<|im_end|>")])
def test_control_token_in_training_plain_text_when_served(model, template, token):
    """LLaMA-Factory adds a template's stop word as a token of the *training* tokenizer; served with the model's
    own tokenizer (and LF's exported template) the same text is plain: one id trained, several served."""
    tok = load_model(model=model)
    assert token not in tok.added_tokens
    result = result_of(sweep(f"llamafactory:{template}", f"llamafactory-jinja:{template},generated=true", model=model,
                             n=30, tools=False, checks=["special-tokens"]), "special-tokens")
    failure = result.failure
    assert result.verdict == "fail" and failure.cause == "control-text", failure
    assert f"{token!r} is one control token on the training side" in failure.explanation
    assert len(failure.tokens["training"]) == 1 and len(failure.tokens["deploy"]) > 1


@needs_lf
def test_same_tokenizer_on_both_sides_is_quiet():
    result = result_of(sweep("llamafactory:qwen", "llamafactory-jinja:qwen,generated=true", n=60, tools=False,
                             checks=["special-tokens"]), "special-tokens")
    assert result.examples_run > 0 and result.errors == 0, result.failure


# --- user text parsed as control tokens ------------------------------------------------------------------------

def test_user_control_text_is_a_warning_with_its_cause(qwen):
    pair = make_pair(qwen, "jinja:" + fixture("templates/chatml.jinja"), CHATML)
    failure = CHECKS["special-tokens"].run(pair.case(chat("one <|im_end|> two", "ok")))
    assert failure is not None and failure.severity == "warning" and failure.cause == "user-control-text"
    assert CHECKS["special-tokens"].run(pair.case(chat("one two", "ok"))) is None


def test_every_special_tokens_failure_names_a_known_cause(qwen):
    pair = make_pair(qwen, "jinja:" + fixture("planted/special_typo.jinja"), CHATML)
    causes = set()
    for conv in generate(40, seed=0, tools="any", reasoning=False):
        failure = CHECKS["special-tokens"].run(pair.case(conv))
        if failure is not None:
            causes.add(failure.cause)
    assert causes and causes <= set(CAUSES)
