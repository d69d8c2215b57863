"""The parser registry: names, errors, and LLaMA-Factory's real extractors behind the contract."""

from __future__ import annotations

import pytest

from harness.errors import SpecError
from harness.parsers import REASONING_PARSER_NAMES, TOOL_PARSER_NAMES, build_reasoning_parser, build_tool_parser
from harness.parsers.registry import LLAMAFACTORY_FORMATS
from tests.conftest import needs_lf


def test_unknown_tool_parser_names_value_and_accepted_names():
    with pytest.raises(SpecError) as e:
        build_tool_parser("hermez", None)
    assert "'hermez'" in str(e.value) and "hermes" in str(e.value) and "llamafactory:qwen" in str(e.value)


def test_unknown_reasoning_parser_names_value_and_accepted_names():
    with pytest.raises(SpecError) as e:
        build_reasoning_parser("deepseek-r1", None)
    assert "'deepseek-r1'" in str(e.value) and "deepseek_r1" in str(e.value)


def test_names_cover_the_brief():
    for name in ("hermes", "llama3_json", "mistral", "pythonic", "glm45", "glm47", "deepseek_v3", "qwen3_coder",
                 "qwen3_xml", "qwen3_json", "llamafactory:default", "llamafactory:glm4", "llamafactory:qwen"):
        assert name in TOOL_PARSER_NAMES
    assert {"deepseek_r1", "qwen3"} <= set(REASONING_PARSER_NAMES)


@needs_lf
def test_llamafactory_formats_are_what_llamafactory_registers():
    from harness.parsers.llamafactory import llamafactory_formats

    assert LLAMAFACTORY_FORMATS == llamafactory_formats()


@needs_lf
def test_llamafactory_unknown_format():
    with pytest.raises(SpecError, match="no tool format 'qwen9'.*default"):
        build_tool_parser("llamafactory:qwen9", None)


@needs_lf
def test_llamafactory_two_react_calls_come_back_as_two():
    p = build_tool_parser("llamafactory:default", None)
    out = p.parse('Action: a\nAction Input: {"x": 1, "b": [1.0]}\nAction: b\nAction Input: {}', [])
    assert [(c.name, c.arguments_text, c.arguments) for c in out.calls] == [
        ("a", '{"x": 1, "b": [1.0]}', {"x": 1, "b": [1.0]}), ("b", "{}", {})]
    assert out.content is None and p.skip_special_tokens is True


@needs_lf
def test_llamafactory_no_call_returns_the_text_as_content():
    p = build_tool_parser("llamafactory:qwen", None)
    out = p.parse("Let me think.\n<tool_call>\n{broken\n</tool_call>", [])
    assert out.calls == () and out.content == "Let me think.\n<tool_call>\n{broken\n</tool_call>"


def test_arguments_are_strict_json():
    from harness.parsers.arguments import decode_arguments as decode

    assert decode('{"x": Infinity}') is None and decode('{"x": NaN}') is None and decode("{'x': 1}") is None
    assert decode('{"x": 1.0, "y": [1]}') == {"x": 1.0, "y": [1]} and decode('"s"') == "s"


def test_vllm_missing_is_a_spec_error_with_the_install_line(monkeypatch):
    import sys

    from harness.parsers.vllm import vllm_api

    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    with pytest.raises(SpecError, match=r"pip install --no-deps -r requirements-vllm.txt"):
        vllm_api.__wrapped__()
