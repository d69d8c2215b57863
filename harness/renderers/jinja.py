"""``jinja:`` — a training-side Jinja chat template as HF/TRL training renders and encodes it.

The whole conversation is rendered once (``add_generation_prompt=False``) from the dataset form of the
messages (tool-call arguments as objects) and tokenised with ``add_special_tokens=False``, as
``apply_chat_template(tokenize=True)`` does. Answer ``k`` — what carries loss — is the ``k``-th
``{% generation %}`` block when the template has them (``return_assistant_tokens_mask``); otherwise it is
the completion TRL derives: the text between ``render(messages[:k], add_generation_prompt=True)`` and
``render(messages[:k+1])``. Spec options: ``encode=segments`` encodes prompt and answer pieces separately
(as prompt-completion and slot-wise trainers do); ``add_special_tokens=true`` adds the tokenizer's BOS/EOS.
A model dir with several named templates renders a conversation with tools through ``tool_use`` when it exists
(TRL passes ``tools`` to ``apply_chat_template``); ``template=NAME`` picks one for every conversation.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from harness.errors import ConversationError, RenderRejected
from harness.renderers._common import locate_spans, token_at
from harness.renderers._spans import answer_start, place
from harness.renderers._truncate import truncate
from harness.renderers._hfjinja import JinjaRenderer, dataset_messages
from harness.renderers.base import Answer, Encoded, TrainRenderer

if TYPE_CHECKING:
    from harness.conversation import Conversation


class JinjaTrainRenderer(JinjaRenderer, TrainRenderer):
    """Training side: whole conversations ending with an assistant answer."""

    side = "train"
    encode_mode: str = "whole"
    max_length: int | None = None  # TRL's SFTConfig.max_length (harness.renderers._truncate); None: no cut
    truncation_mode: str = "keep_start"

    @property
    def stop_ids(self) -> frozenset[int]:
        return frozenset({self.tokenizer.eos_id} - {None})

    def _text(self, conv: "Conversation", gen: bool):
        return self._render_text(dataset_messages(conv), conv.tool_dicts(), gen)

    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool = False) -> str:
        return self._text(conv, add_generation_prompt).text

    def answer_ranges(self, conv: "Conversation", full: str, generation: tuple[tuple[int, int], ...]
                      ) -> list[tuple[int, int, int, bool]]:
        """``(message index, char start, char end, history rewritten)`` of each trained answer in ``full``.

        Answer k is ``D[len(P):]`` (``P`` = messages[:k] + generation prompt, ``D`` = messages[:k+1]) when
        ``full`` starts with both; otherwise (later turns rewrote the history) that answer as ``D`` renders
        it is found in ``full`` (``harness.renderers._spans``), before the next answer: answers are placed
        last to first."""
        indices = conv.assistant_indices
        if generation and len(generation) == len(indices):
            return [(k, s, e, False) for k, (s, e) in zip(indices, generation)]
        ranges = []
        hi = len(full)
        for k in reversed(indices):
            prompt = self._text(conv.prefix(k), True).text
            done = self._text(conv.prefix(k + 1), False).text
            if len(prompt) <= len(done) <= hi and full.startswith(done) and done.startswith(prompt):
                ranges.append((k, len(prompt), len(done), False))
            else:
                ranges.append(self._rewritten_range(conv, k, prompt, done, full, hi))
            hi = ranges[-1][1]
        return ranges[::-1]

    def _rewritten_range(self, conv: "Conversation", k: int, prompt: str, done: str, full: str, hi: int
                         ) -> tuple[int, int, int, bool]:
        """Answer k when ``full`` does not extend ``prompt`` and ``done``; rewritten when the text before it
        is not the history ``render(messages[:k])`` followed by part of the generation prompt."""
        history = self._text(conv.prefix(k), False).text
        message = conv.messages[k]
        content = message.content or ""
        contents = tuple(dict.fromkeys(c for c in (content, content.strip()) if c.strip()))
        limit = None
        if not done.startswith(prompt) and not done.startswith(history):
            limit = self._empty_answer_limit(conv, k, done)
        at = answer_start(done, prompt, history, contents, limit, self._token_ends)
        texts = contents + tuple(c.name for c in message.tool_calls if c.name.strip())
        start, end = place(done[:at], done[at:], full, hi, texts) or (hi, hi)  # not found: train nothing
        gen = prompt[len(history):] if prompt.startswith(history) else ""
        kept = start >= len(history) and full.startswith(history) and gen.startswith(full[len(history):start])
        return k, start, end, not kept

    def _empty_answer_limit(self, conv: "Conversation", k: int, done: str) -> int | None:
        """Where ``done`` parts from the same turn with an empty answer: at or after where the answer starts,
        before any of its own text (None when the template rejects the empty answer)."""
        from harness.conversation import Conversation, Message

        try:
            empty = self._text(Conversation(conv.messages[:k] + (Message("assistant", ""),), conv.tools), False).text
        except RenderRejected:
            return None
        return len(os.path.commonprefix([done, empty]))

    def _token_ends(self, text: str) -> frozenset[int]:
        """Offsets in ``text`` where its tokens end (0 and ``len(text)`` included), cached per text."""
        cache = self.__dict__.setdefault("_token_ends_cache", {})
        if text not in cache:
            if len(cache) > 256:
                cache.clear()
            cache[text] = frozenset({0, len(text), *(e for _, e in self.tokenizer.encode_offsets(text)[1])})
        return cache[text]

    def render(self, conv: "Conversation", *, add_generation_prompt: bool = False) -> Encoded:
        if not conv.messages or conv.messages[-1].role != "assistant":
            raise ConversationError("a training conversation must end with an assistant message; "
                                    "generate with end_with_assistant=True")
        result = self._text(conv, add_generation_prompt)
        full = result.text
        ranges = self.answer_ranges(conv, full, result.generation)
        borders = sorted({0, len(full), *(p for _, s, e, _ in ranges for p in (s, e))})
        segments = tuple(full[a:b] for a, b in zip(borders, borders[1:]))
        if self.encode_mode == "segments":
            ids, offsets = [], []
            for start, seg in zip(borders, segments):
                seg_ids, seg_offsets = self.tokenizer.encode_offsets(seg)
                ids.extend(seg_ids)
                offsets.extend((a + start, b + start) for a, b in seg_offsets)
            if self.add_special_tokens:
                ids, offsets = self._wrap(full, ids, offsets)
        else:
            ids, offsets, _ = self._encode(full)
        ends = [e for _, e in offsets]
        labels = [False] * len(ids)
        answers = []
        for k, start, end, rewritten in ranges:
            a = token_at(offsets, ends, start)
            b = token_at(offsets, ends, end - 1) + 1 if end > start else a
            for i in range(a, min(b, len(ids))):
                labels[i] = True
            straddles = a < len(offsets) and offsets[a][0] < start
            answers.append(Answer(k, a, b, start, straddles and not rewritten, rewritten))
        enc = Encoded(ids=tuple(ids), text=full, spans=locate_spans(full, conv, offsets, ends), labels=tuple(labels),
                      answers=tuple(answers), offsets=tuple(offsets), segments=segments,
                      extra={"encoding": self.encode_mode})
        if self.max_length is None:
            return enc
        return truncate(enc, self.max_length, self.truncation_mode, lambda: self._message_starts(conv, full, enc))

    def _message_starts(self, conv: "Conversation", full: str, enc: Encoded) -> list[int]:
        """Char where each message begins in ``full``: ``len(render(messages[:i]))`` when ``full`` extends it,
        else the message's first located span, else where the previous one begins."""
        out: list[int] = []
        for i in range(len(conv.messages)):
            try:
                head = self._text(conv.prefix(i), False).text if i else ""
            except RenderRejected:
                head = None
            if head is not None and full.startswith(head):
                out.append(max(len(head), out[-1] if out else 0))
                continue
            found = [s.char_start for s in enc.spans if s.message == i]
            out.append(max(min(found), out[-1] if out else 0) if found else (out[-1] if out else 0))
        return out

    def describe(self) -> dict[str, Any]:
        blocks = self.template.has_generation or bool(self.tool_template and self.tool_template.has_generation)
        cut = {"max_length": self.max_length, "truncation_mode": self.truncation_mode} if self.max_length else {}
        return {**super().describe(), "encode": self.encode_mode, "generation_blocks": blocks, **cut}
