"""A new deploy engine is one renderer class and one ``Kind`` entry: a toy ChatML engine (a Python format string)
registered here runs end to end, and the prompt check catches a one-character difference planted in it."""

from __future__ import annotations

from typing import Any

import pytest

from harness import options as opt
from harness.api import make_pair
from harness.errors import SpecError
from harness.generate import generate
from harness.renderers.engine import EngineRenderer
from harness.runner import run_pair
from harness.specs import KINDS, Kind, build_renderer, register, unregister

QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


class ToyChatML(EngineRenderer):
    """Qwen2.5's template for conversations without tools, as a format string; ``planted`` adds one newline."""

    def __init__(self, spec: str, tokenizer: Any, planted: bool = False) -> None:
        self.spec, self.tokenizer = spec, tokenizer
        self.generation = "<|im_start|>assistant\n" + ("\n" if planted else "")

    @property
    def stop_ids(self) -> frozenset[int]:
        return frozenset({self.tokenizer.eos_id, self.tokenizer.token_id("<|im_end|>")} - {None})

    def render_text(self, conv, *, add_generation_prompt: bool = True) -> str:
        head = "" if conv.messages and conv.messages[0].role == "system" else \
            f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n"
        turns = "".join(f"<|im_start|>{m.role}\n{m.content or ''}<|im_end|>\n" for m in conv.messages)
        return head + turns + (self.generation if add_generation_prompt else "")

    def describe(self) -> dict[str, Any]:
        return {"kind": "toy", "spec": self.spec, "side": self.side, "stop_ids": sorted(self.stop_ids)}


@pytest.fixture
def toy_kind():
    kind = register(Kind("toy", ("deploy",), lambda spec, tok: ToyChatML(str(spec), tok, spec.options.get("planted", False)),
                         "ChatML from a Python format string (a test engine)", {"planted": opt.boolean()}))
    yield kind
    unregister("toy")
    assert "toy" not in KINDS


def _run(qwen, deploy: str):
    pair = make_pair(qwen, "jinja:.", deploy)
    return run_pair(pair, generate(40, seed=7, tools=False, reasoning=False))


def _verdicts(result) -> list[tuple[str, str, int, int, int]]:
    return [(c.name, c.verdict, c.examples_run, c.errors, c.warnings) for c in result.checks]


def test_toy_engine_matches_qwen_training_as_hf_does(toy_kind, qwen):
    result = _run(qwen, "toy:x")
    assert result.verdict == "consistent", _verdicts(result)
    prompt = next(c for c in result.checks if c.name == "prompt-prefix")
    assert prompt.errors == 0 and prompt.examples_run == 40
    assert _verdicts(result) == _verdicts(_run(qwen, "hf:."))  # the same findings (data warnings) as vLLM's side


def test_prompt_check_catches_a_planted_newline_in_the_toy_engine(toy_kind, qwen):
    result = _run(qwen, "toy:x,planted=true")
    prompt = next(c for c in result.checks if c.name == "prompt-prefix")
    assert result.verdict == "inconsistent" and prompt.verdict == "fail", _verdicts(result)
    assert prompt.failure.diff.deploy[prompt.failure.diff.index] == qwen.token_id("\n\n")


def test_toy_kind_options_are_checked_by_the_one_rule(toy_kind, qwen):
    with pytest.raises(SpecError, match="unknown option 'plant'; toy takes planted=true|false"):
        build_renderer("toy:x,plant=true", qwen, side="deploy")
    with pytest.raises(SpecError, match="kind 'toy' renders the deploy side"):
        build_renderer("toy:x", qwen, side="train")


def test_a_taken_kind_name_is_refused(toy_kind):
    with pytest.raises(SpecError, match="'toy' is registered already"):
        register(toy_kind)
