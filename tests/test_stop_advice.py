"""The stop checks' advice: an ordinary text id is never proposed as eos; answers that end in plain text get the
template fix and engine stop strings quoting the text that follows them in training (real templates)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.api import load_model, make_pair
from harness.checks.stopadvice import is_control
from harness.errors import InputError
from tests.conftest import fixture, result_of, sweep

pytestmark = pytest.mark.real_tokenizer

try:
    import axolotl.utils.chat_templates as _ax

    AXOLOTL = Path(_ax.__file__).parent / "templates"
except ImportError:  # pragma: no cover - axolotl ships with the dev environment
    AXOLOTL = None

try:
    from harness.renderers.llamafactory.upstream import import_llamafactory

    import_llamafactory()
    HAVE_LF = True
except InputError:
    HAVE_LF = False

CHECKS = ("stop-words", "answer-stop")
EOS_ID = re.compile(r"add (\d+) .{1,60}? to eos_token_id")


def ax(name: str) -> str:
    return str(AXOLOTL / f"{name}.jinja") if AXOLOTL else name


#: Real stacks whose answers end in plain text: (model, train, deploy, what the advice must quote).
PLAIN_END = [
    pytest.param("qwen2.5", "jinja:" + ax("gemma"), "hf:" + ax("gemma"),
                 ('vLLM request `"stop": ["<end_of_turn>"]`', 'Ollama `PARAMETER stop "<end_of_turn>"`'),
                 id="gemma-on-qwen2.5", marks=pytest.mark.skipif(AXOLOTL is None, reason="axolotl is not installed")),
    pytest.param("qwen2.5", "jinja:" + ax("llava"), "hf:" + ax("llava"), ('`"stop": ["USER"]`',),
                 id="llava-on-qwen2.5", marks=pytest.mark.skipif(AXOLOTL is None, reason="axolotl is not installed")),
    pytest.param("glm4", "jinja:.", "hf:.",
                 ("'<|user|>' (id 151336) already stops the deploy side, but training puts no loss on it",),
                 id="glm4-own-template"),
    pytest.param("qwen2.5", "llamafactory:empty", "hf:.", ("stop on text (vLLM request `stop`, Ollama `PARAMETER stop`)",),
                 id="lf-empty", marks=pytest.mark.skipif(not HAVE_LF, reason="llamafactory is not importable")),
    pytest.param("qwen2.5", "jinja:" + fixture("planted/answer_no_stop.jinja"), "hf:" + fixture("templates/chatml.jinja"),
                 ('`"stop": ["<|im_start|>user"]`', "'<|im_start|>' is a control token, id 151644",
                  '`"stop_token_ids"` instead'), id="planted-no-stop"),
]


@pytest.mark.parametrize("model,train,deploy,quote", PLAIN_END)
def test_plain_text_end_never_proposes_a_text_id_as_eos(model, train, deploy, quote):
    target = sweep(train, deploy, model=model, n=30, checks=list(CHECKS))
    pair = make_pair(load_model(model=model), train, deploy)
    for name in CHECKS:
        failure = result_of(target, name).failure
        assert failure is not None and failure.severity == "error" and failure.cause == "stop-mismatch", name
        text = failure.explanation
        assert "no dedicated end token" in text and "never add it to eos_token_id" in text, text
        assert not EOS_ID.search(text), text  # no id at all is proposed for eos
        assert all(q in text for q in quote), text
        if name == "stop-words":  # the id it reports really is ordinary text
            assert not is_control(pair, failure.tokens["end_id"]["id"])
