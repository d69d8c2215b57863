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
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2
import tokenizers

from harness.renderers._common import locate_spans, sha256_text, special_tokens_context, text_stop_ids
from harness.renderers.base import Encoded
from harness.sandbox import ChatTemplate, RenderResult
from harness.tokenizer.verified import package_version

#: Recent renders, keyed by template, context and the identity of the message/tool dicts.
_RENDERS: OrderedDict = OrderedDict()

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.named_templates import Selection
    from harness.tokenizer import Tokenizer


def vllm_messages(conv: "Conversation") -> list[dict[str, Any]]:
    """The message dicts vLLM hands to ``apply_chat_template`` for an OpenAI request of ``conv``."""
    return [m.memo("vllm", _vllm_message) for m in conv.messages]


def _vllm_message(message: "Message") -> dict[str, Any]:
    msg = _vllm_dict(message)
    from harness.renderers.jinja import dataset_message

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


def hf_message(msg: dict[str, Any]) -> dict[str, Any]:
    """What transformers 5 does to a message dict: drop ``None`` values, alias reasoning fields."""
    msg = {k: v for k, v in msg.items() if v is not None}
    reasoning = next((msg[k] for k in ("reasoning_content", "thinking", "reasoning") if msg.get(k) is not None), None)
    if reasoning is not None:
        msg = {"thinking": reasoning, **msg, "reasoning_content": reasoning}
    return msg


@dataclass
class JinjaRenderer:
    """Base of the Jinja-backed renderers: a compiled template plus its tokenizer and context.

    ``template`` renders requests without tools; ``tool_template`` (when set) renders requests with tools, as
    transformers' ``get_chat_template`` picks ``tool_use`` (harness.named_templates). ``named_templates``
    (name → sha256) and ``selection`` record a model dir's templates and the choice, for provenance.
    """

    spec: str
    tokenizer: "Tokenizer"
    template: ChatTemplate
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    add_special_tokens: bool = False
    extra_stops: tuple[str, ...] = ()
    tool_template: ChatTemplate | None = None
    named_templates: dict[str, str] = field(default_factory=dict)
    selection: "Selection | None" = None
    side = "deploy"

    def __post_init__(self) -> None:
        self._context = {**special_tokens_context(self.tokenizer), **self.template_kwargs}
        self._context_key = repr(sorted(self._context.items()))

    def template_for(self, tools: list[dict[str, Any]] | None) -> ChatTemplate:
        """The template a request renders with: ``tool_template`` when tools are passed and it is set."""
        return self.tool_template if tools is not None and self.tool_template is not None else self.template

    def _render_text(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                     add_generation_prompt: bool) -> RenderResult:
        """Render (memoised: the same template, context and message objects give the same text)."""
        template = self.template_for(tools)
        key = (template.source, self._context_key, add_generation_prompt, tuple(map(id, messages)),
               tuple(map(id, tools or ())))
        hit = _RENDERS.get(key)
        if hit is not None:
            _RENDERS.move_to_end(key)
            return hit[1]
        result = template.render(self.side, messages=messages, tools=tools, documents=None,
                                 add_generation_prompt=add_generation_prompt, **self._context)
        _RENDERS[key] = ((messages, tools), result)  # holding the dicts keeps their ids unique while cached
        if len(_RENDERS) > 1024:
            _RENDERS.popitem(last=False)
        return result

    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]], list[int]]:
        """Ids, char offsets and token end offsets of ``text`` as this side tokenises it."""
        ids, offsets = self.tokenizer.encode_offsets(text)
        if self.add_special_tokens:
            ids, offsets = self._wrap(text, ids, offsets)
        return ids, offsets, [e for _, e in offsets]

    def _wrap(self, text: str, ids: list[int], offsets: list[tuple[int, int]]
              ) -> tuple[list[int], list[tuple[int, int]]]:
        """What ``add_special_tokens=True`` adds around the text: the tokenizer's post-processor ids (a BOS,
        GLM-4's ``[gMASK]<sop>``…), measured once at load as ``special_prefix_ids`` / ``special_suffix_ids``."""
        pre, post = self.tokenizer.special_prefix_ids, self.tokenizer.special_suffix_ids
        return [*pre, *ids, *post], [(0, 0)] * len(pre) + list(offsets) + [(len(text), len(text))] * len(post)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.spec.split(":", 1)[0],
            "spec": self.spec,
            "side": self.side,
            "template": self.template.origin,
            "template_sha256": sha256_text(self.template.source),
            "named_templates": dict(self.named_templates),
            "template_selection": None if self.selection is None else
            {"without_tools": self.selection.plain, "with_tools": self.selection.tools,
             "explicit": self.selection.explicit},
            "template_kwargs": dict(sorted(self.template_kwargs.items())),
            "add_special_tokens": self.add_special_tokens,
            "versions": {"jinja2": jinja2.__version__, "transformers": package_version("transformers"),
                         "tokenizers": tokenizers.__version__},
        }


class HFRenderer(JinjaRenderer):
    """Deploy side as vLLM serves it. ``render(conv)`` is the prompt for the next assistant answer."""

    side = "deploy"
    #: ``--max-model-len``: vLLM rejects a prompt of ``>= max_model_len`` ids (it needs room for one output id:
    #: ``Processor._validate_model_input``, vllm tests/v1/e2e/test_context_length.py); None: no limit modelled
    max_model_len: int | None = None

    @property
    def stop_ids(self) -> frozenset[int]:
        stops = set(self.tokenizer.generation_eos_ids) | text_stop_ids(self.tokenizer, self.extra_stops)
        if self.tokenizer.eos_id is not None:
            stops.add(self.tokenizer.eos_id)
        return frozenset(stops)

    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool = True) -> str:
        """The prompt text only (no tokenisation)."""
        return self._render_text(vllm_messages(conv), conv.tool_dicts(), add_generation_prompt).text

    def render(self, conv: "Conversation", *, add_generation_prompt: bool = True, detail: bool = True) -> Encoded:
        """The prompt's ids; with ``detail`` also char offsets and message spans (for reports)."""
        text = self.render_text(conv, add_generation_prompt=add_generation_prompt)
        if not detail:
            ids = self.tokenizer.encode(text)
            if self.add_special_tokens:
                ids = self._wrap(text, ids, [])[0]
            return Encoded(ids=tuple(ids), text=text, extra=self._limit(len(ids)))
        ids, offsets, ends = self._encode(text)
        return Encoded(ids=tuple(ids), text=text, spans=locate_spans(text, conv, offsets, ends),
                       offsets=tuple(offsets), extra=self._limit(len(ids)))

    def _limit(self, n: int) -> dict[str, Any]:
        if self.max_model_len is None or n < self.max_model_len:
            return {}
        return {"rejected": f"prompt {n} ids >= max_model_len={self.max_model_len}"}

    def describe(self) -> dict[str, Any]:
        limit = {"max_model_len": self.max_model_len} if self.max_model_len else {}
        return {**super().describe(), "engine": "vllm", "stop_ids": sorted(self.stop_ids), **limit}
