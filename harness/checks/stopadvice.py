"""The fix the stop checks advise when the served model will not stop where training ends an answer.

Rule: an id is advised for ``eos_token_id`` only when it is a control token of the deploy tokenizer (one of
its added tokens). Adding a plain-text id (``'.'``, ``'>'``, ``'\\n'``) would stop every sentence, so when
an answer ends in plain text the advice says it has no dedicated end token and gives the fixes that exist:
an end token in the template (the tokenizer's eos after each answer), or engine stop *strings* — vLLM's
request ``stop``, Ollama's ``PARAMETER stop`` — quoting the text that ends each answer in the training
rendering (template text trained after the answer's words, e.g. ``<|end|>``), else the text that follows
it (the next turn's header, e.g. ``"\\n### Instruction:"``).

>>> stop_string("<|end|>\\n", "")
'<|end|>'
>>> stop_string("\\n", "\\n\\n### Instruction:\\nHello")
'\\n### Instruction:'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.checks.base import Pair


@dataclass(frozen=True)
class StopText:
    """The stop string for plain-text answer ends, and where it comes from."""

    text: str
    where: str  # "ends" (template text trained after the answer) or "follows" (the next turn's header)


def is_control(pair: "Pair", token_id: int | None) -> bool:
    """True when ``token_id`` is one of the deploy tokenizer's added (control) tokens."""
    return token_id is not None and token_id in _added_ids(pair)


def _added_ids(pair: "Pair") -> frozenset[int]:
    return pair.cache.per_pair("added_ids", lambda: frozenset(pair.tokenizer.added_tokens.values()))


def piece(pair: "Pair", token_id: int) -> str:
    """The text of ``token_id``; ids past the deploy vocab are read from the training side's tokenizer."""
    if token_id < len(pair.tokenizer):
        return pair.tokenizer.piece(token_id)
    return pair.train.decode_extra(token_id)


def stop_string(tail: str, follow: str) -> str | None:
    """The last non-blank line of ``tail`` (text trained after the answer's words), else the first non-blank
    line of ``follow`` (kept with one leading newline when it starts a new line); None when both are blank."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    if lines:
        return lines[-1]
    lead, rest = follow[: len(follow) - len(follow.lstrip())], follow.strip()
    if not rest:
        return None
    first = rest.splitlines()[0].strip()
    return ("\n" if "\n" in lead else "") + first


def stop_text(pair: "Pair") -> StopText | None:
    """The stop string of a plain two-turn conversation's first answer in the training rendering (once per pair)."""
    return pair.cache.per_pair("stop_text", lambda: _stop_text(pair))


def _stop_text(pair: "Pair") -> StopText | None:
    from harness.conversation import PLAIN_TEXT, Conversation

    probe = Conversation.from_openai({"messages": [{"role": role, "content": PLAIN_TEXT}
                                                   for role in ("user", "assistant", "user", "assistant")]})
    try:
        enc = pair.train.render(probe, add_generation_prompt=False)
        ans = enc.answer(1)
    except (HarnessError, KeyError):
        return None
    text, offsets = enc.text or "", enc.offsets or ()
    if not text or ans.end > len(offsets):
        return None
    end = offsets[ans.end - 1][1] if ans.end > ans.start else ans.char_start
    words = [s.char_end for s in enc.spans if s.message == 1 and s.char_end <= end]
    tail = text[max(words) if words else ans.char_start:end]
    nxt = [s.char_start for s in enc.spans if s.message == 2 and s.char_start >= end]
    follow = text[end:min(nxt)] if nxt else text[end:]
    lines = [line for line in tail.splitlines() if line.strip()]
    found = stop_string(tail, follow)
    return None if found is None else StopText(found, "ends" if lines else "follows")


def eos_advice(pair: "Pair", token_id: int) -> str:
    """Advice for an end id that is a control token."""
    return f"Add {token_id} {piece(pair, token_id)!r} to eos_token_id in generation_config.json (or the engine's stop " \
           "token ids)"


def plain_end_advice(pair: "Pair", token_id: int | None) -> str:
    """Advice for an answer that ends in plain text (``token_id``: its last trained id): no id to add."""
    tok = pair.tokenizer
    if token_id is not None and token_id >= len(tok):
        first = (f"{token_id} {piece(pair, token_id)!r} is a token only the training tokenizer has (LLaMA-Factory "
                 "added it): serve with that tokenizer and add the id to eos_token_id, or")
    else:
        eos = f" (e.g. the eos {tok.eos_token!r} right after the answer text)" if tok.eos_token else ""
        first = ("Answers end with no dedicated end token, and a plain-text id is no end-of-sequence id (never add "
                 "it to eos_token_id: the model would stop at every such piece of text). Fix the template: end every "
                 f"answer with an end token{eos}, or")
    found = stop_text(pair)
    if found is None:
        return f"{first} stop on text (vLLM request `stop`, Ollama `PARAMETER stop`) with the text that follows " \
               "each answer in the training rendering"
    control = next((t for t in sorted(tok.added_tokens, key=len, reverse=True)
                    if found.text.lstrip("\n").startswith(t)), None)
    cid = tok.added_tokens[control] if control is not None else None
    if cid is not None and cid in pair.deploy.stop_ids:
        return (f"{first} train the token that follows each answer: {control!r} (id {cid}) already stops the deploy "
                "side, but training puts no loss on it after the answer — make it part of the trained answer (e.g. "
                "inside the template's {% generation %} block)")
    quoted = json.dumps(found.text, ensure_ascii=False)
    what = "the text that ends each answer in the training rendering" if found.where == "ends" else \
        "the text that follows each answer in the training rendering (the next turn's header)"
    out = f"{first} stop on text: vLLM request `\"stop\": [{quoted}]`, Ollama `PARAMETER stop {quoted}` — {what}"
    if cid is not None:
        out += (f" ({control!r} is a control token, id {cid}: vLLM matches stop strings on text with special tokens "
                "skipped, so pass that id as `\"stop_token_ids\"` instead)")
    return out


def advice(pair: "Pair", token_id: int | None) -> str:
    """The fix for an answer whose end id ``token_id`` the deploy side does not stop on."""
    if is_control(pair, token_id):
        return eos_advice(pair, token_id)  # type: ignore[arg-type]
    return plain_end_advice(pair, token_id)
