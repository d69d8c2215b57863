"""``tool-roundtrip`` / ``reasoning-roundtrip`` on real tokenizers and the real vLLM / LLaMA-Factory parsers: each
planted parser bug is caught with a minimal counterexample and a deepdiff path; identical stacks stay quiet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any, Sequence

import pytest

from harness.api import load_model, make_pair
from harness.checks import CHECKS
from harness.conversation import Conversation
from harness.errors import SpecError
from harness.generate import generate
from harness.parsers.base import ParsedCall, ParsedOutput, ReasoningParser, ToolParser
from harness.runner import run_pair
from harness.specs import build_renderer

pytestmark = pytest.mark.real_tokenizer

HERMES = "hf:.,tool_parser=hermes"
REACT_TRAIN = "llamafactory:qwen,tool_format=default"
REACT_DEPLOY = "llamafactory-jinja:qwen,tool_format=default,tool_parser=llamafactory:default"


class _Wrap(ToolParser):
    """A planted bug around a real parser."""

    def __init__(self, real: ToolParser) -> None:
        self.real, self.name, self.skip_special_tokens = real, f"planted:{real.name}", real.skip_special_tokens


class SingleReAct(_Wrap):
    """LLaMA-Factory's pre-fix ReAct extraction: ``re.search``, so one Action / Action Input per answer."""

    REGEX = re.compile(r"Action:\s*([a-zA-Z0-9_]+)\s*Action Input:\s*(.+?)(?=\s*Action:|\s*$)", re.DOTALL)

    def parse(self, text: str, tools: Sequence[Any]) -> ParsedOutput:
        found = self.REGEX.search(text)
        return self.real.parse(text[:found.end()] if found else text, tools)


class Resorted(_Wrap):
    """Re-serialises the arguments with sorted keys and no spaces."""

    def parse(self, text: str, tools: Sequence[Any]) -> ParsedOutput:
        out = self.real.parse(text, tools)
        calls = tuple(ParsedCall(c.name, json.dumps(c.arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                                 c.arguments) for c in out.calls)
        return ParsedOutput(calls, out.content)


class DropSecond(_Wrap):
    """Returns only the first of parallel calls."""

    def parse(self, text: str, tools: Sequence[Any]) -> ParsedOutput:
        out = self.real.parse(text, tools)
        return ParsedOutput(out.calls[:1], out.content)


class NoSplit(ReasoningParser):
    """A reasoning parser that never separates anything: all text is content."""

    name, skip_special_tokens = "planted:no-split", True

    def split(self, text: str) -> tuple[str | None, str | None]:
        return None, text


def _planted(train: str, deploy: str, plant: type, model: str = "qwen2.5"):
    pair = make_pair(load_model(model=model), train, deploy)
    real = pair.deploy.tool_parser
    pair.deploy.__dict__["_tool_parser"] = plant(real)
    return pair, real


def _class(result, cause: str):
    check = result.checks[0]
    found = [c for c in check.classes if c.cause == cause]
    assert found, [(c.cause, c.where, c.count) for c in check.classes]
    return found[0]


def _still_fails(pair, check: str, conv: Conversation, cause: str) -> None:
    """The shrunk counterexample fails the same way when checked again from scratch."""
    again = CHECKS[check].run(pair.case(conv))
    assert again is not None and again.cause == cause, again


def _calls(failure) -> int:
    return len(failure.conversation.messages[failure.message].tool_calls)


def test_planted_single_call_react_regex_drops_the_second_action():
    pair, real = _planted(REACT_TRAIN, REACT_DEPLOY, SingleReAct)
    convs = list(generate(120, seed=3, tools=True, parallel_calls=True, hostile=False))
    found = _class(run_pair(pair, convs, checks=["tool-roundtrip"]), "tool-call-dropped")
    small = found.failure
    assert found.severity == "error" and found.where == "tool_calls[*]"
    assert "tool_calls[1] missing" in small.tokens["paths"]
    assert "Action:" in small.tokens["emitted"] and small.tokens["emitted"].count("Action Input:") == _calls(small) == 2
    assert len(small.conversation.messages) <= 3, small.conversation  # user, the two-call answer (a system at most)
    _still_fails(pair, "tool-roundtrip", small.conversation, "tool-call-dropped")
    pair.deploy.__dict__["_tool_parser"] = real  # the real LLaMA-Factory extractor reads both actions
    assert CHECKS["tool-roundtrip"].run(pair.case(small.conversation)) is None


def test_planted_resorted_arguments_are_an_order_finding():
    pair, real = _planted("jinja:.", HERMES, Resorted)
    convs = list(generate(80, seed=5, tools=True, hostile=False))
    found = _class(run_pair(pair, convs, checks=["tool-roundtrip"]), "tool-arguments-order")
    small = found.failure
    assert found.where == "tool_calls[*].function.arguments (key order)"
    assert any(re.fullmatch(r"tool_calls\[\d\]\.function\.arguments(\.\w+)*", p) for p in small.tokens["paths"])
    assert len(small.conversation.messages) <= 3
    _still_fails(pair, "tool-roundtrip", small.conversation, "tool-arguments-order")
    pair.deploy.__dict__["_tool_parser"] = real
    assert CHECKS["tool-roundtrip"].run(pair.case(small.conversation)) is None


def test_planted_dropped_parallel_call():
    pair, real = _planted("jinja:.", HERMES, DropSecond)
    convs = list(generate(80, seed=5, tools=True, parallel_calls=True, hostile=False))
    found = _class(run_pair(pair, convs, checks=["tool-roundtrip"]), "tool-call-dropped")
    small = found.failure
    assert small.tokens["paths"][0] == "tool_calls[1] missing" and _calls(small) == 2  # shrunk to two calls
    assert len(small.tokens["parsed_calls"]) == 1
    _still_fails(pair, "tool-roundtrip", small.conversation, "tool-call-dropped")
    pair.deploy.__dict__["_tool_parser"] = real
    assert CHECKS["tool-roundtrip"].run(pair.case(small.conversation)) is None


def test_planted_reasoning_parser_that_never_splits():
    pair = make_pair(load_model(model="qwen3"), "jinja:.", "hf:.,reasoning_parser=qwen3")
    real = pair.deploy.reasoning_parser
    pair.deploy.__dict__["_reasoning_parser"] = NoSplit()
    conv = Conversation.from_openai([{"role": "user", "content": "Hi?"},
                                     {"role": "assistant", "content": "Hello.", "reasoning_content": "Greet back."}])
    failure = CHECKS["reasoning-roundtrip"].run(pair.case(conv))
    assert failure is not None and failure.cause == "reasoning-split" and failure.where == "assistant.reasoning"
    assert failure.tokens["trained_reasoning"] == "Greet back." and failure.tokens["parsed_reasoning"] is None
    pair.deploy.__dict__["_reasoning_parser"] = real  # the real qwen3 parser splits the trained text back
    assert CHECKS["reasoning-roundtrip"].run(pair.case(conv)) is None


def _quiet(n: int) -> None:
    pair = make_pair(load_model(model="qwen2.5"), "jinja:.", HERMES)
    convs = list(generate(n, seed=0, tools=True, parallel_calls=True))
    check = run_pair(pair, convs, checks=["tool-roundtrip"]).checks[0]
    assert check.errors == 0, [(c.cause, c.where, c.failure and c.failure.explanation) for c in check.classes]
    assert check.examples_run == n
    # warnings only for answers whose own text holds control-token text (the generator's hostile texts)
    assert {c.cause for c in check.classes} <= {"answer-control-text"}
    calls = sum(len(m.tool_calls) for c in convs for m in c.messages)
    assert calls > n  # the sweep did check calls, parallel ones too
    assert any(len(m.tool_calls) > 1 for c in convs for m in c.messages)


def test_quiet_on_the_model_template_with_hermes_200():
    _quiet(200)


@pytest.mark.slow
def test_quiet_on_the_model_template_with_hermes_2000():
    _quiet(2000)


def test_no_parser_is_skipped_never_passed():
    pair = make_pair(load_model(model="qwen2.5"), "jinja:.", "hf:.")
    result = run_pair(pair, generate(20, seed=0, tools=True), checks=["tool-roundtrip", "reasoning-roundtrip"])
    for check in result.checks:
        assert check.verdict == "skipped" and check.examples_run == 0
        assert "parser" in check.note


def test_conversations_without_tools_are_not_applicable():
    pair = make_pair(load_model(model="qwen2.5"), "jinja:.", HERMES)
    check = run_pair(pair, generate(15, seed=0, tools=False), checks=["tool-roundtrip"]).checks[0]
    assert check.verdict == "skipped" and check.examples_run == 0
    assert "15 not applicable" in check.note and "offers no tools" in check.note
    mixed = run_pair(pair, generate(40, seed=0, tools="any"), checks=["tool-roundtrip"]).checks[0]
    with_tools = sum(1 for c in generate(40, seed=0, tools="any") if c.tools)
    assert mixed.examples_run == with_tools and 0 < with_tools < 40  # the check kept running after a no-tools one


def test_deepseek_r1_swallows_answers_trained_without_a_think_block():
    """Real: R1's template drops reasoning from rendered answers, so the model learns to emit no </think>;
    vLLM's deepseek_r1 parser returns such text entirely as reasoning."""
    pair = make_pair(load_model(model="deepseek-r1"), "jinja:.", "hf:.,reasoning_parser=deepseek_r1")
    conv = Conversation.from_openai([{"role": "user", "content": "Hi?"},
                                     {"role": "assistant", "content": "Hello.", "reasoning_content": "Greet back."}])
    failure = CHECKS["reasoning-roundtrip"].run(pair.case(conv))
    assert failure is not None and failure.cause == "reasoning-swallowed" and failure.severity == "error"
    assert failure.tokens["parsed_reasoning"].strip() == "Hello." and not failure.tokens["parsed_content"]
    assert "drops this answer's reasoning" in failure.explanation


def test_parser_options_are_deploy_only_and_checked():
    tok = load_model(model="qwen2.5")
    with pytest.raises(SpecError, match="tool_parser is a deploy option"):
        build_renderer("jinja:.,tool_parser=hermes", tok, side="train")
    with pytest.raises(SpecError, match="reasoning_parser is a deploy option"):
        build_renderer("llamafactory:qwen,reasoning_parser=qwen3", tok, side="train")
    with pytest.raises(SpecError, match="tool_parser='nope' is not accepted"):
        build_renderer("hf:.,tool_parser=nope", tok, side="deploy")
    deploy = build_renderer("hf:.,tool_parser=hermes,reasoning_parser=qwen3", tok, side="deploy")
    assert deploy.describe()["tool_parser"] == "hermes" and "tool_parser" not in deploy.template_kwargs
    assert "tool_parser" not in build_renderer("hf:.", tok, side="deploy").describe()


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_cli_bad_parser_name_exits_2_with_one_line(tmp_path):
    proc = _cli("check", "--model", "qwen2.5", "--train", "jinja:.", "--deploy", "hf:.,tool_parser=hermez",
                "--examples", "5", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("harness: error:") and "hermez" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_end_to_end_with_hermes(tmp_path):
    proc = _cli("check", "--model", "qwen2.5", "--train", "jinja:.", "--deploy", HERMES, "--tools", "on",
                "--examples", "40", "--checks", "tool-roundtrip", "--report-dir", "rep", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    check = report["targets"][0]["checks"][0]
    assert check["name"] == "tool-roundtrip" and check["verdict"] in ("pass", "warn")
    assert report["targets"][0]["deploy"] == HERMES


class Crashes(ToolParser):
    """A parser that raises inside, as vLLM's do on some inputs (the server answers HTTP 500)."""

    name, skip_special_tokens = "planted:crash", True

    def parse(self, text: str, tools: Sequence[Any]) -> ParsedOutput:
        from harness.parsers.vllm import ParserCrashed

        raise ParserCrashed("planted:crash raised IndexError: list index out of range")


def test_a_parser_crash_is_a_finding_not_an_abort():
    pair = make_pair(load_model(model="qwen2.5"), "jinja:.", HERMES)
    pair.deploy.__dict__["_tool_parser"] = Crashes()  # never builds the real one: no vLLM import
    conv = Conversation.from_openai({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                                     "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]})
    failure = CHECKS["tool-roundtrip"].run(pair.case(conv))
    assert failure is not None and failure.cause == "parser-crashed" and failure.severity == "error"
    assert "IndexError" in failure.explanation and failure.where == "parser"


def test_numbers_compare_by_value_but_a_number_returned_as_text_differs():
    """JSON has one number type (Ollama returns 3.0 as 3); a parser typing an argument as a string is caught."""
    from harness.checks.roundtrip import call_differences

    want = [{"function": {"name": "f", "arguments": {"x": 3.0, "n": 2}}}]
    assert call_differences(want, [{"function": {"name": "f", "arguments": {"x": 3, "n": 2.0}}}]) is None
    assert call_differences(want, [{"function": {"name": "f", "arguments": {"x": 3.0, "n": "2"}}}]) == \
        ("tool-arguments", ["tool_calls[0].function.arguments.n"])


def test_key_order_is_judged_only_where_the_engine_keeps_replayed_order():
    """vLLM renders replayed arguments in the client's key order; Ollama's Go maps print them sorted, so a sorted
    return is no round-trip finding there (the tools check reports the prompt's own key order)."""
    from harness.checks.roundtrip import call_differences
    from harness.parsers.ollama import OllamaToolParser

    want = [{"function": {"name": "f", "arguments": {"b": 1, "a": 2}}}]
    got = [{"function": {"name": "f", "arguments": {"a": 2, "b": 1}}}]
    assert call_differences(want, got) == ("tool-arguments-order", ["tool_calls[0].function.arguments"])
    assert call_differences(want, got, order=OllamaToolParser.keeps_argument_order) is None
