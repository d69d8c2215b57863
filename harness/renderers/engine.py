"""The deploy render skeleton every engine shares: messages → engine text → ids → :class:`Encoded`.

A new engine subclasses :class:`EngineRenderer` and writes :meth:`~EngineRenderer.render_text`; the other
hooks have the common defaults (tokenise the text as it is, with offsets and message spans on ``detail``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.renderers._common import locate_spans
from harness.renderers.base import DeployRenderer, Encoded

if TYPE_CHECKING:
    from harness.conversation import Conversation


class EngineRenderer(DeployRenderer):
    """Hooks: :meth:`render_text` (the engine's text), :meth:`prompt` (the text tokenised plus extra facts;
    default: that text), :meth:`encode` / :meth:`encode_offsets` (the engine's tokenisation) and
    :meth:`refusal` (why the engine refuses a prompt of ``n`` ids; None: it does not)."""

    def prompt(self, conv: "Conversation", add_generation_prompt: bool) -> tuple[str, dict[str, Any]]:
        return self.render_text(conv, add_generation_prompt=add_generation_prompt), {}

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        return self.tokenizer.encode_offsets(text)

    def refusal(self, n: int) -> str | None:
        return None

    def render(self, conv: "Conversation", *, add_generation_prompt: bool = True, detail: bool = True) -> Encoded:
        """The prompt's ids; with ``detail`` also char offsets and message spans (for reports)."""
        text, extra = self.prompt(conv, add_generation_prompt)
        if detail:
            ids, offsets = self.encode_offsets(text)
        else:
            ids, offsets = self.encode(text), None
        why = self.refusal(len(ids))
        if why is not None:
            extra = {**extra, "rejected": why}
        if offsets is None:
            return Encoded(ids=tuple(ids), text=text, extra=extra)
        ends = [e for _, e in offsets]
        return Encoded(ids=tuple(ids), text=text, spans=locate_spans(text, conv, offsets, ends),
                       offsets=tuple(offsets), extra=extra)
