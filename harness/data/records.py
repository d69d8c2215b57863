"""What a reader yields: a :class:`Record` (a named conversation, or a record the trainer skips) and the
helpers every reader shares to build one."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from harness.conversation import Conversation, Message, Tool, ToolCall, _parse_tool
from harness.errors import ConversationError, InputError


@dataclass(frozen=True)
class Record:
    """One training record: ``conversation`` (its ``source`` is ``name``), or None with ``skipped`` saying why
    the training framework drops it (LLaMA-Factory: "Skipping this abnormal example")."""

    name: str
    conversation: Conversation | None
    skipped: str = ""


def conversation(name: str, messages: list[Message], tools: tuple[Tool, ...] = (),
                 meta: dict[str, Any] | None = None) -> Conversation:
    """A Conversation named ``name``; a shape rule it breaks is an InputError naming the record."""
    try:
        return Conversation(tuple(messages), tools, source=name, meta=meta or {})
    except ConversationError as exc:
        raise InputError(f"{name}: {exc}") from None


def text(name: str, value: Any, what: str) -> str:
    """A message text: a string (None reads as ''), anything else is an InputError."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{name}: {what}={json.dumps(value, ensure_ascii=False)[:60]} (type={type(value).__name__}): "
                         "must be a string")
    return value


def tools(name: str, value: Any, column: str) -> tuple[Tool, ...]:
    """The tools column: a JSON string (as LLaMA-Factory stores it) or a list of tool objects; '' or None is none.
    Invalid JSON is an InputError (LLaMA-Factory's ToolFormatter raises on it)."""
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}: {column}: invalid JSON ({exc.msg}); store the tools as a JSON list of "
                             "function objects") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise InputError(f"{name}: {column} must be a list of function objects, got {type(value).__name__}")
    try:
        return tuple(_parse_tool(t, f"{column}[{i}]") for i, t in enumerate(value))
    except ConversationError as exc:
        raise InputError(f"{name}: {exc}") from None


_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def function_call(name: str, content: str, what: str) -> Message:
    """An assistant message from a LLaMA-Factory ``function_call`` turn: JSON ``{"name", "arguments"}`` or a list
    of them (parallel calls), optionally after text as ``text\\n<tool_call>JSON</tool_call>``."""
    head, payload = "", content
    match = _TOOL_CALL.search(content)
    if match is not None:
        head, payload = content[:match.start()].removesuffix("\n"), match.group(1)
    try:
        calls = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: {what}: function_call content is not JSON ({exc.msg}); store "
                         '{"name": ..., "arguments": {...}} or a list of them') from None
    calls = calls if isinstance(calls, list) else [calls]
    out = []
    for c in calls:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(c.get("arguments"), dict):
            raise InputError(f"{name}: {what}: function call {json.dumps(c, ensure_ascii=False)[:80]} needs a string "
                             "'name' and an object 'arguments'")
        out.append(ToolCall(c["name"], c["arguments"]))
    return Message("assistant", content=head or None, tool_calls=tuple(out))


def require(name: str, record: dict[str, Any], key: str | None, fmt: str) -> Any:
    """``record[key]``; a missing key is an InputError naming the record and the format."""
    if key is None or key not in record:
        raise InputError(f"{name}: missing key {key!r} ({fmt} record keys: {', '.join(sorted(record)) or 'none'}); "
                         "fix the record, or pass --data-format / a dataset_info.json mapping that names its columns")
    return record[key]
