"""The real vLLM 0.33 parsers behind harness.parsers: vLLM's own upstream test cases (fixtures/parsers/
vllm_upstream.json) agree through the wrappers, known divergences stay divergent (strict), and planted wrapper
bugs (a dropped call, re-serialised arguments) are caught."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.errors import SpecError
from harness.parsers import ParsedCall, ParsedOutput, build_reasoning_parser, build_tool_parser
from harness.parsers.fidelity import check_case, load_cases
from harness.parsers.registry import VLLM_REASONING_PARSERS, VLLM_TOOL_PARSERS

pytestmark = pytest.mark.real_tokenizer

ROOT = Path(__file__).resolve().parent.parent
CASES = load_cases(ROOT / "fixtures" / "parsers" / "vllm_upstream.json")


def _api():
    from harness.parsers.vllm import vllm_api

    try:
        return vllm_api()
    except SpecError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def build():
    _api()
    from benchmarks.parser_fidelity import builder

    return builder()


def test_static_names_are_what_vllm_registers():
    api = _api()
    assert api.version == "0.33.0"
    assert VLLM_TOOL_PARSERS == api.tool_names and VLLM_REASONING_PARSERS == api.reasoning_names


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_upstream_case(case, build):
    bad = check_case(case, build)
    if case.divergence:  # strict: the day vLLM's behaviour changes, this fails and the fixture is updated
        assert bad, f"known divergence no longer diverges: {case.divergence}"
    else:
        assert bad == []


def test_every_known_divergence_is_explained():
    assert all(len(c.divergence) > 40 for c in CASES if c.divergence)
    assert sum(1 for c in CASES if c.divergence) <= 10


# --- planted wrapper bugs: the upstream cases must catch each one -------------------------------------------------

class _Planted:
    def __init__(self, inner, mutate):
        self.inner, self.mutate = inner, mutate
        self.name, self.skip_special_tokens = inner.name, inner.skip_special_tokens

    def parse(self, text, tools):
        return self.mutate(self.inner.parse(text, tools))


def _drop_second(out: ParsedOutput) -> ParsedOutput:
    return dataclasses.replace(out, calls=out.calls[:1])


def _resort(out: ParsedOutput) -> ParsedOutput:
    calls = tuple(ParsedCall(c.name, json.dumps(c.arguments, sort_keys=True, ensure_ascii=False), c.arguments)
                  if c.arguments is not None else c for c in out.calls)
    return dataclasses.replace(out, calls=calls)


def _compact(out: ParsedOutput) -> ParsedOutput:
    calls = tuple(ParsedCall(c.name, json.dumps(c.arguments, separators=(",", ":")), c.arguments)
                  if c.arguments is not None else c for c in out.calls)
    return dataclasses.replace(out, calls=calls)


@pytest.mark.parametrize("mutate, must_fail", [
    (_drop_second, {"llama3_json/multiple_json", "pythonic/parallel_calls", "mistral/multiple_tools",
                    "deepseek_v3/parallel_tool_calls", "glm47/multiple"}),
    (_resort, {"pythonic/more_types", "pythonic/parallel_calls"}),
    (_compact, {"hermes/qwen2.5/tool_call_between_tags", "mistral/single_tool_add", "pythonic/simple"}),
], ids=["dropped-parallel-call", "sort-keys", "compact-separators"])
def test_planted_wrapper_bug_is_caught(mutate, must_fail, build):
    cases = {c.id: c for c in CASES}
    caught = {cid for cid in must_fail
              if check_case(cases[cid], lambda case: _Planted(build(case), mutate))}
    assert caught == must_fail
    assert all(check_case(cases[cid], build) == [] for cid in must_fail)  # and the real wrapper passes them


# --- construction and detokenisation ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, name, model, skip", [
    ("tool", "hermes", "qwen2.5", False),        # Hermes2ProToolParser.adjust_request: tool tokens may be special
    ("tool", "llama3_json", "llama3", True),     # base ToolParser.adjust_request leaves the default
    ("tool", "mistral", "mistral-v3", False),    # vllm/parser/mistral.py adjust_request keeps [TOOL_CALLS]
    ("reasoning", "deepseek_r1", "deepseek-r1", True),
    ("reasoning", "qwen3", "qwen3", False),      # the parser-engine adapter always keeps special tokens
])
def test_skip_special_tokens_is_what_vllm_requests(kind, name, model, skip):
    from harness.zoo import load_zoo_tokenizer

    _api()
    make = build_tool_parser if kind == "tool" else build_reasoning_parser
    parser = make(name, load_zoo_tokenizer(model))
    assert parser.skip_special_tokens is skip
    assert parser.describe()["vllm"] == "0.33.0"


@pytest.mark.parametrize("kind, name", [("reasoning", "deepseek_r1"), ("tool", "deepseek_v3")])
def test_parser_without_its_tokens_is_a_spec_error(kind, name):
    from harness.zoo import load_zoo_tokenizer

    _api()
    make = build_tool_parser if kind == "tool" else build_reasoning_parser
    with pytest.raises(SpecError) as e:
        make(name, load_zoo_tokenizer("qwen2.5"))
    msg = str(e.value)
    assert repr(name) in msg and "qwen2.5" in msg and ("token" in msg.lower())


def test_hermes_two_calls_keep_order_text_and_leading_content():
    from harness.conversation import Tool
    from harness.zoo import load_zoo_tokenizer

    _api()
    p = build_tool_parser("vllm:hermes", load_zoo_tokenizer("qwen2.5"))
    text = ('Let me check.\n<tool_call>\n{"name": "b", "arguments": {"z": 1, "a": 2.0}}\n</tool_call>\n'
            '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>')
    out = p.parse(text, [Tool("a"), Tool("b")])
    assert out == ParsedOutput((ParsedCall("b", '{"z": 1, "a": 2.0}', {"z": 1, "a": 2.0}), ParsedCall("a", "{}", {})),
                               "Let me check.\n")
    assert p.parse(text, []) == ParsedOutput((), text)  # no tools offered: the server does not parse calls


def test_an_engine_exception_is_parser_crashed(monkeypatch):
    from harness.conversation import Tool
    from harness.parsers.vllm import ParserCrashed, VllmToolParser
    from harness.zoo import load_zoo_tokenizer

    _api()
    p = build_tool_parser("hermes", load_zoo_tokenizer("qwen2.5"))
    real_new = VllmToolParser._new

    def crashing(self, request):
        inner = real_new(self, request)
        monkeypatch.setattr(inner, "parse", lambda *a, **k: (_ for _ in ()).throw(ValueError("boom")))
        return inner

    monkeypatch.setattr(VllmToolParser, "_new", crashing)
    with pytest.raises(ParserCrashed, match="vllm:hermes raised ValueError: boom"):
        p.parse("<tool_call>\n{}\n</tool_call>", [Tool("f")])


@pytest.mark.parametrize("name, model", [("glm45", "glm4"), ("qwen3", "qwen3")])
def test_thinking_switch_decides_what_text_without_think_is(name, model):
    """vLLM 0.33's engine reasoning parsers read text without ``</think>`` as reasoning while thinking is on
    (the default) and as content when the request's chat_template_kwargs switch it off."""
    from harness.zoo import load_zoo_tokenizer

    _api()
    tok = load_zoo_tokenizer(model)
    assert build_reasoning_parser(name, tok).split("The answer.") == ("The answer.", None)
    off = build_reasoning_parser(name, tok, chat_template_kwargs={"enable_thinking": False})
    assert off.split("The answer.") == (None, "The answer.")
    assert off.describe()["chat_template_kwargs"] == {"enable_thinking": False}
