"""LLaMA-Factory 0.9.5's real template code as the training side (``llamafactory:``) and its export
(``llamafactory-jinja:``) as a deploy side, on the zoo's Qwen2.5 tokenizer."""

from __future__ import annotations

import copy
import os
from types import SimpleNamespace

import pytest

from harness.conversation import Conversation
from harness.errors import InputError, RenderRejected
from harness.generate import generate
from tests.conftest import fixture, result_of, sweep

try:
    from harness.renderers.llamafactory.upstream import import_llamafactory

    LF = import_llamafactory()
except InputError as exc:  # the optional extra is not installed
    pytest.skip(f"llamafactory is not importable ({exc}); install requirements-llamafactory.txt",
                allow_module_level=True)

from harness.api import make_pair  # noqa: E402
from harness.specs import build_renderer  # noqa: E402

pytestmark = pytest.mark.real_tokenizer

YAML = fixture("llamafactory/qwen2_5_lora_sft.yaml")
YAML_QWEN3 = fixture("llamafactory/qwen3_full_sft_mask_history.yaml")


def lf(spec: str, tok):
    return build_renderer(spec, tok, side="train")


def chat(*turns, system=None, tools=()):
    messages = ([{"role": "system", "content": system}] if system is not None else [])
    roles = ("user", "assistant")
    messages += [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]
    return Conversation.from_openai({"messages": messages, "tools": list(tools)})


# --- llamafactory:qwen vs Qwen2.5's own template -----------------------------------------------------------

def _history_merge(conv: Conversation, k: int) -> bool:
    """An earlier answer starts with whitespace that, tokenised whole, merges with 'assistant\\n'."""
    return any(m.role == "assistant" and (m.content or "")[:1].isspace() for m in conv.messages[:k])


def test_qwen_agrees_with_qwen25_except_empty_system_and_history_merges(qwen):
    """The seed scenario: LF `qwen` == Qwen2.5's template except an explicit empty system (LF trains on
    `system or default_system`) and answers starting with "\\n" (slot-wise in training, merged when served
    back as history). Every prompt mismatch is one of the two — nothing else, tool turns included."""
    pair = make_pair(qwen, "llamafactory:qwen", "hf:.")
    causes = {"empty system": 0, "history merge": 0}
    convs = list(generate(300, seed=0, tools="any", reasoning=False))
    for conv in convs:
        try:
            train = pair.train.render(conv)
        except RenderRejected:
            continue
        for ans in train.answers:
            prompt = pair.deploy.render(conv.prefix(ans.message), add_generation_prompt=True)
            if prompt.ids == train.ids[:ans.start]:
                continue
            if conv.system == "":
                causes["empty system"] += 1
            else:
                assert prompt.text == train.text[:ans.char_start], conv.to_json()  # same text: tokenisation only
                assert _history_merge(conv, ans.message), conv.to_json()
                causes["history merge"] += 1
            break
    assert causes["empty system"] > 50 and causes["history merge"] > 5, causes

    from harness.runner import run_pair

    result = run_pair(pair, convs[:150])
    assert result.verdict == "inconsistent"
    prefix = result_of(result, "prompt-prefix")
    assert prefix.verdict == "fail" and prefix.failure.conversation.system == ""
    system = result_of(result, "system")
    assert system.verdict == "fail" and "empty system" in system.failure.explanation
    assert result_of(result, "answer-stop").verdict == "pass"
    segments = result_of(result, "segments")  # the "\n" answer, slot-wise vs whole: a warning
    assert segments.verdict == "warn" and segments.errors == 0
    assert segments.failure.conversation.messages[-1].content.startswith("\n")
    assert result_of(result, "special-tokens").errors == 0
    assert result_of(result, "bos").verdict == "skipped"  # Qwen2.5 has no BOS


def test_qwen_without_empty_system_and_newline_answers_is_consistent():
    def plain_first(conv):
        return conv.system != "" and not any((m.content or "")[:1].isspace()
                                             for m in conv.messages if m.role == "assistant")

    convs = [c for c in generate(300, seed=1, tools="any", reasoning=False) if plain_first(c)]
    from harness.api import load_model
    from harness.runner import run_pair

    pair = make_pair(load_model(model="qwen2.5"), "llamafactory:qwen", "hf:.")
    result = run_pair(pair, convs, checks=["prompt-prefix", "answer-stop"])
    assert result.verdict == "consistent", [c.failure for c in result.checks if c.failure]


# --- ids and labels are LLaMA-Factory's own -----------------------------------------------------------------

def test_ids_equal_llamafactory_encode_multiturn_and_supervised_processor(qwen):
    """An independent set-up (pristine template copy, fresh tokenizer copy, the real processor) agrees."""
    from llamafactory.data.processor.supervised import SupervisedDatasetProcessor

    renderer = lf("llamafactory:qwen", qwen)
    hf = copy.deepcopy(qwen.hf)
    template = copy.deepcopy(LF.TEMPLATES["qwen"])
    template.fix_special_tokens(hf)
    args = SimpleNamespace(train_on_prompt=False, mask_history=False, cutoff_len=10**9)
    processor = SupervisedDatasetProcessor(template=template, tokenizer=hf, processor=None, data_args=args)
    agree = rejected = 0
    for conv in generate(200, seed=3, tools="any", reasoning=False):
        try:
            enc = renderer.render(conv)
        except RenderRejected:
            rejected += 1
            continue
        system, tools, aligned, _ = renderer.dataset(conv)
        pairs = template.encode_multiturn(hf, aligned, system, tools)
        ids, labels = processor._encode_data_example(aligned[:-1], aligned[-1:], system, tools, [], [], [])
        assert list(enc.ids) == [i for p in pairs for part in p for i in part] == ids
        assert list(enc.extra["label_ids"]) == labels
        assert enc.labels == tuple(label != -100 for label in labels)
        assert "".join(enc.segments) == enc.text and enc.offsets[-1][1] == len(enc.text)
        agree += 1
    assert agree + rejected == 200 and rejected <= 2, (agree, rejected)
    assert renderer.approximate == 0  # every slot re-encoded to LF's ids: offsets are exact


def test_harness_tokenize_path_equals_transformers_path(qwen):
    fast, slow = lf("llamafactory:qwen", qwen), lf("llamafactory:qwen,tokenize=hf", qwen)
    assert fast.tokenize == "harness" and slow.tokenize == "hf"
    for conv in generate(100, seed=4, tools="any", reasoning=True):
        try:
            a = fast.render(conv)
        except RenderRejected:
            continue
        b = slow.render(conv)
        assert (a.ids, a.labels, a.answers, a.text) == (b.ids, b.labels, b.answers, b.text)


def test_labels_answers_carry_loss_prompts_do_not(qwen):
    conv = chat("hi", "hello there", "and?", "done", system="Be brief.")
    enc = lf("llamafactory:qwen", qwen).render(conv)
    assert [a.message for a in enc.answers] == [2, 4]
    trained = {i for a in enc.answers for i in range(a.start, a.end)}
    assert all(enc.labels[i] == (i in trained) for i in range(len(enc.ids)))
    for a in enc.answers:  # the answer text, then <|im_end|> and "\n": LF trains the end-of-turn text too
        assert qwen.hf.decode(enc.ids[a.start:a.end]) == conv.messages[a.message].content + "<|im_end|>\n"
        assert enc.text[a.char_start:].startswith(conv.messages[a.message].content)


def test_labels_train_on_prompt_and_mask_history(qwen):
    conv = chat("hi", "hello there", "and?", "done")
    on_prompt = lf("llamafactory:qwen,train_on_prompt=true", qwen).render(conv)
    assert all(on_prompt.labels)
    masked = lf("llamafactory:qwen,mask_history=true", qwen).render(conv)
    (last,) = masked.answers
    assert last.message == 3
    assert [i for i, on in enumerate(masked.labels) if on] == list(range(last.start, last.end))


def test_cutoff_len_truncates_like_llamafactory(qwen):
    conv = chat("word " * 100, "answer " * 100)
    enc = lf("llamafactory:qwen,cutoff_len=64", qwen).render(conv)
    assert len(enc.ids) == 64 and len(enc.text) < len(lf("llamafactory:qwen", qwen).render(conv).text)


def test_shapes_llamafactory_drops_are_rejected(qwen):
    renderer = lf("llamafactory:qwen", qwen)
    two_users = Conversation.from_openai([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                          {"role": "assistant", "content": "c"}])
    opens_with_answer = Conversation.from_openai([{"role": "assistant", "content": "a"},
                                                  {"role": "user", "content": "b"},
                                                  {"role": "assistant", "content": "c"}])
    for conv in (two_users, opens_with_answer):
        with pytest.raises(RenderRejected):
            renderer.render(conv)


def test_tool_turns_map_to_function_and_observation(qwen):
    conv = Conversation.from_openai({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "w", "arguments": '{"city": "Paris"}'}},
            {"type": "function", "function": {"name": "w", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "content": "sun"}, {"role": "tool", "content": "rain"},
        {"role": "assistant", "content": "Sun and rain."}],
        "tools": [{"type": "function", "function": {"name": "w", "description": "weather",
                                                    "parameters": {"type": "object", "properties": {}}}}]})
    renderer = lf("llamafactory:qwen", qwen)
    _, tools, aligned, index = renderer.dataset(conv)
    assert [m["role"] for m in aligned] == ["user", "function", "observation", "assistant"]
    assert index == [0, 1, 2, 4]
    assert aligned[1]["content"].startswith("[{")  # parallel calls: a JSON list
    enc = renderer.render(conv)
    assert [a.message for a in enc.answers] == [1, 4]
    assert "<tool_response>\nsun\n</tool_response>\n<tool_response>\nrain\n</tool_response>" in enc.text
    deploy = build_renderer("hf:.", qwen, side="deploy")
    for a in enc.answers:
        assert deploy.render(conv.prefix(a.message)).ids == enc.ids[:a.start]


def test_describe_records_template_and_tokenizer_fix_up(qwen):
    d = lf("llamafactory:qwen", qwen).describe()
    assert d["template"] == "qwen" and d["llamafactory"] == LF.VERSION
    assert d["replace_eos"] is True and d["stop_words"] == ["<|im_end|>"] and d["efficient_eos"] is False
    assert d["default_system"].startswith("You are Qwen")
    assert d["tokenizer_changes"] == {}  # Qwen2.5-Instruct's eos is already <|im_end|>
    assert qwen.hf.eos_token == "<|im_end|>"  # the harness tokenizer is never mutated


# --- train.yaml ---------------------------------------------------------------------------------------------

def test_yaml_spec_reads_training_config(qwen):
    d = lf("llamafactory:" + YAML, qwen).describe()
    assert d["template"] == "qwen" and d["yaml"] == YAML
    assert d["model_name_or_path"] == "Qwen/Qwen2.5-7B-Instruct" and d["options"]["cutoff_len"] == 2048
    r = lf("llamafactory:" + YAML_QWEN3, qwen)
    d3 = r.describe()
    assert d3["template"] == "qwen3" and d3["default_system"] == "You are a concise assistant."
    assert d3["enable_thinking"] is False and r.data_args.mask_history
    enc = r.render(chat("hi", "yo", "again", "sure"))
    assert len(enc.answers) == 1 and enc.text.startswith("<|im_start|>system\nYou are a concise assistant.")


def test_yaml_errors_name_the_file(qwen, tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match="nope.yaml"):
        lf(f"llamafactory:{missing}", qwen)
    bad = tmp_path / "bad.yaml"
    bad.write_text("template: [qwen\n")
    with pytest.raises(InputError, match="bad.yaml.*not valid YAML"):
        lf(f"llamafactory:{bad}", qwen)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("template: qwen9\n")
    with pytest.raises(InputError, match=r"template='qwen9' \(from .*unknown.yaml\).*known: qwen"):
        lf(f"llamafactory:{unknown}", qwen)
    with pytest.raises(InputError, match="template='qwen9': unknown"):
        lf("llamafactory:qwen9", qwen)


# --- llamafactory-jinja (the export's template, served by vLLM) ---------------------------------------------

def test_export_jinja_keeps_qwen25_template_and_differs_on_empty_system():
    """`qwen` has replace_jinja_template=False: the export keeps Qwen2.5's own template, so serving it differs
    from LF training exactly where hf:. does (explicit empty system)."""
    result = sweep("llamafactory:qwen", "llamafactory-jinja:qwen", n=120)
    assert result.describe["deploy"]["jinja"].startswith("the model's own")
    assert result.verdict == "inconsistent"
    assert result_of(result, "prompt-prefix").failure.conversation.system == ""
    assert result_of(result, "answer-stop").verdict == "pass"


def test_generated_export_jinja_drops_tools_and_empties_system():
    """`_get_jinja_template` (what LF writes when it replaces a template) ignores tools and tool turns and
    renders an explicit empty system as empty, while training used the default system."""
    result = sweep("llamafactory:qwen", "llamafactory-jinja:qwen,generated=true", n=120)
    assert result.verdict == "inconsistent"
    prefix = {(c.cause, c.where) for c in result_of(result, "prompt-prefix").classes}
    assert ("tools-rendered", "tools") in prefix and ("tools-rendered", "assistant.tool_calls") in prefix, prefix
    system = {c.cause for c in result_of(result, "system").classes}
    assert "empty-system" in system, system


def test_llamafactory_is_imported_lazily():
    import subprocess
    import sys

    code = ("import sys, harness.api, harness.specs, harness.runner; "
            "print(any(m.startswith(('llamafactory', 'torch')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == "False"


def test_a_conversation_that_trains_nothing_is_checked_without_a_crash(qwen):
    """LLaMA-Factory's `empty` template trains nothing of an empty answer (no end token): every check returns
    (or skips) instead of indexing the missing answer, and a sweep still reports its real divergences."""
    from harness.checks import CHECKS
    from harness.checks.base import Skip

    pair = make_pair(qwen, "llamafactory:empty", "hf:.")
    conv = Conversation.from_openai([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}])
    assert pair.train.render(conv).answers == ()
    for name, check in CHECKS.items():
        try:
            check.run(pair.case(conv))
        except Skip:
            pass
    target = sweep("llamafactory:empty", "hf:.", n=40)
    assert target.verdict == "inconsistent" and result_of(target, "system").examples_run > 0
