"""``reasoning`` (prompt side): what each side does with reasoning in history and in the last turn, thinking on
and off; planted history stripping is caught with a minimal counterexample, consistent pairs stay quiet, and the
real zoo templates get the sentence their templates earn (real Qwen2.5 / Qwen3 / DeepSeek-R1 / GLM-4 ids)."""

from __future__ import annotations

import pytest

from harness.checks.reasoning import deploy_mode
from harness.generate import generate
from harness.zoo import zoo_model_dir
from tests.conftest import fixture, result_of, sweep

pytestmark = pytest.mark.real_tokenizer

THINK = fixture("templates/chatml_think.jinja")


def _own(model: str) -> str:
    return str(zoo_model_dir(model))


def _reasoning(train: str, deploy: str, model: str = "qwen2.5", n: int = 150, **gen):
    gen.setdefault("tools", False)
    gen.setdefault("reasoning", "any")
    return result_of(sweep(train, deploy, model=model, checks=["reasoning"], n=n, **gen), "reasoning")


def test_deploy_side_stripping_history_reasoning_is_caught():
    result = _reasoning("jinja:" + THINK, "hf:" + fixture("planted/think_strip_history.jinja"))
    assert result.verdict == "fail"
    failure = result.failure
    assert failure.cause == "history-reasoning-stripped" and failure.where == "assistant.reasoning (history)"
    assert "training keeps messages[1].reasoning in the history of answer messages[3], deploy strips it" \
        in failure.explanation
    conv = failure.conversation  # minimal: user, answer with reasoning, user, answer
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    assert conv.messages[1].reasoning


def test_training_side_stripping_history_reasoning_is_caught():
    result = _reasoning("jinja:" + fixture("planted/think_strip_history.jinja"), "hf:" + THINK)
    assert result.verdict == "fail"
    assert "training strips messages[1].reasoning in the history of answer messages[3], deploy keeps it" \
        in result.failure.explanation


def test_quiet_when_both_sides_keep_reasoning():
    result = _reasoning("jinja:" + THINK, "hf:" + THINK, n=200)
    # conversations whose messages carry no reasoning are not applicable: not counted as checked
    applicable = sum(1 for c in generate(200, seed=0, tools=False, reasoning="any")
                     if any(m.reasoning for m in c.messages))
    assert result.verdict == "pass" and result.examples_run == applicable > 50


def test_qwen3_history_is_stripped_by_training_only():
    """Qwen3's template drops <think> of turns before the last user query: whole-conversation training strips the
    reasoning of a tool-loop step that the served prompt of that turn's final answer still shows."""
    own = _own("qwen3")
    result = _reasoning("jinja:" + own, "hf:" + own, model="qwen3", tools="any")
    assert result.verdict == "fail"
    assert {c.cause for c in result.classes} == {"history-reasoning-stripped"}
    assert "training strips messages[" in result.failure.explanation
    assert "deploy keeps it" in result.failure.explanation


def test_qwen3_single_turn_is_consistent():
    """One user turn: nothing comes before the last user query, so both sides keep every reasoning."""
    own = _own("qwen3")
    result = _reasoning("jinja:" + own, "hf:" + own, model="qwen3", tools="any", max_turns=1, n=200)
    assert result.verdict == "pass" and result.errors == 0


def test_qwen3_thinking_off_at_serving_after_training_with_reasoning():
    own = _own("qwen3")
    result = _reasoning("jinja:" + own, "hf:" + own + ",enable_thinking=false", model="qwen3", max_turns=1)
    assert result.verdict == "fail" and result.failure.cause == "reasoning-mode"
    assert "with its reasoning (thinking on), the deploy prompt closes the think block empty (thinking off)" \
        in result.failure.explanation


def test_deepseek_r1_trains_without_reasoning_but_serves_an_open_think_block():
    own = _own("deepseek-r1")
    result = _reasoning("jinja:" + own, "hf:" + own, model="deepseek-r1")
    assert result.verdict == "fail" and result.failure.cause == "reasoning-mode"
    assert "training drops messages[1].reasoning from the trained answer" in result.failure.explanation
    assert "opens a think block" in result.failure.explanation


def test_glm4_reads_no_reasoning_so_the_check_is_skipped_not_passed():
    """GLM-4-9b-chat's template never mentions reasoning: nothing to compare is a skip with its reason, not a pass."""
    own = _own("glm4")
    result = _reasoning("jinja:" + own, "hf:" + own, model="glm4", n=50)
    assert result.verdict == "skipped" and "neither template reads reasoning" in result.note


def test_deploy_modes():
    assert deploy_mode("<|im_start|>assistant\n<think>\n\n</think>\n\n") == "closed"
    assert deploy_mode("<｜Assistant｜><think>\n") == "open"
    assert deploy_mode("<|im_start|>assistant\n") == "free"


@pytest.mark.slow
def test_quiet_when_both_sides_keep_reasoning_2000():
    result = _reasoning("jinja:" + THINK, "hf:" + THINK, n=2000, reasoning=True, seed=5)
    applicable = sum(1 for c in generate(2000, seed=5, tools=False, reasoning=True)
                     if any(m.reasoning for m in c.messages))
    assert result.verdict == "pass" and result.examples_run == applicable > 1000
