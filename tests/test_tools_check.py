"""``tools`` (prompt side): each planted tool bug is caught with a minimal counterexample and a path into the
request; identical templates and divergences outside tool structures stay quiet (real Qwen2.5 / Qwen3 ids)."""

from __future__ import annotations

import json
import re

import pytest

from harness.api import load_model, make_pair
from harness.checks import CHECKS
from harness.checks.tools import fmt, general
from harness.checks.toolsread import json_objects, serialisation
from harness.conversation import Conversation
from harness.generate import generate
from harness.runner import run_pair
from harness.zoo import zoo_model_dir
from tests.conftest import fixture, result_of, sweep

pytestmark = pytest.mark.real_tokenizer


def _own(model: str) -> str:
    return str(zoo_model_dir(model))


def _planted(name: str) -> tuple[str, str]:
    return "jinja:" + _own("qwen2.5"), "hf:" + fixture(f"planted/{name}.jinja")


def _at(conv: Conversation, path: str):
    """The value at a ``tools[0].function.description``-style path in ``conv``'s request (dataset form)."""
    value = {"tools": [t.to_openai() for t in conv.tools], **conv.to_openai(form="dataset")}
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        value = value[int(index)] if index else value[name]
    return value


def _tools_failure(train: str, deploy: str, n: int = 150, **gen):
    result = result_of(sweep(train, deploy, checks=["tools"], n=n, **gen), "tools")
    assert result.verdict == "fail", result
    failure = result.failure
    assert failure is not None and failure.severity == "error"
    return failure


def test_sorted_call_arguments_located_in_history_call():
    """A deploy template writing history call arguments with sorted keys: the path names the call's argument."""
    failure = _tools_failure(*_planted("tools_sorted_args"))
    path = failure.tokens["path"]
    assert path.startswith("messages[") and ".tool_calls[" in path and ".function.arguments." in path, path
    assert failure.cause == "tool-json-format"
    assert failure.where == "messages[*].tool_calls[*].function.arguments.*"
    assert "key order" in failure.explanation
    conv = failure.conversation  # minimal: one call with two keys, its result, the answer
    call = next(c for m in conv.messages for c in m.tool_calls)
    assert len(call.arguments) == 2 and list(call.arguments) != sorted(call.arguments)
    assert len(conv.messages) <= 5, conv
    assert _at(conv, path) == call.arguments[path.rsplit(".", 1)[1]]  # the path points into the reported conv


def test_dropped_description_located_in_tool_definition():
    failure = _tools_failure(*_planted("tools_no_description"))
    assert failure.tokens["path"] == "tools[0].function.description"
    assert failure.cause == "tool-definition-changed"
    assert "dictionary item removed at tools[0].function.description" in failure.explanation
    assert len(failure.conversation.tools) == 1 and len(failure.conversation.messages) <= 3
    assert _at(failure.conversation, "tools[0].function.name")


def test_dropped_nested_enum_located():
    failure = _tools_failure(*_planted("tools_no_enum"))
    assert failure.tokens["path"].endswith(".enum") and failure.tokens["path"].startswith("tools[0].function."), \
        failure.tokens
    assert failure.where == "tools[*].function.parameters.properties.*.enum"
    assert isinstance(_at(failure.conversation, failure.tokens["path"]), list)
    assert failure.cause == "tool-definition-changed"


DEFS_TOOL = {"type": "function", "function": {
    "name": "book", "description": "Book a room.",
    "parameters": {"type": "object", "$defs": {"room": {"type": "string", "enum": ["single", "double"]}},
                   "properties": {"kind": {"$ref": "#/$defs/room"}, "nights": {"type": "integer"}},
                   "required": ["kind"]}}}


def test_dropped_defs_located():
    """``$defs`` (no generator writes it yet): a hand-made conversation, run through the runner (shrunk)."""
    train, deploy = _planted("tools_no_defs")
    conv = Conversation.from_openai({"tools": [DEFS_TOOL], "messages": [
        {"role": "user", "content": "Book a single for two nights."},
        {"role": "assistant", "content": "Booked."}]})
    pair = make_pair(load_model(model="qwen2.5"), train, deploy)
    failure = result_of(run_pair(pair, [conv], checks=["tools"]), "tools").failure
    assert failure is not None
    assert failure.tokens["path"] == "tools[0].function.parameters.$defs", failure.tokens
    assert failure.cause == "tool-definition-changed"
    # identical templates agree on it
    same = make_pair(load_model(model="qwen2.5"), train, "hf:" + _own("qwen2.5"))
    assert CHECKS["tools"].run(same.case(conv)) is None


def test_divergence_outside_tools_is_left_to_prompt_prefix():
    """A planted newline in the chat template (not in any tool structure): prompt-prefix fails, tools stays
    quiet — the check adds location, not a second copy of every prompt error."""
    target = sweep("jinja:" + fixture("planted/prompt_newline.jinja"), "hf:" + fixture("templates/chatml.jinja"),
                   checks=["prompt-prefix", "tools"], n=60)
    assert result_of(target, "prompt-prefix").verdict == "fail"
    tools = result_of(target, "tools")
    assert tools.verdict == "pass" and tools.examples_run > 0


@pytest.mark.parametrize("model,gen", [("qwen2.5", {"tools": "any"}), ("qwen3", {"tools": "any", "reasoning": "any"})])
def test_quiet_on_identical_templates(model, gen):
    own = _own(model)
    result = result_of(sweep("jinja:" + own, "hf:" + own, model=model, checks=["tools"], n=200, **gen), "tools")
    assert result.errors == 0, result.failure and result.failure.explanation
    # conversations without tool definitions or calls are not applicable: not counted as checked
    applicable = sum(1 for c in generate(200, seed=0, **gen) if c.tools or any(m.tool_calls for m in c.messages))
    assert result.examples_run == applicable > 50


@pytest.mark.slow
@pytest.mark.parametrize("model,gen", [("qwen2.5", {"tools": True}), ("qwen3", {"tools": True, "reasoning": True})])
def test_quiet_on_identical_templates_2000(model, gen):
    own = _own(model)
    result = result_of(sweep("jinja:" + own, "hf:" + own, model=model, checks=["tools"], n=2000, seed=11, **gen),
                       "tools")
    assert result.errors == 0 and result.warnings == 0, result.failure and result.failure.explanation
    assert result.examples_run == 2000


def test_paths_and_classes():
    path = ("tools", 1, "function", "parameters", "properties", "city", "properties", "zip", "enum")
    assert fmt(path) == "tools[1].function.parameters.properties.city.properties.zip.enum"
    assert general(path) == "tools[*].function.parameters.properties.*.enum"
    call = ("messages", 3, "tool_calls", 0, "function", "arguments", "unit")
    assert fmt(call) == "messages[3].tool_calls[0].function.arguments.unit"
    assert general(call) == "messages[*].tool_calls[*].function.arguments.*"
    assert fmt(("tools", 0, "function", "parameters", "properties", "a b")) == \
        "tools[0].function.parameters.properties['a b']"
    assert general(("tools", 0, "function", "parameters", "properties", "description")) == \
        "tools[*].function.parameters.properties.*"


def test_read_back_helpers():
    text = 'x {"a": 1, "b": {"c": "é"}} y {bad} {"z": []}'
    assert [v for _, _, v in json_objects(text)] == [{"a": 1, "b": {"c": "é"}}, {"c": "é"}, {"z": []}]
    said = serialisation('{"c": "\\u00e9"}', '{"c": "é"}', {"c": "é"}, {"c": "é"})
    assert "training escapes non-ASCII" in said
    said = serialisation('{"b": 1, "a": 2}', '{"a": 2, "b": 1}', {"b": 1, "a": 2}, {"a": 2, "b": 1})
    assert "key order" in said and "['b', 'a']" in said
    said = serialisation('{"a":1}', '{"a": 1}', {"a": 1}, {"a": 1})
    assert "spacing" in said


def test_tool_result_framing_is_located_at_the_result_not_the_call(tmp_path):
    """An extra newline after every tool result (Qwen2.5's template, planted): removing the call step removes its
    result too, so the call is 'needed' — the path must still name the tool result whose framing differs."""
    own = json.loads((zoo_model_dir("qwen2.5") / "tokenizer_config.json").read_text())["chat_template"]
    needle = "{{- '\\n</tool_response>' }}"
    assert needle in own
    serve = tmp_path / "serve.jinja"
    serve.write_text(own.replace(needle, "{{- '\\n</tool_response>\\n' }}"))
    failure = _tools_failure("jinja:" + _own("qwen2.5"), f"hf:{serve}", n=60)
    path = failure.tokens["path"]
    assert re.fullmatch(r"messages\[\d+\]\.content", path), path
    index = int(path.split("[")[1].split("]")[0])
    assert failure.conversation.messages[index].role == "tool"
    assert failure.cause == "tools-rendered" and failure.where == "messages[*](tool result)"
    assert "framing of the tool result" in failure.explanation
