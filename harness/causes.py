"""Why a check failed: a small, documented taxonomy of causes, each computed from the data.

Every Failure carries one ``cause`` id from ``CAUSES``. Failures of one check are grouped into divergence
classes by (cause, message path, first differing id pair), so one fix does not hide the next.

>>> CAUSES["boundary-merge"].severity
'warning'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Cause:
    """A cause id, the severity it usually carries, and one sentence saying what it means."""

    id: str
    severity: Literal["error", "warning"]
    summary: str


_CAUSES = (
    Cause("default-system", "error", "a default system prompt is injected on one side only"),
    Cause("empty-system", "error", "an explicit empty system message is handled differently (dropped, replaced by a "
          "default, or rendered as an empty block)"),
    Cause("system-text", "error", "a per-sample system message is rendered differently (placement or wrapping)"),
    Cause("history-reasoning-stripped", "error", "history rewritten: reasoning of earlier answers is kept on one side "
          "and stripped on the other"),
    Cause("history-system-moved", "error", "history rewritten: the system text moves (e.g. into the last user turn) "
          "once later turns follow"),
    Cause("history-messages-dropped", "error", "history rewritten: messages are dropped or changed once later turns "
          "follow"),
    Cause("generation-prompt", "error", "the generation prompt differs (e.g. it opens a <think> block, or a role "
          "header differs) right where the answer begins"),
    Cause("loss-region", "error", "the served prompt stops before the first trained id: the model must emit text "
          "training never put loss on"),
    Cause("bos", "error", "BOS doubled, missing or added on one side only"),
    Cause("tools-rendered", "error", "tool definitions, tool calls or tool results are rendered differently"),
    Cause("tool-definition-changed", "error", "a tool definition reaches the model with a field dropped or changed "
          "(the two sides' JSON differs as values)"),
    Cause("tool-call-changed", "error", "a history tool call's arguments reach the model changed (the two sides' JSON "
          "differs as values)"),
    Cause("tool-json-format", "error", "a tool definition or history call is the same JSON value on both sides but "
          "serialised differently (key order, spacing, ensure_ascii)"),
    Cause("reasoning-mode", "error", "the last turn's thinking mode differs: training trains the answer with "
          "reasoning (or an empty think block) and serving opens or closes the think block otherwise"),
    Cause("template-text", "error", "the two templates write different text around the messages"),
    Cause("tokenisation", "error", "both sides render the same text but tokenise it differently (special tokens "
          "added, segment-wise vs whole-string encoding)"),
    Cause("boundary-merge", "warning", "data-dependent: text at an answer's border merges with the token before it "
          "when one side tokenises the whole string"),
    Cause("segment-merge", "error", "encoding training segments one by one differs from tokenising the whole text"),
    Cause("control-text", "error", "template control text is a near-miss of a control token, or a control token on "
          "one side and plain text on the other"),
    Cause("user-control-text", "warning", "user text contains special-token text the engine parses as control "
          "tokens"),
    Cause("stop-mismatch", "error", "the id training ends answers with is not one the deploy side stops on"),
    Cause("stop-untrained", "error", "the deploy stop id inside an answer carries no loss"),
    Cause("stop-heuristic", "warning", "the engine stops on the trained end id only by its own heuristic, not by the "
          "deploy config"),
    Cause("stop-inside-answer", "warning", "an answer holds a deploy stop id inside its text: serving stops early"),
    Cause("history-truncated", "error", "training truncated the conversation and serving drops messages differently: "
          "an answer is served with a history it was never trained with"),
    Cause("context-rejected", "warning", "the engine rejects a prompt longer than its context limit for an answer "
          "training trained on"),
    Cause("deploy-rejects", "error", "the deploy template rejects a conversation shape the training side accepts"),
    Cause("tool-call-dropped", "error", "the server's tool parser returns fewer calls than the model was trained to "
          "emit (a call is lost)"),
    Cause("tool-call-spurious", "error", "the server's tool parser returns more calls than the model was trained to "
          "emit (a call out of nothing, or one split in two)"),
    Cause("tool-call-name", "error", "the server's tool parser returns another function name than the trained call"),
    Cause("tool-arguments", "error", "the server's tool parser returns other arguments than the trained call "
          "(values, types, keys, or not a JSON object)"),
    Cause("tool-arguments-order", "error", "the server's tool parser returns the trained arguments with their keys "
          "re-ordered: the client replays them and the next prompt differs"),
    Cause("tool-content", "error", "the content the server's tool parser leaves differs from the trained content "
          "beyond leading/trailing whitespace"),
    Cause("parser-crashed", "error", "the server's output parser raises on the text the model was trained to emit "
          "(the server answers with an error)"),
    Cause("answer-control-text", "warning", "data-dependent: the answer's own text holds control-token text "
          "(a tool-call tag, a think tag, a stop token) that the server's parser or stop keys on"),
    Cause("reasoning-swallowed", "error", "the server's reasoning parser returns the whole trained answer as "
          "reasoning (no end-of-thinking tag in it): the client gets no content"),
    Cause("reasoning-split", "error", "the server's reasoning parser splits the trained answer into other reasoning "
          "and content than training put there"),
)

#: cause id → Cause, in report order.
CAUSES: dict[str, Cause] = {c.id: c for c in _CAUSES}


def cause_summary(cause: str) -> str:
    """One sentence for ``cause`` (an unknown id is returned as it is)."""
    known = CAUSES.get(cause)
    return known.summary if known else cause
