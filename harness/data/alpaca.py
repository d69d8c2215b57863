"""LLaMA-Factory ``alpaca`` records as ``AlpacaDatasetConverter`` (0.9.5) aligns them.

Rules, exactly the converter's: each ``[prompt, response]`` pair of the ``history`` column (when it is a
list) is a user and an assistant turn; the user turn is the non-empty ones of ``instruction`` and ``input``
joined with ``"\\n"``; the answer is ``output`` when it is a string — otherwise the record is unsupervised
and the supervised processor drops it ("Dropped invalid example"): counted as skipped. ``system`` and
``tools`` columns as mapped; an empty system is no system. A record missing the ``output`` key (or the mapped
response column) is an error naming it.
"""

from __future__ import annotations

from typing import Any

from harness.conversation import Message
from harness.data.lfinfo import Mapping
from harness.data.records import Record, conversation, require, text, tools
from harness.errors import InputError


def read(name: str, record: dict[str, Any], m: Mapping) -> Record:
    response = require(name, record, m.response, "alpaca")
    messages: list[Message] = []
    system = text(name, record.get(m.system) if m.system else "", m.system or "system")
    if system:
        messages.append(Message("system", system))
    history = record.get(m.history) if m.history else None
    if isinstance(history, list):
        for i, pair in enumerate(history):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise InputError(f"{name}: {m.history}[{i}] must be a [prompt, response] pair")
            messages += [Message("user", text(name, pair[0], f"{m.history}[{i}][0]")),
                         Message("assistant", text(name, pair[1], f"{m.history}[{i}][1]"))]
    query = [text(name, record.get(key), key) for key in (m.prompt, m.query) if key and record.get(key)]
    messages.append(Message("user", "\n".join(query)))
    if not isinstance(response, str):
        return Record(name, None, f"{m.response} is {type(response).__name__}, not a string: an unsupervised "
                                  "example (LLaMA-Factory's supervised stage drops it)")
    messages.append(Message("assistant", response))
    return Record(name, conversation(name, messages, tools(name, record.get(m.tools) if m.tools else None,
                                                           m.tools or "tools")))
