"""Output-side round trips (issue 11) that hold: the text a model was trained to emit, fed to the server's real
parser, gives back the trained calls. Stacks where it does not are strict xfails in known_divergences.toml.

* Qwen2.5 fine-tuned with LLaMA-Factory's ``qwen`` template (its ``qwen`` tool format: ``<tool_call>`` JSON
  blocks joined by newlines), served with the model's own template by vLLM with ``--tool-call-parser hermes``:
  every call, parallel ones too, comes back by name, arguments (objects, key order) and count; the only findings
  are warnings on answers whose own text holds control-token text (the generator's hostile texts).
* ReAct (LLaMA-Factory ``default`` format) with two actions in one turn: the real extractor reads both calls.
* Qwen3 with reasoning in the last turn, thinking on: vLLM's qwen3 parser gives back reasoning and content.
"""

from __future__ import annotations

import pytest

from harness.api import load_model, make_pair
from harness.checks import CHECKS
from harness.conversation import Conversation
from harness.generate import generate
from harness.runner import run_pair

pytestmark = pytest.mark.real_tokenizer

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"]}}}]


def _two_calls(content: str | None) -> Conversation:
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": args}}
             for i, args in enumerate(['{"city": "Paris", "unit": "c"}', '{"city": "Oslo"}'])]
    return Conversation.from_openai({"tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": content, "tool_calls": calls}]})


@pytest.mark.parametrize("deploy", ["hf:.,tool_parser=hermes", "llamafactory-jinja:qwen,tool_parser=hermes"])
def test_qwen25_llamafactory_qwen_tools_round_trip_through_hermes(deploy):
    pair = make_pair(load_model(model="qwen2.5"), "llamafactory:qwen", deploy)
    check = run_pair(pair, generate(200, seed=0, tools=True, parallel_calls=True), checks=["tool-roundtrip"]).checks[0]
    assert check.errors == 0, [c.failure.explanation for c in check.classes if c.failure]
    assert check.examples_run + check.rejected_train == 200 and check.examples_run > 190  # LF rejects a few shapes
    assert {c.cause for c in check.classes} <= {"answer-control-text"}
    assert CHECKS["tool-roundtrip"].run(pair.case(_two_calls(None))) is None


def test_react_two_actions_in_one_turn_come_back_as_two_calls():
    pair = make_pair(load_model(model="qwen2.5"), "llamafactory:qwen,tool_format=default",
                     "llamafactory-jinja:qwen,tool_format=default,tool_parser=llamafactory:default")
    case = pair.case(_two_calls(None))
    answer = case.train.answers[-1]
    text = pair.tokenizer.raw.decode([i for i in case.train.ids[answer.start:answer.end]])
    assert text.count("Action:") == 2  # what LLaMA-Factory trains: two ReAct actions in one answer
    assert CHECKS["tool-roundtrip"].run(case) is None
    with_text = CHECKS["tool-roundtrip"].run(pair.case(_two_calls("Checking both.")))
    assert with_text is not None and with_text.cause == "tool-content"  # the known divergence, on one example


def test_qwen3_last_turn_reasoning_round_trips_through_the_qwen3_parser():
    pair = make_pair(load_model(model="qwen3"), "jinja:.", "hf:.,reasoning_parser=qwen3")
    conv = Conversation.from_openai([{"role": "user", "content": "2+2?"},
                                     {"role": "assistant", "content": "4.", "reasoning_content": "Add them."}])
    assert CHECKS["reasoning-roundtrip"].run(pair.case(conv)) is None
    no_thinking = Conversation.from_openai([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4."}])
    assert CHECKS["reasoning-roundtrip"].run(pair.case(no_thinking)) is None  # an empty think block: no reasoning
