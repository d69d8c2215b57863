"""PaddleNLP chat records: ``{"src": [...], "tgt": [...], "context": {...}}``.

``src[i]`` is user turn i and ``tgt[i]`` its answer (a string for each is one turn); the lists must be as
long as each other (PaddleNLP's chat tokenisation pairs them). ``context`` fills the chat template's
``system`` part: its ``system`` value (a string, even empty — ``{{system | default(...)}}`` tells ``""`` from
absent) becomes the leading system message, as the ``paddlenlp:`` renderer maps a system message back to
``context["system"]``; the whole context is kept in ``Conversation.meta["context"]`` for its other keys."""

from __future__ import annotations

from typing import Any

from harness.conversation import Message
from harness.data.records import Record, conversation, require, text
from harness.errors import InputError


def read(name: str, record: dict[str, Any]) -> Record:
    src, tgt = require(name, record, "src", "paddlenlp"), require(name, record, "tgt", "paddlenlp")
    src, tgt = ([x] if isinstance(x, str) else x for x in (src, tgt))
    if not isinstance(src, list) or not isinstance(tgt, list) or not src:
        raise InputError(f"{name}: src and tgt must be strings or non-empty lists of strings")
    if len(src) != len(tgt):
        raise InputError(f"{name}: {len(src)} src turns but {len(tgt)} tgt answers; each src needs its tgt")
    context = record.get("context")
    if context is not None and not isinstance(context, dict):
        raise InputError(f"{name}: context must be an object (the template's variables), got {type(context).__name__}")
    messages: list[Message] = []
    if context is not None and "system" in context:
        messages.append(Message("system", text(name, context["system"], "context.system")))
    for i, (s, t) in enumerate(zip(src, tgt)):
        messages += [Message("user", text(name, s, f"src[{i}]")), Message("assistant", text(name, t, f"tgt[{i}]"))]
    return Record(name, conversation(name, messages, meta={"context": context} if context else None))
