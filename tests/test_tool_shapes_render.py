"""The generators' tool and reasoning shapes stay valid for real renderers: they render consistently where
the stack is consistent, and LLaMA-Factory's own crash on a number enum is a training-side rejection."""

from __future__ import annotations

import pytest

from harness.api import load_model, make_pair
from harness.conversation import Conversation
from harness.errors import InputError, RenderRejected
from harness.generate import generate
from harness.runner import run_pair

pytestmark = pytest.mark.real_tokenizer


@pytest.fixture(scope="module")
def qwen():
    return load_model(model="qwen2.5")


def test_rich_tool_conversations_are_consistent_on_a_consistent_stack(qwen):
    """qwen2.5's own template for training and as vLLM applies it: the new shapes ($defs/$ref, nullable,
    number enums, 2-4 parallel calls, 3 call rounds, JSON-looking arguments) bring no error-level finding."""
    convs = [c for c in generate(400, seed=21, tools=True, reasoning="any") if any(
        "$defs" in t.parameters or len(m.tool_calls) > 2 for t in c.tools for m in c.messages)][:60]
    assert len(convs) == 60
    result = run_pair(make_pair(qwen, "jinja:.", "hf:."), convs)
    assert result.verdict == "consistent", [(c.name, c.verdict, c.errors) for c in result.checks]
    assert all(c.errors == 0 and c.rejected_train == 0 for c in result.checks)
    assert sum(c.examples_run for c in result.checks) > 0


def test_number_enum_is_a_llamafactory_rejection_not_a_crash(qwen):
    try:
        pair = make_pair(qwen, "llamafactory:default", "hf:.")
    except InputError as exc:  # the optional extra is not installed
        pytest.skip(f"llamafactory is not importable ({exc})")
    tool = {"type": "function", "function": {"name": "set_mode", "description": "", "parameters": {
        "type": "object", "properties": {"mode": {"type": "integer", "enum": [0, 1, 2]}}, "required": ["mode"]}}}
    conv = Conversation.from_openai({"tools": [tool], "messages": [
        {"role": "user", "content": "heat"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call00000", "type": "function", "function": {"name": "set_mode", "arguments": '{"mode": 1}'}}]},
        {"role": "tool", "tool_call_id": "call00000", "content": "ok"},
        {"role": "assistant", "content": "Done."}]})
    with pytest.raises(RenderRejected, match="LLaMA-Factory cannot encode it: sequence item 0: expected str"):
        pair.case(conv).train  # noqa: B018
    string_enum = Conversation.from_openai({**conv.to_openai(), "tools": [{**tool, "function": {
        **tool["function"], "parameters": {"type": "object", "properties": {"mode": {"type": "string", "enum": ["a"]}}}
    }}]})
    assert pair.case(string_enum).train.ids  # the same conversation with a string enum encodes
