"""``reasoning`` (prompt side): each side does the same with reasoning, in the history and in the last turn.

The rules, for every answer k (assistant ``messages[k]``) of a conversation:

* History. For each earlier assistant ``messages[i]`` with a reasoning text r: a side *keeps* it when r occurs
  in that side's text before answer k (training: the whole-conversation rendering up to the answer; deploy: the
  served prompt for ``messages[:k]``) more often than once r is removed from ``messages[i]`` (the removal is the
  proof that the occurrence is r's, not the same words elsewhere). Keeping on one side and stripping on the other
  is an error, cause ``history-reasoning-stripped`` — "training keeps messages[1].reasoning in the history of
  answer messages[3], deploy strips it".
* Last turn. Training's mode for answer k is ``reasoning`` (its own reasoning is in the trained answer),
  ``empty`` (the answer opens with an empty ``<think></think>`` block: thinking off) or ``none``; the deploy
  prompt's mode is ``closed`` (it ends with an empty think block: ``enable_thinking=false``), ``open`` (it ends
  with ``<think>``: thinking forced on) or ``free`` (the model decides). An error (cause ``reasoning-mode``): a
  ``reasoning`` answer served ``closed``; an ``empty`` answer served ``open``; an answer whose reasoning training
  drops (``none``) served ``open`` — each only when the served prompt text is not a prefix of the training text
  (served ``<think>\n`` before a trained ``<think>\n\n</think>`` is what training taught). Every other
  combination is what training taught.

A pair where neither template reads reasoning (``harness.api.reads_reasoning``: a template mentions reasoning) is skipped; on other pairs
conversations without reasoning hold trivially. Where texts differ for other reasons, ``prompt-prefix`` names the
first difference; this check names what each side did with which reasoning.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from harness.checks.base import Case, Check, Failure, NotApplicable, Skip
from harness.errors import RenderRejected

if TYPE_CHECKING:
    from harness.conversation import Conversation
    from harness.renderers.base import Answer, Encoded

_CLOSED = re.compile(r"<think>\s*</think>\s*$")
_OPEN = re.compile(r"<think>\s*$")
_EMPTY = re.compile(r"<think>\s*</think>")
#: chars before the answer's first trained char that still belong to its turn (a think opener in the header)
_LOOKBACK = 40


def deploy_mode(prompt_text: str) -> str:
    """``closed``, ``open`` or ``free``: what the served prompt's end does to the think block."""
    tail = prompt_text[-80:]
    return "closed" if _CLOSED.search(tail) else "open" if _OPEN.search(tail) else "free"


def train_mode(train: "Encoded", ans: "Answer", reasoning: str | None) -> str:
    """``reasoning``, ``empty`` or ``none``: what training put in answer ``ans``."""
    text = train.text or ""
    end = train.offsets[ans.end - 1][1] if train.offsets and ans.end > ans.start else len(text)
    answer = text[max(0, ans.char_start - _LOOKBACK):end]
    if reasoning and reasoning.strip() and reasoning.strip() in answer:
        return "reasoning"
    return "empty" if _EMPTY.search(answer) else "none"


def _distinct(conv: "Conversation", i: int) -> str | None:
    """``messages[i].reasoning``, stripped, when it is long enough and no other text of ``conv`` holds it."""
    r = (conv.messages[i].reasoning or "").strip()
    if len(r) < 3:
        return None
    others = [t for j, m in enumerate(conv.messages) for t in (m.content, m.reasoning if j != i else None) if t]
    others += [t.description for t in conv.tools]
    return None if any(r in t for t in others) else r


def _without(conv: "Conversation", i: int) -> "Conversation":
    from harness.conversation import Conversation

    msgs = conv.messages
    return Conversation(msgs[:i] + (replace(msgs[i], reasoning=None),) + msgs[i + 1:], conv.tools)


def _keeps(case: Case, side: str, i: int, k: int, r: str, text: str) -> bool | None:
    """Does ``side`` show ``messages[i]``'s reasoning before answer k? (None: the variant is rejected)."""
    if r not in text:
        return False
    conv = _without(case.conv, i)
    try:
        if side == "train":
            variant = case.variant(conv)
            base = (variant.train.text or "")[:variant.train.answer(k).char_start]
        else:
            base = case.pair.deploy.render_text(conv.prefix(k), add_generation_prompt=True)
    except (RenderRejected, KeyError):
        return None
    return text.count(r) > base.count(r)


def reasoning(case: Case) -> Failure | None:
    conv = case.conv
    if not case.pair.cache.per_shape("reasoning", "reads reasoning", lambda: _reads(case)):
        raise Skip("neither template reads reasoning (reasoning_content, thinking, <think>, enable_thinking)")
    if not any(m.reasoning for m in conv.messages):
        raise NotApplicable("no message of the conversation carries reasoning")
    train = case.train
    for ans, prompt in case.served_answers():
        k = ans.message
        before, served = (train.text or "")[:ans.char_start], prompt.text or ""
        for i in range(k):
            r = _distinct(conv, i) if conv.messages[i].role == "assistant" else None
            if r is None or (r in before) == (r in served):
                continue
            kept = {side: _keeps(case, side, i, k, r, text) for side, text in (("train", before), ("deploy", served))}
            if None in kept.values() or kept["train"] == kept["deploy"]:
                continue
            sentence = (f"training {'keeps' if kept['train'] else 'strips'} messages[{i}].reasoning in the history "
                        f"of answer messages[{k}], deploy {'keeps' if kept['deploy'] else 'strips'} it")
            return _failure(case, ans, prompt, sentence + ": the served model sees a history it was not trained "
                            "with", "history-reasoning-stripped", "assistant.reasoning (history)")
        said = _mode_error(train_mode(train, ans, conv.messages[k].reasoning), deploy_mode(served), k,
                           bool(conv.messages[k].reasoning))
        if said and not (train.text or "").startswith(served):  # a served "<think>\n" training continues holds
            return _failure(case, ans, prompt, said, "reasoning-mode", "assistant.reasoning (last turn)")
    return None


def _reads(case: Case) -> bool:
    from harness.renderers._common import template_reads_reasoning

    return any(template_reads_reasoning(r) for r in (case.pair.train, case.pair.deploy))


def _mode_error(train: str, deploy: str, k: int, given: bool) -> str | None:
    if train == "reasoning" and deploy == "closed":
        return (f"training trains answer messages[{k}] with its reasoning (thinking on), the deploy prompt closes the "
                "think block empty (thinking off): the model is served a mode it was not trained in for this answer")
    if train == "empty" and deploy == "open":
        return (f"training trains answer messages[{k}] with an empty think block (thinking off), the deploy prompt "
                "opens a think block (thinking on): the model must reason where training taught it not to")
    if train == "none" and given and deploy == "open":
        return (f"training drops messages[{k}].reasoning from the trained answer (no think block), the deploy prompt "
                "opens a think block (thinking on): the model was never trained to write what the prompt starts")
    return None


def _failure(case: Case, ans: "Answer", prompt: "Encoded", explanation: str, cause: str, where: str) -> Failure:
    k = ans.message
    expected = case.train.ids[:max(len(prompt.ids), ans.start)]
    return Failure("reasoning", "error", explanation, case.conv, case.diff(expected, prompt, k),
                   k, cause=cause, where=where)


CHECKS = (Check("reasoning", reasoning, "reasoning kept or stripped alike in history; the last turn's thinking mode "
                "matches what training trained"),)
