"""What ``strategies.py`` (hypothesis) and ``generate.py`` (seeded sweeps) share, written once.

Text pools (plain words and the hostile fragments that break templates), a catalog of realistic tools and the
schema and argument vocabulary of generated ones (enums, edge values; :func:`deref` and :func:`branches` for
``$ref``, ``anyOf`` and type lists), option validation (:func:`validate_options`, :func:`validate_sizes`) and
:func:`assemble`, which turns drawn turns into a valid :class:`~harness.conversation.Conversation` with
matching tool-call ids.
Everything here is a tuple or a frozen value: iteration order never depends on hashing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

from harness.conversation import ROLES, Conversation, Message, Tool, ToolCall
from harness.errors import InputError

__all__ = [
    "CATALOG", "CJK", "DEF_NAMES", "EDGES", "EMOJI", "FLOAT_EDGES", "FRAGMENT_POOLS", "HOSTILE_MARKERS", "INT_EDGES",
    "INT_ENUMS", "JSONISH", "MARKUP", "MAX_PARALLEL_CALLS", "MAX_ROUNDS", "NUMBER_ENUMS", "OTHER_SCRIPTS",
    "PLAIN_ALPHABET", "PROPERTY_NAMES", "SPECIAL_TOKENS", "STRING_EDGES", "SYSTEM_MODES", "TEMPLATE_SYNTAX",
    "TOOL_NAMES", "WORDS", "InvalidOption", "Options", "Round", "Turn", "assemble", "branches", "call_id", "deref",
    "validate_options", "validate_sizes",
]


def _invalid_option() -> type[InputError]:
    """``InvalidOption``: a generator option is invalid, a hypothesis ``InvalidArgument`` and a harness
    ``InputError`` (exit 2). Built on first use, so seeded sweeps (``harness check``) never import hypothesis."""
    cls = globals().get("InvalidOption")
    if cls is None:
        from hypothesis.errors import InvalidArgument

        cls = globals()["InvalidOption"] = type("InvalidOption", (InputError, InvalidArgument), {
            "__module__": __name__, "__doc__": "A generator option is invalid: a hypothesis ``InvalidArgument`` "
            "and a harness ``InputError`` (exit 2)."})
    return cls


def __getattr__(name: str) -> Any:
    if name == "InvalidOption":
        return _invalid_option()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- texts ------------------------------------------------------------------------------------------------
#: Plain text: what hostile=False produces and what every text shrinks towards ("0" is hypothesis' simplest char).
PLAIN_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,?!'-"

WORDS: tuple[str, ...] = tuple(
    """the a to of and in is it you that for on with as can this be are what how do not your have from
    or will at if so but by my please one all about more when there which model answer question time
    weather Paris London today tomorrow help write code list file data table number price order email
    meeting report summary example explain simple short long first last next step result error value
    function return string test check find search open close send create update delete user name city
    country water coffee music train book story plan idea reason because maybe yes no thanks hello
    world good great small large fast slow new old right left again also only just very much many
    people year day week month morning night team project release version server client request""".split()
)
#: Leading/trailing whitespace: merges with the template's own newlines and breaks ``strip``-ing templates.
EDGES: tuple[str, ...] = ("\n", "\n\n", " ", "  ", "\t", "\r\n", " \n", "\n ", "\n\n\n")
CJK: tuple[str, ...] = ("你好", "世界", "今天天气怎么样？", "こんにちは", "日本語のテキスト", "한국어", "中文，标点。", "\u3000", "ｆｕｌｌ")
EMOJI: tuple[str, ...] = (
    "😀", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "❤️", "🇫🇷", "👩🏾\u200d💻", "🤖", "✅",
)
TEMPLATE_SYNTAX: tuple[str, ...] = (
    "{{ x }}", "{% if %}", "{#", "#}", "{{", "}}", "{% endif %}", "{{ messages }}", "{{- bos_token }}",
    "{% for m in messages %}", "{%- raw %}", "{{ .System }}", "{{ .Prompt }}", "{{ end }}", "{0}", "{content}", "%s",
)
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|start_header_id|>", "<|begin_of_text|>", "<|endoftext|>",
    "</s>", "<s>", "[INST]", "[/INST]", "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>",
    "<｜end▁of▁sentence｜>", "<|user|>", "<|assistant|>", "<|observation|>", "[TOOL_CALLS]", "<|eom_id|>",
    "<|python_tag|>", "<start_of_turn>", "<end_of_turn>", "Human:", "Assistant:", "USER:", "### Instruction:",
    "Action:", "Action Input:", "Observation:",
)
JSONISH: tuple[str, ...] = (
    '{"a": 1}', "[1, 2, 3]", '{"name": "f", "arguments": {}}', '"quoted"', "null", '\\"', "\\n", "\\u00e9",
    "{}", '{"k": [true, false, null, 1.5e-7]}',
)
OTHER_SCRIPTS: tuple[str, ...] = (
    "\u200b", "\u00a0", "\u2028", "\ufeff", "e\u0301", "مرحبا", "שלום", "Ωμέγα", "привет", "naïve café", "ß", "ﬁ",
    "\u212b", "a\tb", "\t", "\r", "<>&'\"",
)
MARKUP: tuple[str, ...] = ("```python\nprint('hi')\n```", "# Title", "- item\n- item", "**bold**", "| a | b |\n|---|---|")
#: The hostile fragment pools in a fixed order (kind, pool).
FRAGMENT_POOLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("edges", EDGES), ("cjk", CJK), ("emoji", EMOJI), ("template", TEMPLATE_SYNTAX), ("special", SPECIAL_TOKENS),
    ("json", JSONISH), ("scripts", OTHER_SCRIPTS), ("markup", MARKUP),
)
#: Substrings whose presence marks a text as hostile (used by tests and reports).
HOSTILE_MARKERS: tuple[str, ...] = tuple(f for _, pool in FRAGMENT_POOLS[1:] for f in pool)

# --- tools ------------------------------------------------------------------------------------------------
#: Function names. OpenAI accepts ``^[a-zA-Z0-9_-]{1,64}$`` (so ``-`` is legal), MCP servers name tools with
#: dots (``fs.read_file``) and vLLM passes any name through; LLaMA-Factory's ReAct regex reads only
#: ``[a-zA-Z0-9_]+``. OpenAI rejects non-ASCII function names, so unicode goes in property names and texts.
TOOL_NAMES: tuple[str, ...] = (
    "f", "get_weather", "search", "lookup_order", "send_message", "run_python", "get_time", "translate",
    "book-flight", "listFiles", "x2", "fs.read_file", "get-user.v2",
)
#: Argument names: JSON-schema property names are any string, unicode included.
PROPERTY_NAMES: tuple[str, ...] = (
    "a", "query", "location", "unit", "count", "enabled", "tags", "options", "limit", "text", "lang", "ratio",
    "user_id", "camelCase", "filters", "items", "城市", "café", "größe", "名前",
)
SCALAR_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean")
ALL_TYPES: tuple[str, ...] = SCALAR_TYPES + ("array", "object")
ENUM_VALUES: tuple[str, ...] = ("celsius", "fahrenheit", "auto", "中文", "en-US")
INT_ENUMS: tuple[int, ...] = (0, 1, 2, 3, 10, -1, 100)
NUMBER_ENUMS: tuple[float | int, ...] = (0.5, 1, 1.5, 2.0, -0.25, 10)
#: ``$defs`` entry names (referenced as ``{"$ref": "#/$defs/NAME"}``).
DEF_NAMES: tuple[str, ...] = ("Address", "Range", "Item", "Unit")
#: String arguments that survive a JSON round trip only if every side escapes and decodes exactly once:
#: JSON-looking text, quotes, backslashes, newlines, tags a tool parser searches for.
STRING_EDGES: tuple[str, ...] = (
    '{"a": 1}', "[1,2]", "true", "null", "1", "1.0", "", "line one\nline two", 'say "hi"', "C:\\temp\\new",
    "tab\there", "\\n", "'single'", "}", "</tool_call>", "Action: search", "<|im_end|>", "ünïcødé ✓",
)
#: Integers that change under a float64 decoder or a 32-bit one, and zero.
INT_EDGES: tuple[int, ...] = (0, -1, 2**31, -(2**31) - 1, 2**53 + 1, 10**15)
#: Floats whose text differs between serialisers (``1.0``/``1``, ``1e+21``/``1e21``, ``1e-07``/``1e-7``).
FLOAT_EDGES: tuple[float, ...] = (1.0, 0.0, -1.0, 100.0, 0.1, 1e21, 1e-07, -2.5e-05, 3.141592653589793)
#: Parallel calls per assistant message (``parallel_calls``) and call rounds per user turn (multi-step).
MAX_PARALLEL_CALLS = 4
MAX_ROUNDS = 3


def deref(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with a local ``{"$ref": "#/$defs/NAME"}`` resolved against the tool's ``root`` parameters."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    if not isinstance(ref, str) or not ref.startswith("#/$defs/") or ref[8:] not in root.get("$defs", {}):
        raise ValueError(f"$ref={ref!r}: only local '#/$defs/NAME' refs to an existing definition are generated")
    return root["$defs"][ref[8:]]


def branches(schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """The alternatives a value may take: ``anyOf``'s schemas, one per type of a ``type`` list, else itself."""
    if "anyOf" in schema:
        return tuple(schema["anyOf"])
    kind = schema.get("type")
    if isinstance(kind, (list, tuple)):
        return tuple({**schema, "type": k} for k in kind)
    return (schema,)


def _p(type_: str | list[str], description: str = "", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_}
    if description:
        out["description"] = description
    out.update(extra)
    return out


CATALOG: tuple[Tool, ...] = (
    Tool("get_weather", "Get the current weather for a city.", {
        "type": "object",
        "properties": {"location": _p("string", "City name, e.g. Paris"),
                       "unit": _p("string", enum=["celsius", "fahrenheit"])},
        "required": ["location"]}),
    Tool("search_web", "Search the web & return <top> results \"verbatim\".", {
        "type": "object",
        "properties": {"query": _p("string"), "max_results": _p("integer", "How many results"),
                       "safe": _p("boolean")},
        "required": ["query"]}),
    Tool("send_email", "Envoie un e-mail (météo incluse) 📧", {
        "type": "object",
        "properties": {"to": _p("array", items={"type": "string"}), "subject": _p("string"), "body": _p("string"),
                       "urgent": _p("boolean")},
        "required": ["to", "subject", "body"]}),
    Tool("create_event", "在日历中创建事件", {
        "type": "object",
        "properties": {
            "title": _p("string"),
            "attendees": _p("array", items={"type": "object", "properties": {"name": {"type": "string"},
                                                                              "email": {"type": "string"}},
                                            "required": ["name"]}),
            "place": _p("object", properties={"city": {"type": "string"}, "lat": {"type": "number"},
                                              "lon": {"type": "number"}}, required=["city"]),
        },
        "required": ["title"]}),
    Tool("calculate", "", {"type": "object", "properties": {"expression": _p("string")}, "required": ["expression"]}),
    Tool("get_time", "Current time in UTC. Takes no arguments.", {"type": "object", "properties": {}}),
    Tool("fs.read_file", "Read a file of the workspace (an MCP-style dotted name).", {
        "type": "object",
        "properties": {"path": _p("string", "Path relative to the root"),
                       "encoding": _p(["string", "null"], default="utf-8"),
                       "range": {"$ref": "#/$defs/Range", "description": "Lines to read"}},
        "required": ["path"],
        "$defs": {"Range": {"type": "object", "properties": {"start": {"type": "integer"}, "end": {"type": "integer"}},
                            "required": ["start"]}}}),
    Tool("set-thermostat", "Règle le thermostat 🌡️ (°C); zones «salon», «cuisine».", {
        "type": "object",
        "properties": {
            "temperature": _p("number", "Target in °C", default=20.5),
            "mode": _p("integer", "0 off, 1 heat, 2 cool", enum=[0, 1, 2]),
            "zones": _p("array", items={"$ref": "#/$defs/Zone"}),
            "until": {"anyOf": [{"type": "string", "description": "ISO 8601 time"}, {"type": "null"}]},
        },
        "required": ["temperature", "mode"],
        "$defs": {"Zone": {"type": "object", "properties": {"名前": {"type": "string"},
                                                             "floor": {"type": "integer", "default": 0}},
                           "required": ["名前"]}}}),
)


def call_id(k: int) -> str:
    """The k-th tool-call id of a conversation: 9 alphanumerics, as Mistral templates require."""
    return f"call{k:05d}"


# --- options ----------------------------------------------------------------------------------------------
SYSTEM_MODES: tuple[str, ...] = ("any", "absent", "empty", "text")
_TRI = "must be one of False, True, 'any'"


def _bad(name: str, value: Any, why: str) -> InputError:
    return _invalid_option()(f"{name}={value!r} (type={type(value).__name__}): {why}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Options:
    """Validated conversation options, shared by ``conversations()`` and ``generate()``."""

    min_turns: int = 1
    max_turns: int = 4
    system: str = "any"
    tools: bool | str = False
    reasoning: bool | str = False
    roles: tuple[str, ...] = ROLES
    parallel_calls: bool = True
    end_with_assistant: bool = True

    @property
    def calls_allowed(self) -> bool:
        """Tool calls need tool definitions and tool-result messages."""
        return self.tools is not False and "tool" in self.roles


def validate_options(*, min_turns: int = 1, max_turns: int = 4, system: str = "any", tools: bool | str = False,
                     reasoning: bool | str = False, roles: Sequence[str] = ROLES, parallel_calls: bool = True,
                     end_with_assistant: bool = True) -> Options:
    """Check every option eagerly; raise :class:`InvalidOption` naming the bad value and the remedy."""
    if not _is_int(min_turns) or min_turns < 1:
        raise _bad("min_turns", min_turns, "must be an int >= 1")
    if not _is_int(max_turns) or max_turns < min_turns:
        raise _bad("max_turns", max_turns, f"must be an int >= min_turns={min_turns}")
    if isinstance(roles, str) or not isinstance(roles, (tuple, list, frozenset, set)):
        raise _bad("roles", roles, f"must be a tuple of roles drawn from {ROLES!r}")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise _bad("roles", roles, f"unknown role {unknown[0]!r}; use only {', '.join(ROLES)}")
    missing = [r for r in ("user", "assistant") if r not in roles]
    if missing:
        raise _bad("roles", roles, f"must include {missing[0]!r}: every turn has a user and an assistant message")
    if not isinstance(system, str) or system not in SYSTEM_MODES:
        raise _bad("system", system, "must be one of " + ", ".join(map(repr, SYSTEM_MODES)))
    if system in ("empty", "text") and "system" not in roles:
        raise _bad("system", system, f"needs 'system' in roles={tuple(roles)!r}; pass system='absent'")
    for name, value in (("tools", tools), ("reasoning", reasoning)):
        if not (value is True or value is False or value == "any"):
            raise _bad(name, value, _TRI)
    for name, value in (("parallel_calls", parallel_calls), ("end_with_assistant", end_with_assistant)):
        if not isinstance(value, bool):
            raise _bad(name, value, "must be True or False")
    canonical = tuple(r for r in ROLES if r in roles)
    return Options(min_turns, max_turns, system if "system" in canonical else "absent", tools, reasoning,
                   canonical, parallel_calls, end_with_assistant)


def validate_sizes(min_size: int, max_size: int | None) -> None:
    """Size bounds for texts: ``0 <= min_size <= max_size`` (``max_size=None`` is unbounded)."""
    if not _is_int(min_size) or min_size < 0:
        raise _bad("min_size", min_size, "must be an int >= 0")
    if max_size is not None and (not _is_int(max_size) or max_size < min_size):
        raise _bad("max_size", max_size, f"must be None or an int >= min_size={min_size}")


# --- assembly ---------------------------------------------------------------------------------------------
class Round(NamedTuple):
    """One assistant tool-call message and its results: calls are ``(name, arguments)`` pairs."""

    content: str | None
    reasoning: str | None
    calls: Sequence[tuple[str, Mapping[str, Any]]]
    results: Sequence[str]


class Turn(NamedTuple):
    """A user message and everything up to and including the assistant's final answer."""

    user: str
    rounds: Sequence[Round]
    answer: str
    reasoning: str | None


def assemble(system: str | None, tools: Sequence[Tool], turns: Sequence[Turn], *,
             end_with_assistant: bool = True) -> Conversation:
    """Build the conversation: ids ``call00000``, ``call00001``… in order; one tool message per call.

    Without ``end_with_assistant`` the last answer is dropped, so the conversation ends with the user
    message or tool results the next answer responds to (what a server receives).
    """
    messages: list[Message] = [] if system is None else [Message("system", system)]
    k = 0
    for turn in turns:
        messages.append(Message("user", turn.user))
        for rnd in turn.rounds:
            calls = tuple(ToolCall(name, args, call_id(k + j)) for j, (name, args) in enumerate(rnd.calls))
            k += len(calls)
            messages.append(Message("assistant", rnd.content, rnd.reasoning, calls))
            for call, result in zip(calls, rnd.results):
                messages.append(Message("tool", result, tool_call_id=call.id, name=call.name))
        messages.append(Message("assistant", turn.answer, turn.reasoning))
    if not end_with_assistant and turns:
        messages.pop()
    return Conversation(tuple(messages), tuple(tools))
