"""Calibration: no false errors on correct stacks.

Every zoo template is paired with itself (deploy ``hf:.``) in every training form the harness offers — the whole
string (``jinja:.``), ``{% generation %}`` blocks (a derived variant, and TRL's own training templates where TRL's
original is the zoo template) and ``encode=segments``. Property: wherever the strings agree
(:mod:`harness.agreement`: each served prompt is a prefix of the training text reaching its answer, trained answers
hold a deploy stop, the control text is tokens, segments encode as the whole), no check reports an error.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from harness.agreement import FINDINGS, Agreement, judge, system_variants, train_view
from harness.api import load_model, make_pair
from harness.calibrate import render, run, sweep
from harness.corpus import Template, family, generation_variant_file, trl_training_templates
from harness.checks import CHECKS, Check, Failure
from harness.conversation import Conversation
from harness.generate import generate
from harness.genblocks import GenerationVariantError, generation_variant
from harness.renderers.jinja import dataset_messages
from harness.sandbox import ChatTemplate
from harness.strategies import conversations
from harness.zoo import zoo_names

from tests.conftest import fixture

MODELS = zoo_names()
FORMS = ("jinja:.", "jinja:.,encode=segments", "generation")


def _train_spec(model: str, form: str) -> str:
    if form == "generation":
        return f"jinja:{generation_variant_file(model)}"
    if form == "trl-training":
        return f"jinja:{trl_training_templates()[model]}"
    return form


@functools.lru_cache(maxsize=None)
def _pair(model: str, form: str):
    return make_pair(load_model(model=model), _train_spec(model, form), "hf:.")


#: zoo model → TRL 1.16's training template whose original is the model's template (checked below)
TRL_TRAINING = {"qwen2.5": "qwen2_5_training", "qwen3": "qwen3_training", "deepseek-r1": "deepseekv3_training",
                "deepseek-r1-distill-qwen": "deepseek_r1_distill_training"}
PAIRS = [(m, f) for m in MODELS for f in FORMS] + [(m, "trl-training") for m in TRL_TRAINING]


@pytest.mark.real_tokenizer
def test_trl_training_templates_of_the_zoo():
    assert {m: p.stem for m, p in trl_training_templates().items()} == TRL_TRAINING


def _false_errors(pair, conv: Conversation) -> list[str]:
    return [f"{j.failure.check} ({j.failure.cause or 'unclassified'}): {j.failure.explanation}"
            for j in judge(pair, conv) or () if j.finding is None]


def _assert_no_false_error(pair, conv: Conversation) -> None:
    found = _false_errors(pair, conv)
    assert not found, (f"{pair.name}: the strings agree, yet\n  " + "\n  ".join(found) +
                       f"\nconversation: {conv.to_json()}")


_CONVERSATIONS = conversations(tools="any", reasoning="any")
_SETTINGS = dict(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model,form", PAIRS)
@settings(max_examples=12, phases=(Phase.explicit, Phase.generate), **_SETTINGS)  # the slow variant shrinks
@given(conv=_CONVERSATIONS)
def test_no_error_where_the_strings_agree(model, form, conv):
    _assert_no_false_error(_pair(model, form), conv)


@pytest.mark.slow
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model,form", PAIRS)
@settings(max_examples=150, **_SETTINGS)
@given(conv=_CONVERSATIONS)
def test_no_error_where_the_strings_agree_long(model, form, conv):
    _assert_no_false_error(_pair(model, form), conv)


# --- the oracle is not vacuous, and the property can fail --------------------------------------------------------
SIMPLE = Conversation.from_openai([
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "See you."}])


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("form", FORMS)
def test_every_premise_holds_on_a_consistent_stack(form):
    """Qwen2.5 with itself: the strings agree for every check, so the property constrains every check here."""
    agreement = Agreement(_pair("qwen2.5", form), SIMPLE)
    assert {name: agreement.premise(name) for name in CHECKS} == {name: None for name in CHECKS}


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("planted,check,finding", [
    ("planted/prompt_newline.jinja", "prompt-prefix", "prompt-not-prefix"),
    ("planted/default_system.jinja", "system", "prompt-not-prefix"),
    ("planted/answer_no_stop.jinja", "answer-stop", "no-stop-text"),
    ("planted/special_typo.jinja", "special-tokens", "control-not-a-token"),
])
def test_planted_bugs_are_real_divergences(planted, check, finding):
    """Each planted bug makes its check fail, and the strings show why (a finding, not an artefact)."""
    pair = make_pair(load_model(model="qwen2.5"), f"jinja:{fixture(planted)}", f"hf:{fixture('templates/chatml.jinja')}")
    judged = [j for conv in generate(30, seed=0, tools="any") for j in judge(pair, conv) or ()
              if j.failure.check == check]
    assert judged, f"{planted}: {check} never failed"
    assert {j.finding.kind for j in judged if j.finding} == {finding}
    assert all(j.finding is not None for j in judged)


def test_an_error_where_the_strings_agree_is_reported(monkeypatch):
    """A check that errors on a consistent stack is caught as a false error (the property can fail)."""
    def always(case):
        return Failure("always-error", "error", "planted", case.conv, cause="template-text")

    monkeypatch.setitem(CHECKS, "always-error", Check("always-error", always))
    pair = _pair("qwen2.5", "jinja:.")
    assert _false_errors(pair, SIMPLE) == ["always-error (template-text): planted"]
    with pytest.raises(AssertionError, match="the strings agree, yet"):
        _assert_no_false_error(pair, SIMPLE)


@pytest.mark.real_tokenizer
def test_history_rewriting_is_a_finding():
    """Qwen3 keeps a tool round's reasoning while its turn is the last, and drops it once a later user turn
    follows: the served prompt for the answer after the tool result is not a prefix of the training text."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    conv = Conversation.from_openai({"messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": None, "reasoning_content": "ponder", "tool_calls": [call]},
        {"role": "tool", "content": "r", "tool_call_id": "c1", "name": "f"},
        {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "", "parameters": {}}}]})
    agreement = Agreement(_pair("qwen3", "jinja:."), conv)
    assert agreement.prompts(conv, 5) is None
    found = agreement.prompts(conv, 3)
    assert found.kind == "prompt-not-prefix" and "ponder" in found.detail
    judged = judge(_pair("qwen3", "jinja:."), conv)
    assert [j.failure.check for j in judged] == ["prompt-prefix", "reasoning"]  # reasoning names the stripped text
    assert [j.finding.kind for j in judged] == ["prompt-not-prefix", "prompt-not-prefix"]


@pytest.mark.real_tokenizer
def test_train_view_matches_the_training_renderer():
    """The oracle renders the training text itself; it must be the text the harness trains on."""
    for model, form in (("qwen2.5", "generation"), ("llama3", "jinja:."), ("mistral-v3", "jinja:.")):
        pair = _pair(model, form)
        for conv in generate(10, seed=3, tools="any", reasoning="any"):
            try:
                view = train_view(pair, conv)
            except Exception:  # noqa: BLE001 - a rejection is checked on the renderer side too
                continue
            assert view.text == pair.train.render(conv).text
            assert [k for k, _, _ in view.answers] == list(conv.assistant_indices)


def test_system_variants_are_the_system_checks():
    conv = Conversation.from_openai([{"role": "system", "content": "S"}, {"role": "user", "content": "u"},
                                     {"role": "assistant", "content": "a"}, {"role": "user", "content": "v"},
                                     {"role": "assistant", "content": "b"}])
    variants = system_variants(conv)
    assert [v.system for v in variants] == [None, "", "You are a careful assistant."]
    assert all(len(v.assistant_indices) == 1 and v.messages[-1].content == "Hello there." for v in variants)


def test_findings_are_documented():
    assert all(kind and text for kind, text in FINDINGS.items())


# --- the generation variant -----------------------------------------------------------------------------------
def test_generation_variant_keeps_whitespace_control():
    source = "{%- for m in messages -%}\n  [{{ m['content'] }}]\n{%- endfor %}{% if add_generation_prompt %}>{% endif %}"
    variant = generation_variant(source)
    messages = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    original = ChatTemplate(source, "t").render("train", messages=messages, add_generation_prompt=False)
    derived = ChatTemplate(variant, "v").render("train", messages=messages, add_generation_prompt=False)
    assert derived.text == original.text == "[u][a]"
    assert derived.generation == ((3, 6),)


@pytest.mark.parametrize("source,reason", [
    ("{% for m in messages %}{% if m.x %}{% continue %}{% endif %}{{ m.content }}{% endfor %}", "loop controls"),
    ("{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}", "already has"),
    ("{% for m in messages %}{{ raise_exception('no') }}{% endfor %}{{ messages[0].content }}", "no `"),
])
def test_generation_variant_refuses(source, reason):
    with pytest.raises(GenerationVariantError, match=reason):
        generation_variant(source)


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model", MODELS)
def test_generation_variant_of_every_zoo_template(model):
    """The variant writes exactly the original text, with one generation block per assistant message."""
    from harness.errors import RenderRejected
    from harness.renderers._common import special_tokens_context

    tok = load_model(model=model)
    original = ChatTemplate(tok.chat_template, model)
    variant = ChatTemplate(generation_variant(tok.chat_template), f"{model}-generation")
    rendered = 0
    for conv in generate(25, seed=1, tools="any", reasoning="any"):
        context = dict(messages=dataset_messages(conv), tools=conv.tool_dicts(), documents=None,
                       add_generation_prompt=False, **special_tokens_context(tok))
        try:
            want = original.render("train", **context)
        except RenderRejected:
            continue
        got = variant.render("train", **context)
        assert got.text == want.text
        assert len(got.generation) == len(conv.assistant_indices)
        rendered += 1
    assert rendered >= 10


# --- the table ------------------------------------------------------------------------------------------------
def test_family_picks_the_zoo_tokenizer():
    assert family("qwen3_training") == ("qwen3", True)
    assert family("deepseek_r1_distill") == ("deepseek-r1-distill-qwen", True)
    assert family("llama3_2_vision") == ("llama3", True)
    assert family("gemma3") == ("qwen2.5", False)
    assert family("mistral_v7_tekken") == ("qwen2.5", False)


@pytest.mark.real_tokenizer
def test_table_is_deterministic_and_explains_every_error():
    templates = [Template("zoo:qwen3", "qwen3", None, True), Template("zoo:qwen2.5", "qwen2.5", None, True)]
    rows = run(templates, 12, 0)
    text = render(rows, 12, 0, ["zoo"])
    assert text == render(run(templates, 12, 0), 12, 0, ["zoo"])
    assert "| zoo | 2 | 1 | 1 | 0 | 0 |" in text
    assert "| prompt-prefix | history-reasoning-stripped | prompt-not-prefix |" in text
    assert "artefact**" not in text.split("## Templates")[0].split("| check |")[1]


@pytest.mark.real_tokenizer
def test_sweep_counts_rejections():
    row = sweep(Template("zoo:llama3", "llama3", None, True), 20, 0)  # Llama-3.2 refuses parallel tool calls
    assert 0 < row.rejected < row.examples == 20


# --- harness artefacts found by the calibration (strict xfail: remove the mark when fixed) ----------------------
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model,messages,tools", [
    ("deepseek-r1", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}], []),  # '<' | '｜end▁of…'
    ("deepseek-r1-distill-qwen", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}], []),
    ("mistral-v3", [{"role": "user", "content": ""}, {"role": "assistant", "content": ""},  # '<s>[' | 'INST]'
                    {"role": "user", "content": "c"}, {"role": "assistant", "content": ""}],
     [{"type": "function", "function": {"name": "f", "description": "", "parameters": {"properties": {}}}}]),
])
def test_segments_do_not_split_a_special_token(model, messages, tools):
    """Once an artefact (an answer start inside '<｜end▁of▁sentence｜>' or '<s>[INST]', found by the calibration),
    fixed by locating answers in history-rewriting templates."""
    conv = Conversation.from_openai({"messages": messages, "tools": tools} if tools else messages)
    pair = _pair(model, "jinja:.,encode=segments")
    _assert_no_false_error(pair, conv)
    train = pair.train.render(conv)
    text, border = train.text, 0
    for segment in train.segments[:-1]:
        border += len(segment)
        cut = [t for t in pair.tokenizer.added_tokens if len(t) > 1
               and 0 <= text.find(t, max(0, border - len(t) + 1), border + len(t) - 1) < border]
        assert not cut, f"the segment border at char {border} cuts {cut}"


@pytest.mark.real_tokenizer
def test_boundary_merge_before_the_border_is_a_warning(tmp_path):
    """Once an artefact: BPE re-segments the word that runs across the served prompt's end ('hi' + 'there'), so
    the first differing training id ends before the border; it is a boundary merge (a warning), not an error."""
    template = tmp_path / "concat.jinja"  # messages back to back, as LLaMA-Factory's `empty` template writes them
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    pair = make_pair(load_model(model="qwen2.5"), f"jinja:{template}", f"hf:{template}")
    conv = Conversation.from_openai([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "there"}])
    _assert_no_false_error(pair, conv)
    failure = CHECKS["prompt-prefix"].run(pair.case(conv))
    assert failure is not None and (failure.severity, failure.cause) == ("warning", "boundary-merge")


def _phi3(name: str):
    from harness.corpus import package_templates

    path = next(t.path for t in package_templates("trl") if t.id == f"trl:{name}")
    return make_pair(load_model(model="qwen2.5"), f"jinja:{path}", f"hf:{path}")


TWO_TURNS = Conversation.from_openai([{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
                                      {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}])


@pytest.mark.real_tokenizer
def test_trl_split_stops_at_the_answer_end():
    """Phi-3 appends eos after the last message, so render(messages[:k+1]) is not a prefix of the whole rendering;
    answer k still ends where its turn ends (it ran to the end of the conversation before the answer-span fix)."""
    pair = _phi3("phi3")
    train = pair.train.render(TWO_TURNS)
    first = train.answer(1)
    assert "u2" not in pair.tokenizer.hf.decode(train.ids[first.start:first.end])


@pytest.mark.real_tokenizer
@pytest.mark.xfail(strict=True, raises=AssertionError, reason="harness artefact: {% generation %} blocks that are not one per assistant "
                   "message (TRL's phi3_training wraps the final eos in a block of its own) are ignored; the answers "
                   "fall back to TRL's split instead of the template's assistant mask")
def test_artefact_generation_blocks_not_one_per_answer():
    pair = _phi3("phi3_training")
    train = pair.train.render(TWO_TURNS)
    trained = "".join(pair.tokenizer.piece(i) for i, on in zip(train.ids, train.labels) if on)
    assert trained == "a1<|end|>\na2<|end|>\n<|im_end|>"  # the union of the blocks, as HF's assistant mask has it


@pytest.mark.real_tokenizer
def test_stop_option_keeps_special_tokens_whole():
    """``stop=<|im_end|>`` is one stop string, not '<', 'im_end' and '>'."""
    from harness.specs import build_renderer

    tok = load_model(model="qwen2.5")
    renderer = build_renderer("hf:.,stop=<|im_end|>", tok, side="deploy")
    assert sorted(tok.piece(i) for i in renderer.stop_ids) == ["<|endoftext|>", "<|im_end|>"]


#: Answers whose own rendering changes once later turns follow, while the served prompt stays a prefix of the
#: training text: the trained span starts right after it (once a false loss-region / stop-mismatch).
REWRITTEN_ANSWERS = [
    ("glm4moe", "glm4", [{"role": "user", "content": ""}, {"role": "assistant", "content": "", "reasoning_content": "a"},
                         {"role": "user", "content": ""}, {"role": "assistant", "content": ""}]),
    ("gemma4", "qwen2.5", {"messages": [
        {"role": "user", "content": ""},
        {"role": "assistant", "content": "a", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": \"y\"}"}}]},
        {"role": "tool", "content": "", "tool_call_id": "c1", "name": "f"}, {"role": "assistant", "content": ""}]}),
]


def _trl_self_pair(template: str, model: str):
    from harness.corpus import package_templates

    path = next(t.path for t in package_templates("trl") if t.id == f"trl:{template}")
    return make_pair(load_model(model=model), f"jinja:{path}", f"hf:{path}")


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("template,model,conv", REWRITTEN_ANSWERS, ids=[t for t, _, _ in REWRITTEN_ANSWERS])
def test_rewritten_answer_starts_where_the_served_prompt_ends(template, model, conv):
    pair = _trl_self_pair(template, model)
    conv = Conversation.from_openai(conv)
    _assert_no_false_error(pair, conv)
    train, first = pair.train.render(conv), conv.assistant_indices[0]
    served = pair.deploy.render(conv.prefix(first))
    assert train.ids[:len(served.ids)] == served.ids
    assert train.answer(first).start == len(served.ids) < train.answer(first).end


@pytest.mark.real_tokenizer
@pytest.mark.xfail(strict=True, raises=AssertionError, reason="harness artefact: Nemotron 3 opens '<think>\\n' in "
                   "the generation prompt but writes answered turns as '<think></think>', so no served prompt is a "
                   "prefix of the training text; the call of a later answer is then placed on an earlier answer's "
                   "equal call text")
def test_artefact_rewritten_answer_span_nemotron():
    pair = _trl_self_pair("nemotron_3_nano", "qwen2.5")
    conv = {"messages": [  # answer messages[1], a call-only turn: trained as '>\n'
        {"role": "user", "content": ""},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "send_email", "arguments": "{\"to\": [], \"subject\": \"s\", \"urgent\": true}"}}]},
        {"role": "tool", "content": "", "tool_call_id": "c1", "name": "send_email"},
        {"role": "assistant", "content": "a", "reasoning_content": "a", "tool_calls": [{"id": "c2", "type": "function",
            "function": {"name": "send_email", "arguments": "{\"to\": [\"x\"], \"urgent\": true}"}}]},
        {"role": "tool", "content": "", "tool_call_id": "c2", "name": "send_email"},
        {"role": "assistant", "content": ""}, {"role": "user", "content": ""}, {"role": "assistant", "content": ""}]}
    _assert_no_false_error(pair, Conversation.from_openai(conv))
