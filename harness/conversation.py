"""The canonical conversation: frozen dataclasses with OpenAI chat JSON in and out.

Values are structured (tool-call arguments are objects). Each side receives its own real form:
``to_openai(form="request")`` is what an OpenAI client sends (arguments as JSON strings, ``content:
null`` on call-only turns); ``form="dataset"`` is what HF/TRL datasets store (arguments as objects).

>>> conv = Conversation.from_openai([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
>>> conv.assistant_indices
(1,)
>>> conv.to_openai()["messages"][1]
{'role': 'assistant', 'content': 'yo'}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any, Callable, Literal

from harness.errors import ConversationError

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
Form = Literal["request", "dataset"]


def _freeze(value: Any) -> Any:
    """Deep-freeze JSON values so frozen dataclasses stay immutable (dicts become read-only views)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Turn frozen values back into plain JSON (dict / list)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class ToolCall:
    """One function call made by the assistant. ``arguments`` is a JSON object."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", _freeze(self.arguments))

    def to_openai(self, form: Form = "request") -> dict[str, Any]:
        args = thaw(self.arguments)
        return {
            "id": self.id,
            "type": "function",
            "function": {
                "name": self.name,
                "arguments": json.dumps(args, ensure_ascii=False) if form == "request" else args,
            },
        }


@dataclass(frozen=True)
class Tool:
    """A tool definition (OpenAI ``{"type": "function", "function": {...}}``)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", _freeze(self.parameters))

    def to_openai(self) -> dict[str, Any]:
        """``{"type": "function", "function": {...}}`` (a shared, cached dict)."""
        return self._openai

    @cached_property
    def _openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": thaw(self.parameters)},
        }


@dataclass(frozen=True)
class Message:
    """One chat message. ``reasoning`` is the assistant's thinking text, sent as ``reasoning_content``."""

    role: Role
    content: str | None = None
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def to_openai(self, form: Form = "request") -> dict[str, Any]:
        """This message as OpenAI JSON. The dict is shared (cached): copy it before changing it."""
        return self._request if form == "request" else self._dataset

    @cached_property
    def _request(self) -> dict[str, Any]:
        return self._build("request")

    @cached_property
    def _dataset(self) -> dict[str, Any]:
        return self._build("dataset")

    def memo(self, key: str, make: "Callable[[Message], Any]") -> Any:
        """A value derived from this (immutable) message, computed once: renderers cache their dict forms."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = make(self)
        return cache[key]

    def _build(self, form: Form) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role}
        content = self.content
        if content is None and form == "dataset":
            content = ""
        out["content"] = content
        if self.reasoning is not None:
            out["reasoning_content"] = self.reasoning
        if self.tool_calls:
            out["tool_calls"] = [c.to_openai(form) for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class Conversation:
    """An ordered chat with optional tool definitions.

    ``source`` names the training record it was read from (``train.jsonl:17``, ``train.json[16]``; None for a
    generated one); ``meta`` holds record data that is not a message but a renderer may read (PaddleNLP's
    ``context``, under the key ``"context"``). Neither takes part in equality."""

    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    source: str | None = field(default=None, compare=False)
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "tools", tuple(self.tools))
        object.__setattr__(self, "meta", _freeze(self.meta))
        _validate(self)

    @property
    def assistant_indices(self) -> tuple[int, ...]:
        """Indices of assistant messages: the answers a trainer puts loss on."""
        return tuple(i for i, m in enumerate(self.messages) if m.role == "assistant")

    @property
    def system(self) -> str | None:
        """Content of a leading system message, or None when there is none."""
        if self.messages and self.messages[0].role == "system":
            return self.messages[0].content or ""
        return None

    def prefix(self, k: int) -> "Conversation":
        """The conversation up to (not including) message ``k``: what a server receives for answer ``k``."""
        if k >= len(self.messages):
            return self
        out = object.__new__(Conversation)  # a prefix of a valid conversation is valid: skip re-validation
        object.__setattr__(out, "messages", self.messages[:k])
        object.__setattr__(out, "tools", self.tools)
        object.__setattr__(out, "source", self.source)
        object.__setattr__(out, "meta", self.meta)
        return out

    def to_openai(self, form: Form = "request") -> dict[str, Any]:
        out: dict[str, Any] = {"messages": [m.to_openai(form) for m in self.messages]}
        if self.tools:
            out["tools"] = [t.to_openai() for t in self.tools]
        return out

    def tool_dicts(self) -> list[dict[str, Any]] | None:
        """Tool definitions as OpenAI JSON (shared dicts), or None when there are none."""
        if not self.tools:
            return None
        cached = self.__dict__.get("_tool_dicts")
        if cached is None:
            cached = self.__dict__["_tool_dicts"] = [t.to_openai() for t in self.tools]
        return cached

    def to_json(self) -> str:
        return json.dumps(self.to_openai(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_openai(cls, data: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> "Conversation":
        """Parse ``{"messages": [...], "tools": [...]}`` or a bare message list; raise ConversationError."""
        if isinstance(data, Mapping):
            if "messages" not in data:
                raise ConversationError(
                    f"conversation keys={sorted(data)!r}: no 'messages' key; pass {{'messages': [...]}} "
                    "or a list of messages"
                )
            raw_messages, raw_tools = data["messages"], data.get("tools") or []
        else:
            raw_messages, raw_tools = data, []
        if not isinstance(raw_messages, (list, tuple)):
            raise ConversationError(f"messages={raw_messages!r}: must be a list of message objects")
        messages = tuple(_parse_message(m, f"messages[{i}]") for i, m in enumerate(raw_messages))
        tools = tuple(_parse_tool(t, f"tools[{i}]") for i, t in enumerate(raw_tools))
        return cls(messages, tools)


def _content_text(value: Any, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts: text parts joined with "\n" as vLLM does
        texts = []
        for j, part in enumerate(value):
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ConversationError(
                    f"{path}.content[{j}]={part!r}: only text parts are supported; use {{'type': 'text', 'text': ...}}"
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise ConversationError(f"{path}.content={value!r} (type={type(value).__name__}): must be a string, null or text parts")


def _parse_arguments(value: Any, path: str) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConversationError(f"{path}={value!r}: not valid JSON ({exc.msg}); send a JSON object string") from None
    if not isinstance(value, Mapping):
        raise ConversationError(f"{path}={value!r} (type={type(value).__name__}): arguments must be a JSON object")
    return value


def _parse_message(raw: Any, path: str) -> Message:
    if not isinstance(raw, Mapping):
        raise ConversationError(f"{path}={raw!r} (type={type(raw).__name__}): must be an object with 'role' and 'content'")
    role = raw.get("role")
    if role == "developer":
        role = "system"
    if role not in ROLES:
        raise ConversationError(f"{path}.role={role!r}: unknown role; use one of {', '.join(ROLES)}")
    calls = []
    for j, call in enumerate(raw.get("tool_calls") or []):
        cpath = f"{path}.tool_calls[{j}]"
        fn = call.get("function", call) if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ConversationError(f"{cpath}={call!r}: needs function.name (a string) and function.arguments")
        calls.append(ToolCall(fn["name"], _parse_arguments(fn.get("arguments", {}), cpath + ".function.arguments"),
                              str(call.get("id") or "")))
    reasoning = raw.get("reasoning_content", raw.get("reasoning"))
    if reasoning is not None and not isinstance(reasoning, str):
        raise ConversationError(f"{path}.reasoning_content={reasoning!r}: must be a string")
    return Message(role=role, content=_content_text(raw.get("content"), path), reasoning=reasoning,
                   tool_calls=tuple(calls), tool_call_id=raw.get("tool_call_id"), name=raw.get("name"))


def _parse_tool(raw: Any, path: str) -> Tool:
    fn = raw.get("function", raw) if isinstance(raw, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise ConversationError(f"{path}={raw!r}: a tool needs function.name; use {{'type': 'function', 'function': {{...}}}}")
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(params, Mapping):
        raise ConversationError(f"{path}.function.parameters={params!r}: must be a JSON schema object")
    return Tool(fn["name"], str(fn.get("description") or ""), params)


def _validate(conv: Conversation) -> None:
    for i, m in enumerate(conv.messages):
        path = f"messages[{i}]"
        if not isinstance(m, Message):
            raise ConversationError(f"{path}={m!r}: must be a Message; build it with Conversation.from_openai")
        if m.role == "system" and i != 0:
            raise ConversationError(f"{path}.role='system': a system message must come first")
        if m.role == "assistant" and m.content is None and not m.tool_calls:
            raise ConversationError(f"{path}: an assistant message needs content or tool_calls")
        if m.role in ("user", "tool") and m.content is None:
            raise ConversationError(f"{path}.content=None: a {m.role} message needs text content")
        if m.role != "assistant" and (m.tool_calls or m.reasoning is not None):
            raise ConversationError(f"{path}.role={m.role!r}: only assistant messages carry tool_calls or reasoning")


PLAIN_TEXT = "Hello there."


def shape_key(conv: Conversation) -> tuple:
    """The kinds of message templates branch on (role, empty or not, reasoning, calls, position) and
    whether tools are defined: conversations with the same key exercise the same template branches."""
    kinds = frozenset((m.role, bool(m.content), bool(m.reasoning), min(len(m.tool_calls), 2), i == 0,
                       i == len(conv.messages) - 1) for i, m in enumerate(conv.messages))
    return kinds, bool(conv.tools)


#: What a plain variant gives every tool with properties, and every non-empty call: one string property.
PLAIN_SCHEMA: Mapping[str, Any] = _freeze({"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]})
_EMPTY_SCHEMA: Mapping[str, Any] = _freeze({"type": "object", "properties": {}})
#: Plain messages and tool tuples interned by value: equal plain prefixes of different conversations are the same
#: objects, so renderers' per-message dicts and render caches are shared across conversations.
_INTERNED: dict[Any, Any] = {}


def _intern(key: Any, value: Any) -> Any:
    if len(_INTERNED) > 8192:
        _INTERNED.clear()
    return _INTERNED.setdefault(key, value)


def _plain_id(value: str | None, ids: dict[str, str]) -> str | None:
    """The n-th distinct call id of a conversation as ``n`` in its alphanumeric places (length and separators
    kept: templates that check an id's form, Mistral's nine characters, see the same form)."""
    if not value:
        return value
    if value not in ids:
        places = [i for i, ch in enumerate(value) if ch.isalnum()]
        digits = str(len(ids) + 1).rjust(len(places), "0")[-len(places):] if places else ""
        chars = list(value)
        for i, d in zip(places, digits):
            chars[i] = d
        ids[value] = "".join(chars)
    return ids[value]


def plain_variant(conv: Conversation) -> Conversation:
    """The same shape with every piece of data plain, so what differs between two renderings of it comes from the
    templates, not the data.

    Non-empty texts become ``PLAIN_TEXT``; tool ``k`` is named ``tool_k`` (calls follow it), has the description
    ``"A tool."`` when it had one and :data:`PLAIN_SCHEMA` when it had properties; non-empty call arguments become
    ``{"x": "x"}``; call ids keep their form with their number in it. Counts, roles, empties and order stay. The
    tool data itself (schemas, names, argument values) is the ``tools`` check's to compare, on the real
    conversation. Equal plain messages are shared objects (renders of equal plain prefixes are cached once)."""
    names: dict[str, str] = {t.name: f"tool_{k}" for k, t in enumerate(conv.tools)}
    ids: dict[str, str] = {}

    def name(value: str) -> str:
        return names.setdefault(value, f"tool_{len(names)}")

    messages, keys = [], []
    for m in conv.messages:
        calls = tuple(ToolCall(name(c.name), {"x": "x"} if c.arguments else {}, _plain_id(c.id, ids) or "")
                      for c in m.tool_calls)
        plain = Message(m.role, PLAIN_TEXT if m.content else m.content, PLAIN_TEXT if m.reasoning else m.reasoning,
                        calls, _plain_id(m.tool_call_id, ids), name(m.name) if m.name and m.role == "tool" else m.name)
        key = ("message", plain.role, plain.content, plain.reasoning, plain.tool_call_id, plain.name,
               tuple((c.name, c.id, bool(c.arguments)) for c in calls))
        messages.append(_intern(key, plain))
        keys.append(key)
    shapes = tuple((names[t.name], "A tool." if t.description else "", _properties(t.parameters)) for t in conv.tools)
    tools = _intern(("tools", shapes), tuple(Tool(n, d, PLAIN_SCHEMA if p else _EMPTY_SCHEMA) for n, d, p in shapes))
    out = Conversation(tuple(messages), tools)
    out.__dict__["_plain_key"] = (tuple(keys), shapes)
    return out


def plain_key(conv: Conversation) -> tuple:
    """A hashable key equal for two conversations exactly when their plain variants are equal (each field of each
    plain message, each plain tool): what structural checks cache their results by."""
    key = conv.__dict__.get("_plain_key")
    return key if key is not None else plain_variant(conv).__dict__["_plain_key"]


def _properties(schema: Mapping[str, Any]) -> bool:
    return isinstance(schema, Mapping) and bool(schema.get("properties"))
