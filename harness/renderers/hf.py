"""``hf:`` — a chat template exactly as vLLM applies it (the deploy side most users ship to).

vLLM (0.33) normalises the OpenAI request first: ``content: null`` → ``""``, tool-call argument strings
parsed to objects (invalid JSON or not an object → ``{}``), empty ``tool_calls`` dropped, ``developer`` →
``system``, text parts joined with ``"\\n"``, tools re-serialised as ``{type, function: {name, description,
parameters}}``, reasoning passed as ``reasoning`` and ``reasoning_content``, keys in the order pydantic
rebuilds them (a tool call is ``{id, function: {arguments, name}, type}``). When the template loops over a
message's content (vLLM's ``--chat-template-content-format auto`` detection, harness.renderers._content_format)
every text goes as ``[{"type": "text", "text": ...}]`` instead (a tool message's stays a string).
transformers then drops ``None`` keys and aliases reasoning as ``thinking``. The template renders with the
tokenizer's special-tokens map and ``add_generation_prompt=True``; the prompt is tokenised with
``add_special_tokens=False``. The engine stops on the tokenizer eos, every ``generation_config.json`` eos id,
and any request ``stop`` strings. With several named templates, vLLM's ``resolve_hf_chat_template`` calls
``tokenizer.get_chat_template(None, tools)``: ``tool_use`` for a request with tools when it exists, else
``default`` (harness.named_templates); ``template=NAME`` stands for serving with that one template
(``--chat-template``). benchmarks/vllm_fidelity.py measures all this against the real vLLM chat path.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from harness.renderers._common import text_stop_ids
from harness.renderers._content_format import ContentFormat, detect_content_format
from harness.renderers._hfjinja import JinjaRenderer, dataset_message, hf_message
from harness.renderers.base import ContextLimit
from harness.renderers.engine import EngineRenderer

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.parsers.base import ReasoningParser, ToolParser


def vllm_messages(conv: "Conversation", content_format: ContentFormat = "string") -> list[dict[str, Any]]:
    """The message dicts vLLM hands to ``apply_chat_template`` for an OpenAI request of ``conv``, after
    transformers' normalisation; ``content_format`` is what vLLM detected for the template
    (:func:`harness.renderers._content_format.detect_content_format`)."""
    return [m.memo(f"vllm-{content_format}", lambda msg: _vllm_message(msg, content_format)) for m in conv.messages]


def _vllm_message(message: "Message", content_format: ContentFormat) -> dict[str, Any]:
    msg = _vllm_dict(message, content_format)
    same = dataset_message(message)
    # one object for equal forms (key order included: a template may print a dict) lets renders be shared
    return same if _ordered(same) == _ordered(msg) else msg


def _ordered(value: Any) -> Any:
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def _vllm_dict(message: "Message", content_format: ContentFormat) -> dict[str, Any]:
    """``parse_chat_message_content`` of the request message as pydantic validated it: keys in the order vLLM
    writes them (role, content, tool_calls, reasoning, reasoning_content, tool_call_id, name), a tool call as
    ``{id, function: {arguments, name}, type}`` (the OpenAI TypedDicts' field order)."""
    m = message.to_openai("request")
    role = m["role"]
    content = m.get("content")
    msg: dict[str, Any] = {"role": role}
    if content_format == "openai" and role != "tool":  # vLLM joins a tool message's text parts back to a string
        msg["content"] = [] if content is None else [{"type": "text", "text": content}]
    else:
        msg["content"] = content or ""
    calls = m.get("tool_calls")
    if role == "assistant" and calls:
        msg["tool_calls"] = [_parse_call(c) for c in calls]
    reasoning = m.get("reasoning_content")
    if role == "assistant" and reasoning is not None:
        msg["reasoning"] = msg["reasoning_content"] = reasoning
    if role == "tool" and m.get("tool_call_id") is not None:
        msg["tool_call_id"] = m["tool_call_id"]
    if isinstance(m.get("name"), str):
        msg["name"] = m["name"]
    return hf_message(msg)


def _parse_call(call: dict[str, Any]) -> dict[str, Any]:
    """vLLM's ``_postprocess_messages``: arguments parsed to an object; empty, invalid JSON or not an object
    → ``{}``."""
    fn = call["function"]
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args else {}
        except json.JSONDecodeError:
            args = {}
    if not isinstance(args, dict):
        args = {}
    return {"id": call.get("id"), "function": {"arguments": args, "name": fn["name"]}, "type": "function"}


class HFRenderer(JinjaRenderer, EngineRenderer):
    """Deploy side as vLLM serves it. ``render(conv)`` is the prompt for the next assistant answer."""

    #: ``--max-model-len``: vLLM rejects a prompt of ``>= max_model_len`` ids (it needs room for one output id:
    #: ``Processor._validate_model_input``, vllm tests/v1/e2e/test_context_length.py); None: no limit modelled
    max_model_len: int | None = None
    #: ``--tool-call-parser`` / ``--reasoning-parser`` (spec options ``tool_parser=`` / ``reasoning_parser=``)
    tool_parser_name: str | None = None
    reasoning_parser_name: str | None = None

    @property
    def tool_parser(self) -> "ToolParser | None":
        """The engine's tool parser, built on first use (harness.parsers.registry); None when not configured."""
        if self.tool_parser_name is None:
            return None
        if self.__dict__.get("_tool_parser") is None:
            from harness.parsers.registry import build_tool_parser

            self.__dict__["_tool_parser"] = build_tool_parser(self.tool_parser_name, self.tokenizer)
        return self.__dict__["_tool_parser"]

    @property
    def reasoning_parser(self) -> "ReasoningParser | None":
        """The engine's reasoning parser, built on first use; None when not configured."""
        if self.reasoning_parser_name is None:
            return None
        if self.__dict__.get("_reasoning_parser") is None:
            from harness.parsers.registry import build_reasoning_parser

            self.__dict__["_reasoning_parser"] = build_reasoning_parser(self.reasoning_parser_name, self.tokenizer)
        return self.__dict__["_reasoning_parser"]

    @property
    def stop_ids(self) -> frozenset[int]:
        stops = set(self.tokenizer.generation_eos_ids) | text_stop_ids(self.tokenizer, self.extra_stops)
        if self.tokenizer.eos_id is not None:
            stops.add(self.tokenizer.eos_id)
        return frozenset(stops)

    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool = True) -> str:
        """The prompt text only (no tokenisation)."""
        tools = conv.tool_dicts()
        return self._render_text(vllm_messages(conv, self.content_format(tools)), tools, add_generation_prompt).text

    def content_format(self, tools: list[dict[str, Any]] | None) -> ContentFormat:
        """How vLLM passes message content to the template a request renders with (``--chat-template-content-format
        auto``): ``"openai"`` (text parts) when the template loops over a message's content, else ``"string"``."""
        return detect_content_format(self.template_for(tools).source)

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text)
        return self._wrap(text, ids, [])[0] if self.add_special_tokens else ids

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets, _ = self._encode(text)
        return ids, offsets

    @property
    def context_limit(self) -> ContextLimit | None:
        return ContextLimit("max_model_len", self.max_model_len) if self.max_model_len else None

    def refusal(self, n: int) -> str | None:
        if self.max_model_len is None or n < self.max_model_len:
            return None
        return f"prompt {n} ids >= max_model_len={self.max_model_len}"

    def describe(self) -> dict[str, Any]:
        limit = {"max_model_len": self.max_model_len} if self.max_model_len else {}
        parsers = {k: v for k, v in (("tool_parser", self.tool_parser_name),
                                     ("reasoning_parser", self.reasoning_parser_name)) if v is not None}
        return {**super().describe(), "engine": "vllm", "stop_ids": sorted(self.stop_ids), **limit, **parsers}
