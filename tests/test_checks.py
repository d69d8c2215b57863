"""Each check fires on a planted bug and stays quiet on identical templates (real Qwen2.5 / Llama-3.2 ids)."""

from __future__ import annotations


import pytest

from tests.conftest import fixture, result_of, sweep

pytestmark = pytest.mark.real_tokenizer

CHATML = "hf:" + fixture("templates/chatml.jinja")

PLANTED = [
    # (check, train spec, deploy spec, model)
    ("prompt-prefix", "jinja:" + fixture("planted/prompt_newline.jinja"), CHATML, "qwen2.5"),
    ("answer-stop", "jinja:" + fixture("planted/answer_no_stop.jinja"), CHATML, "qwen2.5"),
    ("special-tokens", "jinja:" + fixture("planted/special_typo.jinja"), CHATML, "qwen2.5"),
    ("system", "jinja:" + fixture("planted/default_system.jinja"), CHATML, "qwen2.5"),
    ("segments", "jinja:" + fixture("templates/chatml_colon.jinja") + ",encode=segments",
     "hf:" + fixture("templates/chatml_colon.jinja"), "qwen2.5"),
    ("bos", "jinja:" + fixture("templates/bos_chatml.jinja"),
     "hf:" + fixture("templates/bos_chatml.jinja") + ",add_special_tokens=true", "llama3"),
]

QUIET = [
    ("prompt-prefix", "jinja:" + fixture("templates/chatml.jinja"), CHATML, "qwen2.5"),
    ("answer-stop", "jinja:" + fixture("templates/chatml.jinja"), CHATML, "qwen2.5"),
    ("special-tokens", "jinja:" + fixture("templates/chatml.jinja"), CHATML, "qwen2.5"),
    ("system", "jinja:" + fixture("templates/chatml.jinja"), CHATML, "qwen2.5"),
    ("segments", "jinja:" + fixture("templates/chatml.jinja") + ",encode=segments", CHATML, "qwen2.5"),
    ("bos", "jinja:" + fixture("templates/bos_chatml.jinja"), "hf:" + fixture("templates/bos_chatml.jinja"), "llama3"),
]


@pytest.mark.parametrize("check,train,deploy,model", PLANTED, ids=[p[0] for p in PLANTED])
def test_check_catches_planted_bug(check, train, deploy, model):
    result = result_of(sweep(train, deploy, model=model, checks=[check]), check)
    assert result.verdict == "fail", result
    assert result.failure is not None and result.failure.severity == "error"
    assert result.failure.explanation
    # the counterexample is minimal: one user turn and one answer (plus whatever the check needs)
    assert len(result.failure.conversation.messages) <= 3, result.failure.conversation


@pytest.mark.parametrize("check,train,deploy,model", QUIET, ids=[q[0] for q in QUIET])
def test_check_quiet_on_identical_templates(check, train, deploy, model):
    result = result_of(sweep(train, deploy, model=model, checks=[check]), check)
    assert result.verdict in ("pass", "warn"), result.failure
    assert result.errors == 0
    assert result.examples_run > 0


def test_prompt_prefix_names_first_diverging_token():
    result = result_of(sweep("jinja:" + fixture("planted/prompt_newline.jinja"), CHATML, checks=["prompt-prefix"]),
                       "prompt-prefix")
    diff = result.failure.diff
    assert diff is not None and diff.index is not None
    head = diff.headline()
    assert head.startswith(f"At token {diff.index} (")
    assert "␤" in head  # the extra newline, made visible
    first = diff.to_json()
    assert first["train"] and first["deploy"]


def test_answer_stop_catches_generation_config_without_im_end(base_eos_dir):
    """A served model whose eos is only <|endoftext|> never stops where training taught it (<|im_end|>)."""
    chatml = fixture("templates/chatml.jinja")
    target = sweep("jinja:" + chatml, "hf:" + chatml, model_dir=base_eos_dir, checks=["answer-stop"], n=20)
    result = result_of(target, "answer-stop")
    assert result.verdict == "fail"
    assert "<|im_end|>" in result.failure.explanation


def test_segments_boundary_merge_from_data_is_a_warning():
    """Answers starting with whitespace merge across the border only for some data: warning, not error."""
    result = result_of(sweep("jinja:" + fixture("templates/chatml.jinja") + ",encode=segments", CHATML, n=300,
                             checks=["segments"]), "segments")
    assert result.errors == 0
    assert result.warnings > 0  # hostile texts (leading newlines) do merge


def test_real_qwen_template_against_itself_has_only_boundary_warnings():
    """TRL-style whole-string training on Qwen2.5's own template vs vLLM serving: only boundary merges."""
    target = sweep("jinja:.", "hf:.", n=300)
    assert target.verdict == "consistent", [c.failure for c in target.checks if c.verdict == "fail"]
    prefix = result_of(target, "prompt-prefix")
    assert prefix.verdict == "warn" and "boundary merge" in prefix.failure.explanation
