"""``hf:`` — a chat template exactly as vLLM applies it (the deploy side most users ship to).

vLLM (0.33) normalises the OpenAI request first: ``content: null`` → ``""``, tool-call argument strings
parsed to objects (invalid JSON → ``{}``), empty ``tool_calls`` dropped, ``developer`` → ``system``,
text parts joined with ``"\\n"``, tools re-serialised as ``{type, function: {name, description,
parameters}}``, reasoning passed as ``reasoning_content``. transformers then drops ``None`` keys and
aliases reasoning as ``thinking``. The template renders with the tokenizer's special-tokens map and
``add_generation_prompt=True``; the prompt is tokenised with ``add_special_tokens=False``. The engine
stops on the tokenizer eos, every ``generation_config.json`` eos id, and any request ``stop`` strings.
With several named templates, vLLM's ``resolve_hf_chat_template`` calls ``tokenizer.get_chat_template(None,
tools)``: ``tool_use`` for a request with tools when it exists, else ``default`` (harness.named_templates);
``template=NAME`` stands for serving with that one template (``--chat-template``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from harness.renderers._common import text_stop_ids
from harness.renderers._hfjinja import JinjaRenderer, dataset_message, hf_message
from harness.renderers.base import ContextLimit
from harness.renderers.engine import EngineRenderer

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.parsers.base import ReasoningParser, ToolParser


def vllm_messages(conv: "Conversation") -> list[dict[str, Any]]:
    """The message dicts vLLM hands to ``apply_chat_template`` for an OpenAI request of ``conv``."""
    return [m.memo("vllm", _vllm_message) for m in conv.messages]


def _vllm_message(message: "Message") -> dict[str, Any]:
    msg = _vllm_dict(message)
    same = dataset_message(message)
    return same if same == msg else msg  # one object for equal forms lets renders be shared (render cache)


def _vllm_dict(message: "Message") -> dict[str, Any]:
    m = message.to_openai("request")
    msg: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
    calls = m.get("tool_calls")
    if calls:
        msg["tool_calls"] = [_parse_call(c) for c in calls]
    reasoning = m.get("reasoning_content")
    if m["role"] == "assistant" and reasoning:
        msg["reasoning_content"] = reasoning
    if m["role"] == "tool" and m.get("tool_call_id") is not None:
        msg["tool_call_id"] = m["tool_call_id"]
    if isinstance(m.get("name"), str):
        msg["name"] = m["name"]
    return hf_message(msg)


def _parse_call(call: dict[str, Any]) -> dict[str, Any]:
    fn = dict(call["function"])
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            fn["arguments"] = json.loads(args) if args else {}
        except json.JSONDecodeError:
            fn["arguments"] = {}
    return {**call, "function": fn}


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
        return self._render_text(vllm_messages(conv), conv.tool_dicts(), add_generation_prompt).text

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
