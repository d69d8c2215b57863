"""vLLM fidelity: ``hf:`` prompt ids vs the real vLLM 0.33 chat path (benchmarks/vllm_fidelity.py).

The real ``vllm`` package (installed ``--no-deps``, CPU) is imported once for the module (~20 s). A prompt agrees
when both sides give the same ids or both refuse it. Planted bugs (a renderer that drops the generation prompt,
one that passes strings to a template vLLM passes text parts, tool-call keys in the old order) must be caught.
The 10,000-conversation sweep is ``slow``.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from benchmarks import vllm_fidelity as vf
from harness.corpus import corpus
from harness.calibrate import template_text
from harness.renderers import hf
from harness.renderers._content_format import detect_content_format
from harness.specs import build_renderer
from harness.zoo import load_zoo_tokenizer, zoo_model_dir

pytestmark = pytest.mark.real_tokenizer

SEED = 0
#: the unmarked run: 50 conversations on each, 300 in all; string and openai content formats, thinking off,
#: a template that prints tool calls with tojson (mistral-v3), and one that renders nothing from string content
QUICK = ("qwen2.5", "qwen3 enable_thinking=false", "mistral-v3", "llama3", "trl:smolvlm", "trl:gemma4")
SLOW_TOTAL = 10_000


@pytest.fixture(scope="module")
def vllm():
    """The real vLLM, imported once; transformers' clock pinned as the harness's (llama3 prints the date)."""
    pytest.importorskip("vllm.renderers.online_renderer", reason="vllm 0.33 is not installed (see README)")
    vf.pin_clock()
    return vf


def _target(name: str) -> vf.Target:
    return next(t for t in vf.targets() if t.name == name)


_CHATS: dict[str, vf.VllmChat] = {}


def _chat(target: vf.Target) -> vf.VllmChat:
    """One vLLM server per target for the module (tokenizer load ~5 s)."""
    if target.name not in _CHATS:
        source = open(target.template, encoding="utf-8").read() if target.template else None
        _CHATS[target.name] = vf.VllmChat(str(zoo_model_dir(target.model)), source, dict(target.kwargs) or None)
    return _CHATS[target.name]


def test_content_format_detection_agrees_with_vllm(vllm) -> None:
    """Our port of vLLM's ``_detect_content_format`` gives vLLM's answer on every corpus template."""
    from vllm.renderers.hf import _detect_content_format

    counts = {"string": 0, "openai": 0}
    wrong = []
    for template in corpus(("zoo", "trl", "axolotl")):
        source = template_text(template)
        theirs = _detect_content_format(source, default="string")
        counts[theirs] += 1
        if detect_content_format(source) != theirs:
            wrong.append(template.id)
    print(f"\ncontent format: {counts}, disagreements: {wrong}")
    assert not wrong
    assert counts["openai"] >= 20 and counts["string"] >= 20  # both answers exercised


#: the walk's branches, each a template vLLM answers for: loops over content directly, through a variable or a
#: namespace alias of messages, a macro argument (positional, keyword), a bare ``content`` in and out of macros,
#: a tuple loop target (vLLM's assert -> "string"), a template that does not parse
EDGES = (
    "{% for m in messages %}{% for p in m['content'] %}{{ p.text }}{% endfor %}{% endfor %}",
    "{% for m in messages %}{% for p in m.content %}{{ p }}{% endfor %}{% endfor %}",
    "{% set msgs = messages[1:] %}{% for m in msgs %}{% for p in m.content | list %}{{ p }}{% endfor %}{% endfor %}",
    "{% set ns = namespace(rest=messages) %}{% for m in ns.rest %}{% for p in m['content'] %}{% endfor %}{% endfor %}",
    "{% macro show(c) %}{% for p in c %}{{ p }}{% endfor %}{% endmacro %}"
    "{% for m in messages %}{{ show(m.content) }}{% endfor %}",
    "{% macro show(x, c=none) %}{% for p in c %}{{ p }}{% endfor %}{% endmacro %}"
    "{% for m in messages %}{{ show(1, c=m['content']) }}{% endfor %}",
    "{% macro show(c) %}{% for p in content %}{{ p }}{% endfor %}{% endmacro %}{{ show(1) }}",
    "{% for m in messages %}{% set content = m.content %}{% for p in content %}{% endfor %}{% endfor %}",
    "{% for i, m in messages %}{% for p in m.content %}{% endfor %}{% endfor %}",
    "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    "{% for m in messages %}{{ m.content }}{% endfor",
)


def test_content_format_edge_cases_agree_with_vllm(vllm) -> None:
    from vllm.renderers.hf import _detect_content_format

    answers = [_detect_content_format(t, default="string") for t in EDGES]
    assert [detect_content_format(t) for t in EDGES] == answers
    assert answers.count("openai") >= 5 and answers.count("string") >= 3


def test_hf_agrees_with_vllm_on_300_conversations(vllm) -> None:
    rows = [vf.measure(_target(name), 50, SEED, chat=_chat(_target(name))) for name in QUICK]
    print("\n" + vf.HEADER + "\n" + "\n".join(vf.line(r) for r in rows))
    assert sum(r.conversations for r in rows) >= 300
    assert {r.content_format for r in rows} >= {"string", "openai"}
    for row in rows:
        assert row.prompts > row.conversations and row.agree > row.both_refuse, row
        assert row.differ == 0, f"{row.target}: {row.reasons} {row.examples}"


class _NoGenerationPrompt(hf.HFRenderer):
    """Planted bug: renders every prompt without the generation prompt."""

    def render_text(self, conv, *, add_generation_prompt: bool = True) -> str:
        return super().render_text(conv, add_generation_prompt=False)


class _StringContent(hf.HFRenderer):
    """Planted bug: the old simplification, message content always a string."""

    def content_format(self, tools):
        return "string"


def _planted(name: str, cls: type) -> vf.Row:
    target = _target(name)
    tok = load_zoo_tokenizer(target.model)
    real = build_renderer(target.spec, tok, side="deploy")
    bad = cls(**{f.name: getattr(real, f.name) for f in dataclasses.fields(real)})
    return vf.measure(target, 20, SEED, chat=_chat(target), deploy=bad)


def test_catches_a_dropped_generation_prompt(vllm) -> None:
    row = _planted("qwen2.5", _NoGenerationPrompt)
    assert row.differ == row.prompts > 0
    assert row.reasons == {"text differs": row.prompts}
    assert "<|im_start|>assistant" in row.examples[0]  # the vLLM side shows what is missing


def test_catches_string_content_where_vllm_passes_parts(vllm) -> None:
    """SmolVLM's template prints only text parts: with strings the user's words vanish from the prompt."""
    row = _planted("trl:smolvlm", _StringContent)
    assert row.content_format == "openai"
    # text parts vanish, or the template indexes a string (``content[0]``) and refuses where vLLM renders
    assert row.differ > row.prompts // 2 and set(row.reasons) == {"text differs", "only hf: refuses"}


def test_catches_tool_call_keys_in_another_order(vllm, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mistral-v3 prints ``tool_call.function|tojson``: vLLM's pydantic order is arguments, then name."""
    right = hf._parse_call

    def name_first(call):
        fn = right(call)["function"]
        return {**right(call), "function": {"name": fn["name"], "arguments": fn["arguments"]}}

    monkeypatch.setattr(hf, "_parse_call", name_first)
    row = _planted("mistral-v3", hf.HFRenderer)
    assert row.differ > 0 and row.reasons == {"text differs": row.differ}


@pytest.mark.slow
def test_hf_agrees_with_vllm_on_10000_conversations(vllm) -> None:
    targets = vf.targets()
    n = math.ceil(SLOW_TOTAL / len(targets))
    rows = [vf.measure(t, n, SEED, chat=_chat(t)) for t in targets]
    print("\n" + vf.HEADER + "\n" + "\n".join(vf.line(r) for r in rows))
    assert sum(r.conversations for r in rows) >= SLOW_TOTAL
    prompts, agree = sum(r.prompts for r in rows), sum(r.agree for r in rows)
    assert agree / prompts >= 0.999
    assert all(r.differ == 0 for r in rows), [(r.target, r.reasons, r.examples) for r in rows if r.differ]
