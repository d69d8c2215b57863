"""OpenAI/TRL conversational records: ``{"messages": [...], "tools": [...]}`` or TRL's
``{"prompt": [...], "completion": [...]}`` (messages = prompt + completion, as TRL's chat-template step joins
them). Messages are parsed by ``Conversation.from_openai``; a message it refuses is an error naming the record.
TRL trains every record it is given, so none is skipped."""

from __future__ import annotations

from typing import Any

from harness.conversation import Conversation
from harness.data.records import Record, conversation
from harness.errors import ConversationError, InputError


def read(name: str, record: dict[str, Any]) -> Record:
    if "messages" in record:
        messages = record["messages"]
    elif "prompt" in record and "completion" in record:
        prompt, completion = record["prompt"], record["completion"]
        if not isinstance(prompt, list) or not isinstance(completion, list):
            raise InputError(f"{name}: prompt and completion must be lists of messages (TRL's conversational "
                             "form); a plain-text prompt/completion record has no chat template to check")
        messages = prompt + completion
    else:
        raise InputError(f"{name}: missing key 'messages' (keys: {', '.join(sorted(record)) or 'none'}); an OpenAI "
                         "record is {\"messages\": [...]} or TRL's {\"prompt\": [...], \"completion\": [...]}")
    try:
        parsed = Conversation.from_openai({"messages": messages, "tools": record.get("tools") or []})
    except ConversationError as exc:
        raise InputError(f"{name}: {exc}") from None
    if not parsed.assistant_indices:
        raise InputError(f"{name}: no assistant message, so nothing is trained; add the answer")
    return Record(name, conversation(name, list(parsed.messages), parsed.tools))
