"""LLaMA-Factory 0.9.5's real tool extractors behind harness.parsers: its own upstream extractor tests
(fixtures/parsers/llamafactory_upstream.json) agree, the API server's content rule holds, and planted bugs
(the single-call ReAct regex, a dropped parallel call, re-spaced arguments) are caught."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from harness.parsers import ParsedCall, ParsedOutput, build_tool_parser
from harness.parsers.fidelity import check_case, load_cases
from tests.conftest import needs_lf

pytestmark = needs_lf

ROOT = Path(__file__).resolve().parent.parent
CASES = load_cases(ROOT / "fixtures" / "parsers" / "llamafactory_upstream.json")


def _build(case):
    return build_tool_parser(case.parser, None)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_upstream_case(case):
    assert not case.divergence and check_case(case, _build) == []


class _SingleReAct:
    """The planted bug: ReAct parsed with ``re.search`` (one call) instead of LLaMA-Factory's ``findall``."""

    name, skip_special_tokens = "planted:react-single", True

    def parse(self, text, tools):
        m = re.search(r"Action:\s*([a-zA-Z0-9_]+)\s*Action Input:\s*(.+?)(?=\s*Action:|\s*$)", text, re.DOTALL)
        if not m:
            return ParsedOutput((), text)
        args = m.group(2).strip()
        return ParsedOutput((ParsedCall(m.group(1), json.dumps(json.loads(args), ensure_ascii=False),
                                        json.loads(args)),), None)


class _Mutated:
    def __init__(self, inner, mutate):
        self.inner, self.mutate, self.name = inner, mutate, inner.name

    def parse(self, text, tools):
        return self.mutate(self.inner.parse(text, tools))


def _drop_second(out):
    return dataclasses.replace(out, calls=out.calls[:1])


def _compact(out):
    return dataclasses.replace(out, calls=tuple(
        ParsedCall(c.name, json.dumps(c.arguments, separators=(",", ":")), c.arguments) for c in out.calls))


@pytest.mark.parametrize("make, must_fail", [
    (lambda case: _SingleReAct(), {"default/test_default_multi_tool_extractor"}),
    (lambda case: _Mutated(_build(case), _drop_second),
     {"default/test_default_multi_tool_extractor", "qwen/test_qwen_multi_tool_extractor",
      "llama3/test_llama3_multi_tool_extractor", "mistral/test_mistral_multi_tool_extractor",
      "lfm2/test_lfm_multi_tool_extractor"}),
    (lambda case: _Mutated(_build(case), _compact), {c.id for c in CASES if "arguments_text" in str(c.expect)}),
], ids=["single-call-react-regex", "dropped-parallel-call", "compact-separators"])
def test_planted_bug_is_caught(make, must_fail):
    cases = {c.id: c for c in CASES}
    assert must_fail and {cid for cid in must_fail if check_case(cases[cid], make)} == must_fail
    # the single-call regex still gets one-call answers right: only the two-call answer exposes it
    if "single-call" in str(make):
        assert check_case(cases["default/test_default_tool_extractor"], make) == []


def test_api_server_drops_text_around_calls():
    out = build_tool_parser("llamafactory:qwen", None).parse(
        'Let me check.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>', [])
    assert out == ParsedOutput((ParsedCall("a", '{"x": 1}', {"x": 1}),), None)


def test_react_action_inside_an_argument_is_not_a_call():
    """LLaMA-Factory's ReAct lookahead cuts the JSON at the inner ``Action:``: no call, the text is content."""
    text = 'Action: a\nAction Input: {"y": "Action: z"}'
    assert build_tool_parser("llamafactory:default", None).parse(text, []) == ParsedOutput((), text)


def test_glm4_extractor_needs_the_whole_answer_to_be_the_call():
    assert build_tool_parser("llamafactory:glm4", None).parse('ok\nf\n{"x": 1}', []).calls == ()
