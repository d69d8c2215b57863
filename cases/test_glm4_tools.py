"""GLM-4 with tools: fine-tuned with LLaMA-Factory's ``glm4`` template (tool_format glm4), served by vLLM with the
model's own chat template (GLM-4-9b-chat, ``hf:.``).

What differs, read off the two templates and asserted below on hand-made conversations:

* Tool definitions. GLM-4-9b-chat's template reads tools from a message's own ``tools`` key
  (``{% if item['tools'] is defined %}``), never from the request's ``tools`` parameter, so an OpenAI request with
  ``tools=[...]`` reaches the model with no tool definitions at all; LLaMA-Factory trains every tool conversation
  with them (``tools[0]``: training writes the definition as JSON, serving writes nothing).
* The system token. Given tools the way it reads them, the model's template writes the tool prompt as a
  ``<|system|>`` block of its own, before the system message's own ``<|system|>`` block; LLaMA-Factory glues the
  tool prompt onto the system text inside one ``<|system|>`` block with no separator ("Be brief.你是一个名为…"),
  and writes "智谱 AI" where the model's template writes "智谱AI".
* History calls. LLaMA-Factory trains a call as ``<|assistant|>get_weather\\n{"city": "Paris"}`` and its result
  as ``<|observation|>``; the model's template drops a call-only assistant turn (``{% if item['content'] %}``)
  and writes the result under ``<|tool|>``.

The ``tools`` check must find the first and third with paths; the strict xfail in known_divergences.toml keeps the
pair's verdict honest over generated conversations.
"""

from __future__ import annotations

import pytest

from harness.api import load_model, make_pair
from harness.checks import CHECKS
from harness.conversation import Conversation
from harness.zoo import zoo_model_dir
from tests.conftest import needs_lf

pytestmark = [pytest.mark.real_tokenizer, needs_lf]

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
USER = {"role": "user", "content": "Weather in Paris?"}
CALL = {"role": "assistant", "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
RESULT = {"role": "tool", "content": '{"t": 20}'}
ANSWER = {"role": "assistant", "content": "Sunny."}


@pytest.fixture(scope="module")
def pair():
    return make_pair(load_model(model="glm4"), "llamafactory:glm4", "hf:" + str(zoo_model_dir("glm4")))


def _texts(pair, conv: Conversation) -> tuple[str, str]:
    k = conv.assistant_indices[-1]
    return (pair.train.render_text(conv, add_generation_prompt=False),
            pair.deploy.render_text(conv.prefix(k), add_generation_prompt=True))


def test_tool_definitions_never_reach_the_served_model(pair):
    conv = Conversation.from_openai({"tools": [TOOL], "messages": [USER, ANSWER]})
    train, served = _texts(pair, conv)
    assert '"name": "get_weather"' in train and "# 可用工具" in train
    assert served == "[gMASK]<sop><|user|>\nWeather in Paris?<|assistant|>"
    failure = CHECKS["tools"].run(pair.case(conv, detailed=True))
    assert failure is not None and failure.tokens["path"] == "tools[0]"
    assert failure.cause == "tools-rendered"
    assert "training writes the tool definition as JSON, deploy writes no JSON object for it" in failure.explanation


def test_system_token_one_block_in_training_two_in_the_model_template(pair):
    from transformers.utils.chat_template_utils import _compile_jinja_template

    conv = Conversation.from_openai({"tools": [TOOL], "messages": [{"role": "system", "content": "Be brief."}, USER,
                                                                    ANSWER]})
    train, _ = _texts(pair, conv)
    assert train.count("<|system|>") == 1
    assert train.startswith("[gMASK]<sop><|system|>\nBe brief.你是一个名为 ChatGLM 的人工智能助手。"
                            "你是基于智谱 AI 公司")
    # the model's own template, given the tools the way it reads them (a message's ``tools`` key)
    template = _compile_jinja_template(pair.deploy.template.source)
    own = template.render(messages=[{"role": "system", "content": "Be brief.", "tools": [TOOL]}, USER],
                          add_generation_prompt=True)
    assert own.count("<|system|>") == 2
    assert own.startswith("[gMASK]<sop><|system|>\n你是一个名为 ChatGLM 的人工智能助手。"
                          "你是基于智谱AI训练的语言模型")
    assert "<|system|>\nBe brief.<|user|>" in own


def test_history_call_is_dropped_by_the_model_template(pair):
    conv = Conversation.from_openai({"messages": [USER, CALL, RESULT, ANSWER]})  # no definitions: calls alone
    train, served = _texts(pair, conv)
    assert '<|assistant|>get_weather\n{"city": "Paris"}<|observation|>\n{"t": 20}<|assistant|>' in train
    assert served == '[gMASK]<sop><|user|>\nWeather in Paris?<|tool|>\n{"t": 20}<|assistant|>'
    failure = CHECKS["tools"].run(pair.case(conv, detailed=True))
    assert failure is not None and failure.tokens["path"] == "messages[1].tool_calls[0]"
    assert "the history call's arguments object" in failure.explanation, failure.explanation
    assert "training writes the history call's arguments object as JSON, deploy writes no JSON object for it" \
        in failure.explanation
