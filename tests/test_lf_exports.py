"""LLaMA-Factory's own exports as deploy sides: its Jinja (``llamafactory-jinja:``) and its Ollama Modelfile
(``llamafactory-ollama:``), checked against LLaMA-Factory training on the same template."""

from __future__ import annotations

import pytest

from harness.api import load_model, make_pair
from harness.generate import generate
from harness.runner import run_pair
from tests.conftest import result_of

pytest.importorskip("llamafactory", reason="LLaMA-Factory is installed by `make` set-up (requirements-llamafactory.txt)")
pytestmark = pytest.mark.real_tokenizer


def sweep(model, train, deploy, n=60, **gen):
    pair = make_pair(load_model(model=model), train, deploy)
    return run_pair(pair, generate(n, seed=0, **gen))


def test_exported_llama3_modelfile_doubles_bos():
    """LF's Llama-3 Modelfile TEMPLATE starts with <|begin_of_text|>, and Ollama adds the vocab's BOS too."""
    target = sweep("llama3", "llamafactory:llama3", "llamafactory-ollama:llama3", tools=False, system="text")
    bos = result_of(target, "bos")
    assert bos.verdict == "fail" and "2 BOS" in bos.failure.explanation
    text = target.describe["deploy"]["modelfile_text"]
    assert 'TEMPLATE """<|begin_of_text|>' in text and 'PARAMETER stop "<|eot_id|>"' in text


def test_exported_qwen_modelfile_drops_tools_and_empty_system():
    target = sweep("qwen2.5", "llamafactory:qwen", "llamafactory-ollama:qwen", n=120, tools="any")
    assert result_of(target, "answer-stop").verdict == "pass"  # PARAMETER stop "<|im_end|>" is exported
    assert result_of(target, "system").verdict == "fail"  # LF trains `system or default_system`
    # without tools and with a real system text, only the system check's own empty-system variant differs
    quiet = sweep("qwen2.5", "llamafactory:qwen", "llamafactory-ollama:qwen", n=120, tools=False, system="text")
    assert [c.name for c in quiet.checks if c.verdict == "fail"] == ["system"]
    assert result_of(quiet, "system").failure.conversation.messages[0].content == ""


def test_exported_jinja_keeps_qwen_template():
    target = sweep("qwen2.5", "llamafactory:qwen", "llamafactory-jinja:qwen", tools=False, system="text")
    assert target.describe["deploy"]["jinja"].startswith("the model's own")
    assert [c.name for c in target.checks if c.verdict == "fail"] == ["system"]  # empty system → LF's default
