"""XTuner records: ``{"conversation": [{"system": ..., "input": ..., "output": ...}, ...]}``.

Each turn is a user message (``input``) and an answer (``output``); the first turn's non-empty ``system`` is
the system message. XTuner also lets a later turn carry a system text (inserted before that turn's input);
a Conversation has one leading system, so such a record is an error naming it (the harness cannot check it
as trained)."""

from __future__ import annotations

from typing import Any

from harness.conversation import Message
from harness.data.records import Record, conversation, require, text
from harness.errors import InputError


def read(name: str, record: dict[str, Any]) -> Record:
    turns = require(name, record, "conversation", "xtuner")
    if not isinstance(turns, list) or not turns:
        raise InputError(f"{name}: 'conversation' must be a non-empty list of {{system, input, output}} turns")
    messages: list[Message] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "output" not in turn:
            raise InputError(f"{name}: conversation[{i}] must be an object with 'input' and 'output'")
        system = text(name, turn.get("system"), f"conversation[{i}].system")
        if system and i:
            raise InputError(f"{name}: conversation[{i}].system: a system text after the first turn is not supported; "
                             "move it to the first turn")
        if system:
            messages.append(Message("system", system))
        messages += [Message("user", text(name, turn.get("input"), f"conversation[{i}].input")),
                     Message("assistant", text(name, turn["output"], f"conversation[{i}].output"))]
    return Record(name, conversation(name, messages))
