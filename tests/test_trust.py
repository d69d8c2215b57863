"""Verdicts users can trust, each on a real template: the id rule for loss regions, causes named right, every
divergence class, no silent pass, reasoning swept by default."""

from __future__ import annotations

import json

import pytest

from harness.api import load_model, make_pair, reads_reasoning
from harness.causes import CAUSES
from harness.checks import CHECKS, Check
from harness.cli import main
from harness.errors import RenderRejected
from harness.generate import generate
from harness.runner import run_pair
from tests.conftest import fixture, result_of, sweep

pytestmark = pytest.mark.real_tokenizer

QWEN_ASSISTANT = "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"


def _qwen_variant(tmp_path, assistant: str, name: str) -> str:
    """Qwen2.5's own template with its plain-assistant branch replaced by ``assistant`` (a training variant)."""
    source = load_model(model="qwen2.5").chat_template
    assert source.count(QWEN_ASSISTANT) == 1
    branch = ("{%- if message.role == 'assistant' %}" + assistant + "{%- else %}" + QWEN_ASSISTANT + "{%- endif %}")
    path = tmp_path / name
    path.write_text(source.replace(QWEN_ASSISTANT, branch))
    return "jinja:" + str(path)


def test_trained_region_that_starts_inside_the_served_prompt_is_consistent(tmp_path):
    """The newline after the role is inside {% generation %}; serving's generation prompt already ends with it:
    the served prompt is a prefix of the training ids that reaches the first trained id, so nothing fails."""
    train = _qwen_variant(tmp_path, "{{- '<|im_start|>assistant' }}{% generation %}{{- '\\n' + message.content + "
                          "'<|im_end|>' }}{% endgeneration %}{{- '\\n' }}", "early.jinja")
    result = sweep(train, "hf:.", tools=False, n=120)
    for name in ("prompt-prefix", "system", "answer-stop", "stop-words"):
        check = result_of(result, name)
        assert check.errors == 0 and check.examples_run > 0, (name, check.classes[:1])
    # the old rule (prompt == ids before the first trained id) would have failed every conversation
    tok = load_model(model="qwen2.5")
    case = make_pair(tok, train, "hf:.").case(next(generate(1, seed=3, tools=False)))
    ans = case.train.answers[0]
    assert case.prompt(ans.message).ids != case.train.ids[:ans.start]


def test_trained_region_that_starts_after_the_served_prompt_is_a_loss_region_error(tmp_path):
    """An empty think block written outside {% generation %}: the served prompt stops short of the first trained
    id, and the model must produce text training never put loss on."""
    train = _qwen_variant(tmp_path, "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}{% generation %}"
                          "{{- message.content + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}", "late.jinja")
    check = result_of(sweep(train, "hf:.", tools=False, n=60, checks=["prompt-prefix"]), "prompt-prefix")
    assert check.verdict == "fail"
    assert check.classes[0].cause == "loss-region"
    assert "<think>" in check.failure.explanation


@pytest.mark.parametrize("model,reasoning,cause", [
    ("deepseek-r1", False, "generation-prompt"),          # its generation prompt opens <think>
    ("qwen3", "any", "history-reasoning-stripped"),       # <think> dropped from answers once they are history
    ("mistral-v3", False, "history-system-moved"),        # the system moves into the last user turn
    ("glm4", False, "history-messages-dropped"),          # empty messages are skipped in training
])
def test_real_divergences_are_named_by_their_cause(model, reasoning, cause):
    result = sweep("jinja:.", "hf:.", model=model, n=120, reasoning=reasoning, checks=["prompt-prefix", "system"])
    prefix = result_of(result, "prompt-prefix")
    assert prefix.verdict == "fail"
    assert cause in {c.cause for c in prefix.classes}, [(c.cause, c.where, c.count) for c in prefix.classes]
    assert all(c.cause in CAUSES for c in prefix.classes)


def test_system_check_does_not_blame_the_system_for_a_generation_prompt():
    """DeepSeek-R1's generation prompt opens <think> whatever the system: prompt-prefix reports it, not system."""
    result = sweep("jinja:.", "hf:.", model="deepseek-r1", n=80, checks=["prompt-prefix", "system"])
    assert result_of(result, "prompt-prefix").verdict == "fail"
    system = result_of(result, "system")
    assert system.errors == 0 and system.examples_run > 0


def test_system_check_names_a_default_system():
    check = result_of(sweep("jinja:" + fixture("planted/default_system.jinja"), "hf:" + fixture("templates/chatml.jinja"),
                            checks=["system"], n=60), "system")
    assert check.verdict == "fail"
    assert {c.cause for c in check.classes} == {"default-system"}


def test_every_divergence_class_is_found_counted_and_shrunk(tmp_path):
    """A generic ChatML Modelfile for Qwen2.5 diverges in four places at once; fixing one must not merely reveal
    the next, so all of them are classes, each counted, the largest five shrunk, all in the reports."""
    deploy = "ollama:" + fixture("ollama/chatml-generic.Modelfile")
    result = sweep("jinja:.", deploy, n=200, checks=["prompt-prefix"])
    check = result_of(result, "prompt-prefix")
    found = {(c.cause, c.where) for c in check.classes if c.severity == "error"}
    for expected in [("default-system", "system (none given)"), ("tools-rendered", "tools"),
                     ("tools-rendered", "assistant.tool_calls"), ("tools-rendered", "tool")]:
        assert expected in found, found
    assert all(c.count > 0 for c in check.classes)
    shrunk = [c for c in check.classes if c.failure is not None]
    assert len(shrunk) == min(5, len(check.classes))
    assert all(len(c.failure.conversation.messages) < 12 for c in shrunk)
    # the CLI shows them all in JSON and Markdown
    out = tmp_path / "reports"
    code = main(["check", "--model", "qwen2.5", "--train", "jinja:.", "--deploy", deploy, "--examples", "200",
                 "--checks", "prompt-prefix", "--report-dir", str(out), "--quiet"])
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    classes = report["targets"][0]["checks"][0]["classes"]
    assert {(c["cause"], c["where"]) for c in classes} == {(c.cause, c.where) for c in check.classes}
    assert report["targets"][0]["checks"][0]["cause"] == classes[0]["cause"]
    markdown = (out / "report.md").read_text()
    assert markdown.count("### ") == len(classes)
    assert "tools-rendered" in markdown and "default-system" in markdown


def test_a_check_that_ran_on_nothing_is_skipped_not_passed(monkeypatch):
    tok = load_model(model="qwen2.5")
    pair = make_pair(tok, "jinja:.", "hf:.")
    empty = run_pair(pair, [])
    assert {c.verdict for c in empty.checks} == {"skipped"}
    assert all(c.note for c in empty.checks)

    def always_rejected(case):
        raise RenderRejected("deploy", "TemplateError: no")

    monkeypatch.setitem(CHECKS, "always-rejected", Check("always-rejected", always_rejected))
    result = run_pair(pair, generate(5, seed=0), checks=["always-rejected", "prompt-prefix"])
    rejected = result_of(result, "always-rejected")
    assert rejected.verdict == "skipped" and rejected.examples_run == 0
    assert "5 rejected by a render the check needs" in rejected.note
    assert result_of(result, "prompt-prefix").verdict in ("pass", "warn")


def test_reasoning_is_swept_by_default_when_a_template_reads_it(tmp_path):
    tok3, tok25 = load_model(model="qwen3"), load_model(model="qwen2.5")
    assert reads_reasoning(make_pair(tok3, "jinja:.", "hf:."))
    assert not reads_reasoning(make_pair(tok25, "jinja:.", "hf:."))
    # a Qwen3 fine-tune checked with the defaults finds its history rewrite
    code = main(["check", "--model", "qwen3", "--train", "jinja:.", "--deploy", "hf:.", "--examples", "150",
                 "--checks", "prompt-prefix", "--report-dir", str(tmp_path), "--quiet"])
    assert code == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert "history-reasoning-stripped" in {c["cause"] for c in report["targets"][0]["checks"][0]["classes"]}


def test_readme_lists_every_cause():
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    missing = [c for c in CAUSES if f"| `{c}` |" not in readme]
    assert not missing, f"README's cause table lacks {missing}"


def test_a_default_system_is_not_also_blamed_on_the_generation_prompt():
    """Plain ChatML for training, Qwen2.5 serving: the one divergence is Qwen's default system prompt. The served
    prompt is then longer than training's text before the answer; aligned against the answer's ids as well, those
    showed up as a second class, ``generation-prompt``, larger than the real one (the generation prompts are
    identical)."""
    check = result_of(sweep("jinja:" + fixture("templates/chatml.jinja"), "hf:.", checks=["prompt-prefix"], n=120,
                            tools=False), "prompt-prefix")
    assert check.verdict == "fail"
    assert {(c.cause, c.where) for c in check.classes if c.severity == "error"} == \
        {("default-system", "system (none given)")}
