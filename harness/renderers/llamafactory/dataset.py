"""The dataset form LLaMA-Factory trains on, made from a conversation.

Dataset form (what a ShareGPT dataset stores, as LLaMA-Factory's converters align it):
  * a leading system message → the ``system`` column (``system or default_system``: empty means default);
  * user → ``user``; assistant → ``assistant``; an assistant turn with tool calls → a ``function`` turn whose
    content is the JSON of the call, ``{"name", "arguments": {...}}``, or a list of them for parallel calls;
    text beside the calls is stored before them as ``text + "\\n" + <tool_call>JSON</tool_call>`` (the
    template's ``tool_call_words``: ``FunctionFormatter`` keeps text around that block, as it sits in the
    model's raw output);
  * consecutive tool results → one ``observation`` turn, joined with ``"\\n</tool_response>\\n<tool_response>\\n"``
    (LLaMA-Factory's own OpenAI converter does this);
  * tools → the ``tools`` column: a JSON string of the function objects (``[{"name", "description", "parameters"}]``);
  * ``Message.reasoning`` (not None) → the content prefixed with the template's thought words,
    ``<think>\\n{reasoning}\\n</think>\\n\\n{content}`` — how reasoning datasets for LLaMA-Factory store it;
    ``ReasoningTemplate`` then strips or keeps it (``enable_thinking``) and adds empty thoughts as it does.
Shapes LLaMA-Factory drops as invalid (turns not alternating user/observation then assistant/function, e.g.
two user messages in a row, or a conversation opening with an assistant) raise ``RenderRejected``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from harness.errors import RenderRejected

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message

OBSERVATION_JOIN = "\n</tool_response>\n<tool_response>\n"


def to_dataset(template: Any, conv: "Conversation", *, complete: bool = True
           ) -> tuple[str, str, list[dict[str, str]], list[int]]:
    """``(system, tools JSON, aligned messages, harness index of each)``; RenderRejected for shapes LF drops."""
    msgs = list(conv.messages)
    offset = 0
    system = ""
    if msgs and msgs[0].role == "system":
        system, msgs, offset = msgs[0].content or "", msgs[1:], 1
    tools = json.dumps([t.to_openai()["function"] for t in conv.tools], ensure_ascii=False) if conv.tools else ""
    aligned: list[dict[str, str]] = []
    index: list[int] = []
    i = 0
    while i < len(msgs):
        m = msgs[i]
        if m.role == "tool":
            j = i
            while j < len(msgs) and msgs[j].role == "tool":
                j += 1
            aligned.append({"role": "observation",
                            "content": OBSERVATION_JOIN.join(x.content or "" for x in msgs[i:j])})
            index.append(i + offset)
            i = j
            continue
        if m.role == "assistant":
            aligned.append(_assistant(template, m))
        else:
            aligned.append({"role": "user", "content": m.content or ""})
        index.append(i + offset)
        i += 1
    accept = (("user", "observation"), ("assistant", "function"))
    for t, message in enumerate(aligned):
        if message["role"] not in accept[t % 2]:
            what = "an assistant message opens the conversation" if t == 0 else \
                f"messages[{index[t]}] ({message['role']}) follows a {aligned[t - 1]['role']} turn"
            raise RenderRejected("train", f"LLaMA-Factory drops this example as invalid: {what}; its turns must "
                                          "alternate user/observation then assistant/function")
    if complete and len(aligned) % 2:
        raise RenderRejected("train", "LLaMA-Factory drops an example with an odd number of turns "
                                      "(it must end with an assistant answer)")
    return system, tools, aligned, index

def _assistant(template: Any, m: "Message") -> dict[str, str]:
    thought = ""
    if m.reasoning is not None:
        words = template.thought_words
        thought = words[0] + m.reasoning + words[1]
    if not m.tool_calls:
        return {"role": "assistant", "content": thought + (m.content or "")}
    calls = [{"name": c.name, "arguments": c.to_openai("dataset")["function"]["arguments"]} for c in m.tool_calls]
    payload = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
    if m.content:
        start, end = template.tool_call_words
        return {"role": "function", "content": thought + m.content + "\n" + start + payload + end}
    return {"role": "function", "content": thought + payload}
