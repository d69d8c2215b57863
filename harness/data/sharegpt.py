"""LLaMA-Factory ``sharegpt`` records as ``SharegptDatasetConverter`` (0.9.5) aligns them.

Rules, exactly the converter's: a first message tagged ``system_tag`` is the system, else the ``system``
column; the remaining turns must alternate (user|observation) then (assistant|function_call) and be even in
number, else LLaMA-Factory skips the record ("Skipping this abnormal example") — the harness counts it as
skipped too. An empty system is no system (the template's ``system or default_system``). Roles: user →
``user``, gpt → ``assistant``, observation → ``tool``, function_call → an assistant turn with tool calls.
Stricter than LLaMA-Factory (exit 2, naming the record): a tag that is none of the mapping's five (a wrong
mapping, which LLaMA-Factory would silently skip record by record), a missing messages column, non-string
content, function_call content that is not a JSON call, tools that are not JSON.
"""

from __future__ import annotations

from typing import Any

from harness.conversation import Message
from harness.data.lfinfo import Mapping
from harness.errors import InputError
from harness.data.records import Record, conversation, function_call, require, text, tools


def read(name: str, record: dict[str, Any], m: Mapping) -> Record:
    turns = require(name, record, m.messages, "sharegpt")
    if not isinstance(turns, list):
        raise InputError(f"{name}: {m.messages} must be a list of turns, got {type(turns).__name__}")
    roles = {m.user_tag: "user", m.assistant_tag: "assistant", m.observation_tag: "tool",
             m.function_tag: "function", m.system_tag: "system"}
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or m.role_tag not in t or m.content_tag not in t:
            raise InputError(f"{name}: {m.messages}[{i}] must be an object with {m.role_tag!r} and {m.content_tag!r}")
        if t[m.role_tag] not in roles:
            raise InputError(f"{name}: {m.messages}[{i}].{m.role_tag}={t[m.role_tag]!r}: unknown role tag; the mapping's "
                             f"tags are {', '.join(repr(k) for k in roles if k)} (fix the tag or the dataset_info.json "
                             "tags)")
    if m.system_tag and turns and turns[0][m.role_tag] == m.system_tag:
        system, turns = turns[0][m.content_tag], turns[1:]
    else:
        system = record.get(m.system) if m.system else ""
    accept = ((m.user_tag, m.observation_tag), (m.assistant_tag, m.function_tag))
    for i, t in enumerate(turns):
        if t[m.role_tag] not in accept[i % 2]:
            before = f"after {turns[i - 1][m.role_tag]!r}" if i else "opening the conversation"
            return Record(name, None, f"role {t[m.role_tag]!r} {before} (LLaMA-Factory skips the record)")
    if len(turns) % 2:
        return Record(name, None, f"{len(turns)} turns, not ending with an answer (LLaMA-Factory skips the record)")
    messages = []
    system = text(name, system, "system")
    if system:
        messages.append(Message("system", system))
    for i, t in enumerate(turns):
        role, content = roles[t[m.role_tag]], text(name, t[m.content_tag], f"{m.messages}[{i}].{m.content_tag}")
        messages.append(function_call(name, content, f"{m.messages}[{i}]") if role == "function"
                        else Message(role, content))
    return Record(name, conversation(name, messages, tools(name, record.get(m.tools) if m.tools else None,
                                                           m.tools or "tools")))
