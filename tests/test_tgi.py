"""``tgi:``: TGI's router rendering (real minijinja engine) against ``hf:`` (vLLM/transformers) on zoo models.

For each model, generated conversations (``tools="any"``, no reasoning) are rendered for every assistant index
``k`` by ``tgi:.`` and ``hf:.``; a conversation agrees when every prompt text is identical. Every difference is
put into one class, and each class is *proven* by a counterfactual render, so nothing is left unexplained:

* ``tools`` — the conversation defines tools. TGI (tool_choice auto) appends a ``no_tool`` function, hands each
  tool to the template as ``{"function": {"arguments": "<parameters as a JSON string>", "description", "name"},
  "type"}`` (maps sorted, ``tojson`` compact), and appends ``"\\n---\\n" + TOOL_PROMPT`` to the last message
  (with the tools' JSON before it when the template never reads ``tools``, e.g. GLM-4 and DeepSeek-V3 here).
  Proof: the TGI text contains TGI's tool prompt.
* ``whitespace`` — TGI's ``Environment::new()`` has no ``trim_blocks``/``lstrip_blocks``: a newline after a
  ``%}`` that HF's jinja2 trims stays (Llama-3.2's template: ``<|begin_of_text|>\\n<|start_header_id|>``, on
  every prompt). Proof: the same minijinja template with both switched on renders HF's text.
* ``strip`` — ``.strip()`` is Python's in jinja2 but minijinja's pycompat uses Rust ``char::is_whitespace``,
  which does not count the separators U+001C..U+001F: a system text starting with them keeps them under TGI.
  Proof: the (whitespace-trimmed) texts are equal once those four characters are deleted.
* ``tool-calls`` (the tools-stripped sweep): with the tool definitions removed but assistant tool calls kept,
  TGI flattens a call-only turn to its serde JSON as ``content`` and drops ``tool_calls``, so templates that
  format calls (Qwen ``<tool_call>``) differ, and templates that refuse some calls (Llama-3.2: "only supports
  single tool-calls") never see them, so TGI renders what HF rejects. Proof: the prompt holds an assistant
  message with tool calls (and with whitespace the trimmed counterfactual shows no other difference).

Counts are asserted exactly (generation is seeded); ``pytest -s`` prints the table. The 2,000-conversation sweep
is ``slow``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import pytest

minijinja = pytest.importorskip("minijinja", reason="pip install --no-deps -r requirements-engines.txt")

from harness.api import load_model, make_pair  # noqa: E402
from harness.conversation import Conversation
from harness.errors import InputError, RenderRejected, TemplateError
from harness.generate import generate
from harness.renderers.tgi import TOOL_PROMPT, TGIRenderer, compile_template, tgi_source
from harness.specs import build_renderer
from tests.conftest import fixture, result_of, sweep

pytestmark = pytest.mark.real_tokenizer

MODELS = ("qwen2.5", "qwen3", "llama3", "glm4", "deepseek-v3")
DEFAULT_N = 300
SLOW_N = 2000

#: model → n → (conversations agreeing, {class: conversations}) with tool definitions, then tools stripped.
EXPECTED = {
    300: {
        "qwen2.5": (162, {"tools": 138}, 189, {"tool-calls": 111}),
        "qwen3": (162, {"tools": 138}, 189, {"tool-calls": 111}),
        "llama3": (0, {"tools": 138, "whitespace": 162}, 0, {"tool-calls": 111, "whitespace": 300}),
        "glm4": (162, {"tools": 138}, 209, {"tool-calls": 91}),
        "deepseek-v3": (162, {"tools": 138}, 209, {"tool-calls": 91}),
    },
    2000: {
        "qwen2.5": (993, {"tools": 1007}, 1229, {"tool-calls": 771}),
        "qwen3": (993, {"tools": 1007}, 1229, {"tool-calls": 771}),
        "llama3": (0, {"tools": 1007, "whitespace": 993}, 0, {"tool-calls": 771, "whitespace": 2000}),
        "glm4": (993, {"tools": 1007}, 1376, {"tool-calls": 624}),
        "deepseek-v3": (993, {"tools": 1007}, 1376, {"tool-calls": 624}),
    },
}


@dataclass
class Fidelity:
    model: str
    convs: int = 0
    agree: int = 0
    classes: collections.Counter = field(default_factory=collections.Counter)
    unexplained: list[str] = field(default_factory=list)


def _trimmed(renderer: TGIRenderer, conv: Conversation) -> str:
    """The TGI rendering with jinja2's trim_blocks/lstrip_blocks switched on (the whitespace counterfactual)."""
    t = renderer.template
    trimmed = TGIRenderer(renderer.spec, renderer.tokenizer, compile_template(t.source, t.origin, t.fuel, True))
    return trimmed.render_text(conv)


#: U+001C..U+001F: whitespace to Python's str.strip (jinja2), not to Rust's char::is_whitespace (pycompat strip).
_SEPARATORS = {c: None for c in range(0x1C, 0x20)}


def _attempt(fn):
    try:
        return fn()
    except RenderRejected as exc:
        return ("raise", exc.reason)


def measure(model: str, n: int, *, strip_tools: bool = False) -> Fidelity:
    tok = load_model(model=model)
    hf = make_pair(tok, "jinja:.", "hf:.").deploy
    tgi = make_pair(tok, "jinja:.", "tgi:.").deploy
    fid = Fidelity(model)
    for conv in generate(n, seed=0, tools="any", reasoning=False):
        if strip_tools:
            conv = Conversation(conv.messages, ())
        fid.convs += 1
        kinds = set()
        for k in conv.assistant_indices:
            prompt = conv.prefix(k)
            a, b = _attempt(lambda: hf.render_text(prompt)), _attempt(lambda: tgi.render_text(prompt))
            if a == b:
                continue
            calls = any(m.tool_calls for m in prompt.messages)
            if isinstance(b, str) and prompt.tools and TOOL_PROMPT.strip()[:40] in b:
                kinds.add("tools")
            elif isinstance(b, str) and _attempt(lambda: _trimmed(tgi, prompt)) == a:
                kinds.add("whitespace")
            elif isinstance(a, str) and isinstance(b, str) and a.translate(_SEPARATORS) == _attempt(
                    lambda: _trimmed(tgi, prompt)).translate(_SEPARATORS):
                kinds.add("strip")
            elif isinstance(b, str) and calls and (not prompt.tools or isinstance(a, tuple)):
                kinds.add("tool-calls")
            else:
                kinds.add("unexplained")
                if len(fid.unexplained) < 3:
                    fid.unexplained.append(f"{conv.to_json()[:300]}\n  hf ={str(a)[:300]!r}\n  tgi={str(b)[:300]!r}")
        fid.agree += not kinds
        for kind in kinds:
            fid.classes[kind] += 1
    return fid


@pytest.fixture(scope="module")
def table():
    rows: list[str] = []
    yield rows
    if rows:
        print("\n\nTGI (minijinja) vs hf (vLLM/transformers) prompt text, conversations:")
        print("\n".join(rows))


def check(model: str, n: int, table: list[str]) -> None:
    with_tools, without = measure(model, n), measure(model, n, strip_tools=True)
    row = (f"{model:<12} n={n:<5} agree {with_tools.agree:>5} {dict(sorted(with_tools.classes.items()))}  |  "
           f"tools stripped: agree {without.agree:>5} {dict(sorted(without.classes.items()))}")
    table.append(row)
    print("\n" + row)
    assert not with_tools.unexplained and not without.unexplained, "\n".join(with_tools.unexplained
                                                                              + without.unexplained)
    expected = EXPECTED[n].get(model)
    if expected is not None:
        assert (with_tools.agree, dict(with_tools.classes), without.agree, dict(without.classes)) == expected


@pytest.mark.parametrize("model", MODELS)
def test_tgi_vs_hf_differences_are_all_explained(model: str, table: list[str]) -> None:
    check(model, DEFAULT_N, table)


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_tgi_vs_hf_differences_are_all_explained_slow(model: str, table: list[str],
                                                      request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip(f"{SLOW_N}-conversation sweep: select it with -m slow")
    check(model, SLOW_N, table)


def test_engine_settings_match_tgi() -> None:
    """No trim/lstrip, pycompat methods on, tojson compact and HTML-safe, sorted maps, none prints 'none'."""
    t = compile_template("{% for k, v in d.items() %}{{ k }}{% endfor %}|{{ d|tojson }}|{{ ' x '.strip() }}|"
                         "{{ b }}|{% if 1 %}\nY{% endif %}", "probe")
    out = t.render("deploy", d={"a": "<&'>", "b": 1}, b=None)
    assert out == 'ab|{"a":"\\u003c\\u0026\\u0027\\u003e","b":1}|x|none|\nY'
    assert tgi_source("{{ messages[::-1] }}{% generation %}x{% endgeneration %}") == "{{ messages|reverse }}x"


def test_flattened_tool_call_and_tool_prompt() -> None:
    tok = load_model(model="qwen2.5")
    conv = Conversation.from_openai({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]})
    text = build_renderer("tgi:.", tok, side="deploy").render_text(conv)
    assert ('[{"id":"c1","type":"function","function":{"description":null,"name":"get",'
            '"arguments":"\\"{\\\\\\"city\\\\\\": \\\\\\"Paris\\\\\\"}\\""}}]') in text


def test_raise_exception_is_a_rejection_and_hostile_loops_run_out_of_fuel(tmp_path) -> None:
    tok = load_model(model="qwen2.5")
    conv = Conversation.from_openai([{"role": "user", "content": "hi"}])
    refusing = tmp_path / "refuse.jinja"
    refusing.write_text("{{ raise_exception('no system role') }}")
    with pytest.raises(RenderRejected, match="no system role"):
        build_renderer(f"tgi:{refusing}", tok, side="deploy").render_text(conv)
    hostile = tmp_path / "loop.jinja"
    hostile.write_text("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}")
    with pytest.raises(TemplateError, match="ran out of fuel"):
        build_renderer(f"tgi:{hostile},fuel=100000", tok, side="deploy").render_text(conv)
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% if %}")
    with pytest.raises(TemplateError, match="line 1"):
        build_renderer(f"tgi:{broken}", tok, side="deploy")
    with pytest.raises(InputError, match="fuel"):
        build_renderer("tgi:.,fuel=-1", tok, side="deploy")


def test_tokenised_without_special_tokens_and_stops_on_generation_config() -> None:
    tok = load_model(model="llama3")
    r = build_renderer("tgi:.", tok, side="deploy")
    conv = Conversation.from_openai([{"role": "user", "content": "hi"}])
    ids = r.render(conv).ids
    assert ids == tuple(r.render(conv, detail=False).ids) and ids.count(tok.bos_id) == 1
    assert tok.eos_id in r.stop_ids or set(tok.generation_eos_ids) <= r.stop_ids


def test_tgi_verdict_on_qwen25_whitespace_agrees_tools_fail() -> None:
    """Qwen2.5's own template trained by TRL, served by TGI: consistent without tools; with tools the served
    prompt carries TGI's tool layout and tool prompt, a real prompt-prefix failure."""
    assert sweep("jinja:.", "tgi:.", tools=False).verdict == "consistent"
    failure = result_of(sweep("jinja:.", "tgi:.", checks=["prompt-prefix"]), "prompt-prefix").failure
    assert failure is not None and failure.conversation.tools
    assert sweep("jinja:" + fixture("templates/chatml.jinja"), "tgi:" + fixture("templates/chatml.jinja"),
                 tools=False).verdict == "consistent"


def test_minijinja_is_the_pinned_engine() -> None:
    import importlib.metadata as md

    assert md.version("minijinja") == "2.9.0"
    assert minijinja.Environment().pycompat


def test_strip_class_minijinja_keeps_information_separators() -> None:
    """The ``strip`` class, which the seeded sweep no longer happens to hit: Llama-3.2's ``|trim`` of the system
    text keeps a leading U+001C under TGI (Rust whitespace) and drops it under jinja2 (Python whitespace)."""
    tok = load_model(model="llama3")
    hf, tgi = make_pair(tok, "jinja:.", "hf:.").deploy, make_pair(tok, "jinja:.", "tgi:.").deploy
    conv = Conversation.from_openai([{"role": "system", "content": "\x1cbe brief"}, {"role": "user", "content": "hi"}])
    a, trimmed = hf.render_text(conv), _trimmed(tgi, conv)
    assert "\x1c" not in a and "\x1c" in tgi.render_text(conv) and a != trimmed
    assert a.translate(_SEPARATORS) == trimmed.translate(_SEPARATORS)
