"""What the Jinja-backed renderers (``hf:`` deploy, ``jinja:`` train) share: transformers' message
normalisation, the dataset form of messages, and the compiled template with its context and render cache."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2
import tokenizers

from harness.renderers._common import sha256_text, special_tokens_context
from harness.sandbox import ChatTemplate, RenderResult
from harness.tokenizer.verified import package_version

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.named_templates import Selection
    from harness.tokenizer import Tokenizer

#: Recent renders, keyed by template, context and the identity of the message/tool dicts.
_RENDERS: OrderedDict = OrderedDict()


def hf_message(msg: dict[str, Any]) -> dict[str, Any]:
    """What transformers 5 does to a message dict: drop ``None`` values, alias reasoning fields."""
    msg = {k: v for k, v in msg.items() if v is not None}
    reasoning = next((msg[k] for k in ("reasoning_content", "thinking", "reasoning") if msg.get(k) is not None), None)
    if reasoning is not None:
        msg = {"thinking": reasoning, **msg, "reasoning_content": reasoning}
    return msg


def dataset_messages(conv: "Conversation") -> list[dict[str, Any]]:
    """Messages as an HF/TRL dataset stores them, after transformers' normalisation."""
    return [dataset_message(m) for m in conv.messages]


def dataset_message(message: "Message") -> dict[str, Any]:
    return message.memo("dataset", lambda m: hf_message(m.to_openai("dataset")))


@dataclass
class JinjaRenderer:
    """Mixin of the Jinja-backed renderers: a compiled template plus its tokenizer and context (the subclass
    sets ``side``).

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
