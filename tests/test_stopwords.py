"""``stop-words``: training's end-of-answer ids (LLaMA-Factory stop words / eos after replace_eos, efficient_eos
labels, a Jinja template's answer end) vs the ids the deploy side stops on."""

from __future__ import annotations


import pytest

from harness.api import load_model, make_pair
from harness.checks import CHECKS
from harness.checks.stopwords import describe_ends, label_stream
from harness.conversation import Conversation
from harness.errors import InputError
from tests.conftest import fixture, result_of, sweep

pytestmark = pytest.mark.real_tokenizer

try:
    from harness.renderers.llamafactory import import_llamafactory

    import_llamafactory()
    HAVE_LF = True
except InputError:  # the optional extra is not installed
    HAVE_LF = False
needs_lf = pytest.mark.skipif(not HAVE_LF, reason="llamafactory is not importable")

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
