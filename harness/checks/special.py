"""``special-tokens``: template control text encodes to single ids; user text that an engine parses as
control tokens is flagged."""

from __future__ import annotations

import re

from harness.checks.base import Case, Check, Failure, deploy_rejected
from harness.errors import RenderRejected
from harness.renderers.base import Encoded

#: Text that looks like a control token: <|x|>, <｜x｜>, [INST], </s>, <think>-style tags are left alone.
CONTROL_LIKE = re.compile(r"<\|[^<>|\n]{1,48}\|>|<｜[^<>｜\n]{1,48}｜>|\[/?[A-Z][A-Z_]{1,30}\]|</?s>")


def _template_text(enc: Encoded) -> list[tuple[int, int]]:
    """Char ranges of template text: everything outside message spans."""
    out, pos = [], 0
    for s in sorted(enc.spans, key=lambda s: s.char_start):
        if s.char_start > pos:
            out.append((pos, s.char_start))
        pos = max(pos, s.char_end)
    out.append((pos, len(enc.text or "")))
    return out


def _bad_control_text(case: Case, enc: Encoded, side: str) -> Failure | None:
    tok = case.pair.tokenizer
    text = enc.text or ""
    for a, b in _template_text(enc):
        for match in CONTROL_LIKE.finditer(text, a, b):
            word = match.group()
            if word in tok.added_tokens:
                continue
            ids = tok.encode(word)
            if len(ids) == 1:
                continue
            return Failure("special-tokens", "error",
                           f"the {side} template writes {word!r}, which is not a token of this tokenizer: it encodes "
                           f"to {len(ids)} ids, so the model sees plain text where a control token belongs (a typo in "
                           "the template, or a template written for another model)",
                           case.conv, tokens={side: case.pieces(ids)})
    return None


def _template_control_text(plain: Case) -> Failure | None:
    """Control-looking text in a plain rendering is the template's own: each must be one token."""
    last = plain.train.answers[-1].message
    return _bad_control_text(plain, plain.train, "training") or \
        _bad_control_text(plain, plain.prompt(last, detail=True), "deploy")


def special_tokens(case: Case) -> Failure | None:
    train = case.train
    last = train.answers[-1].message
    try:
        prompt = case.prompt(last)
    except RenderRejected as exc:
        return deploy_rejected(case, "special-tokens", last, exc)
    failure = case.pair.by_shape("special-tokens", case.conv, _template_control_text)
    if failure:
        return failure
    specials = case.pair.tokenizer.special_tokens
    for i, m in enumerate(case.conv.messages[:last]):
        if m.role == "assistant" or not m.content:
            continue
        found = sorted(t for t in specials if t in m.content)
        if not found:
            continue
        ids = {case.pair.tokenizer.added_tokens[t] for t in found}
        prompt = case.prompt(last, detail=True)
        spans = [s for s in prompt.spans if s.message == i and s.part == "content"]
        if any(prompt.ids[j] in ids for s in spans for j in range(s.start, s.end)):
            return Failure("special-tokens", "warning",
                           f"messages[{i}].content contains {found[0]!r}, which the deploy engine parses as a control "
                           "token (prompts are tokenised with special-token parsing on): user text can end a turn or "
                           "forge a role", case.conv, message=i)
    return None


CHECKS = (Check("special-tokens", special_tokens, "control text is one id; user text is not parsed as control"),)
