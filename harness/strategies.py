"""Hypothesis strategies for chat conversations that break prompt templates.

Every strategy validates its options eagerly (``hypothesis.errors.InvalidArgument`` naming the value)
and is designed to shrink towards the simplest conversation: one user message and one assistant
answer, no system message, no tools, no reasoning, empty or ``"0"``-like plain texts.

>>> from hypothesis import find
>>> find(conversations(), lambda c: True).to_openai()["messages"]
[{'role': 'user', 'content': ''}, {'role': 'assistant', 'content': ''}]
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import hypothesis.strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from harness._pools import (
    ALL_TYPES, CATALOG, DEF_NAMES, EDGES, ENUM_VALUES, FLOAT_EDGES, FRAGMENT_POOLS, INT_EDGES, INT_ENUMS,
    MAX_PARALLEL_CALLS, MAX_ROUNDS, NUMBER_ENUMS, PLAIN_ALPHABET, PROPERTY_NAMES, SCALAR_TYPES, SPECIAL_TOKENS,
    STRING_EDGES, TOOL_NAMES, WORDS, InvalidOption, Options, Round, Turn, _bad, assemble, branches, deref,
    validate_options, validate_sizes,
)
from harness.conversation import ROLES, Conversation, Tool, ToolCall

__all__ = ["conversations", "texts", "tool_calls", "tool_definitions"]

_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SEPARATORS = (" ", "", "\n")


def _tidy(text: str) -> str:
    """Make plain text safe without changing its length: no leading, trailing or doubled spaces."""
    chars = list(text)
    for i, c in enumerate(chars):
        if c == " " and (i == 0 or i == len(chars) - 1 or chars[i - 1] == " "):
            chars[i] = "0"
    return "".join(chars)


def _fit(draw: DrawFn, text: str, min_size: int, max_size: int | None) -> str:
    if max_size is not None and len(text) > max_size:
        text = text[:max_size]
    if len(text) < min_size:
        need = min_size - len(text)
        text += draw(st.text(PLAIN_ALPHABET.replace(" ", ""), min_size=need, max_size=need))
    return text


_WORD_LISTS = st.lists(st.sampled_from(WORDS), max_size=30)


@st.composite
def _worded(draw: DrawFn, min_size: int, max_size: int | None) -> str:
    return _tidy(_fit(draw, " ".join(draw(_WORD_LISTS)), min_size, max_size))


_FRAGMENTS: SearchStrategy[str] = st.one_of(
    st.sampled_from(WORDS),
    *(st.sampled_from(pool) for _, pool in FRAGMENT_POOLS),
    st.sampled_from(SPECIAL_TOKENS),  # twice: the most telling hazard
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=4),
)


_ONE_IN_20 = st.integers(0, 19)
_LEADS = st.sampled_from(("",) + EDGES)
_SEPARATOR_CHOICES = st.sampled_from(_SEPARATORS)
_FRAGMENT_LISTS = st.lists(_FRAGMENTS, min_size=1, max_size=8)
_LONG_SIZES = st.integers(1000, 4000)


@st.composite
def _hostile(draw: DrawFn, min_size: int, max_size: int | None) -> str:
    lead = draw(_LEADS)
    sep = draw(_SEPARATOR_CHOICES)
    body = sep.join(draw(_FRAGMENT_LISTS))
    trail = draw(_LEADS)
    if draw(_ONE_IN_20) == 19:  # rarely: a few thousand characters
        target = draw(_LONG_SIZES)
        unit = body + sep + " "
        body = (unit * (target // len(unit) + 1))[:target]
    return _fit(draw, lead + body + trail, min_size, max_size)


def texts(*, min_size: int = 0, max_size: int | None = None, hostile: bool = True) -> SearchStrategy[str]:
    """Message texts that break templates.

    Plain ASCII words and characters, and (``hostile=True``) compositions of leading/trailing newlines
    and spaces, CJK, emoji with ZWJ and skin tones, Jinja/Go template syntax, special-token text
    (``<|im_end|>``, ``</s>``, ``[INST]``, ``<think>``, ``<tool_call>`` …), JSON-ish text, tabs and other
    scripts; rarely a text of a few thousand characters. Plain texts have no leading, trailing or
    doubled spaces. Shrinks towards short plain ASCII: ``""`` (or ``"0" * min_size``).
    """
    validate_sizes(min_size, max_size)
    if not isinstance(hostile, bool):
        raise _bad("hostile", hostile, "must be True or False")
    plain = st.one_of(st.text(PLAIN_ALPHABET, min_size=min_size, max_size=max_size).map(_tidy),
                      _worded(min_size, max_size))
    return st.one_of(plain, _hostile(min_size, max_size)) if hostile else plain


_texts = texts  # conversations() has an option named ``texts``
_TEXTS = texts()
#: String arguments: texts, and edges that survive a JSON round trip only when escaped and decoded once.
_ARGUMENT_TEXTS = _TEXTS | st.sampled_from(STRING_EDGES)


# --- tools ------------------------------------------------------------------------------------------------
# Schemas and arguments are drawn by plain recursive functions over module-level strategies: building
# fresh strategies per draw (fixed_dictionaries per schema…) made examples ~5x slower.
_BOOLS = st.booleans()
_ALL_TYPES = st.sampled_from(ALL_TYPES)
_SCALAR_TYPES = st.sampled_from(SCALAR_TYPES)
_ENUMS = {"string": st.lists(st.sampled_from(ENUM_VALUES), min_size=1, max_size=3, unique=True),
          "integer": st.lists(st.sampled_from(INT_ENUMS), min_size=1, max_size=3, unique=True),
          "number": st.lists(st.sampled_from(NUMBER_ENUMS), min_size=1, max_size=3, unique=True)}
_DESCRIPTIONS = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join) | st.sampled_from(
    ("城市名（中文）", "Größe in cm — «optional»", "ünïcødé ✓"))
_PROPERTY_NAMES = st.lists(st.sampled_from(PROPERTY_NAMES), max_size=5, unique=True)
_TOOL_NAMES = st.sampled_from(TOOL_NAMES) | st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True) \
    | st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}[-.][a-z0-9_]{1,8}", fullmatch=True)
_INTEGERS = st.integers(-(10**9), 10**9) | st.sampled_from(INT_EDGES)
_NUMBERS = (st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False) | st.integers(-1000, 1000)
            | st.sampled_from(FLOAT_EDGES))
_ARRAY_SIZES = st.integers(0, 4)
_CALL_IDS = st.text(_ID_ALPHABET, min_size=9, max_size=9)
#: How a schema is made optional-valued: plain, nullable by a type list, nullable by anyOf, with a default.
_VARIANTS = st.sampled_from(("plain", "type-list", "any-of", "default"))
_DEFAULTS = {"string": "", "integer": 0, "number": 1.0, "boolean": False}
_DEF_NAMES = st.sampled_from(DEF_NAMES)


def _draw_schema(draw: DrawFn, depth: int) -> dict[str, Any]:
    """A property schema; objects and arrays nest at most two levels. Shrinks to ``{"type": "string"}``."""
    kind = draw(_ALL_TYPES if depth < 2 else _SCALAR_TYPES)
    schema: dict[str, Any] = {"type": kind}
    if kind in _ENUMS and draw(_BOOLS):
        schema["enum"] = draw(_ENUMS[kind])
    elif kind == "array":
        schema["items"] = _draw_schema(draw, depth + 1)
    elif kind == "object":
        schema.update(_draw_object(draw, depth + 1))
    if draw(_BOOLS):
        schema["description"] = draw(_DESCRIPTIONS)
    variant = "plain" if "enum" in schema else draw(_VARIANTS)
    if variant == "type-list":
        schema["type"] = [kind, "null"]
    elif variant == "any-of":
        return {"anyOf": [schema, {"type": "null"}]}
    elif variant == "default" and kind in _DEFAULTS:
        schema["default"] = _DEFAULTS[kind]
    return schema


def _draw_object(draw: DrawFn, depth: int) -> dict[str, Any]:
    names = draw(_PROPERTY_NAMES)
    properties = {name: _draw_schema(draw, depth) for name in names}
    return {"type": "object", "properties": properties, "required": [n for n in names if draw(_BOOLS)]}


def _draw_parameters(draw: DrawFn) -> dict[str, Any]:
    """A tool's parameters, sometimes with a ``$defs`` entry one property refers to (directly or as items)."""
    params = _draw_object(draw, 0)
    if draw(_BOOLS):
        name = draw(_DEF_NAMES)
        target = _draw_object(draw, 2) if draw(_BOOLS) else {"type": "string", "enum": draw(_ENUMS["string"])}
        ref: dict[str, Any] = {"$ref": f"#/$defs/{name}"}
        prop = draw(st.sampled_from([n for n in PROPERTY_NAMES if n not in params["properties"]]))
        params["properties"][prop] = {"type": "array", "items": ref} if draw(_BOOLS) else ref
        if draw(_BOOLS):
            params["required"].append(prop)
        params["$defs"] = {name: target}
    return params


@st.composite
def _generated_tools(draw: DrawFn, text: SearchStrategy[str]) -> Tool:
    return Tool(draw(_TOOL_NAMES), draw(text), _draw_parameters(draw))


def _tool_lists(min_size: int, max_size: int, text: SearchStrategy[str]) -> SearchStrategy[list[Tool]]:
    return st.lists(_generated_tools(text) | st.sampled_from(CATALOG), min_size=min_size, max_size=max_size,
                    unique_by=lambda t: t.name)


def tool_definitions(*, min_size: int = 1, max_size: int = 3) -> SearchStrategy[list[Tool]]:
    """Lists of tools with unique names and valid JSON-schema ``parameters`` (an object with typed
    properties, nested objects and arrays of objects, string and number enums, optional fields, nullable
    ones (``["T", "null"]`` or ``anyOf`` with null), defaults, unicode property names and descriptions,
    ``$defs`` with ``$ref``), mixing generated tools with a catalog of realistic ones whose descriptions
    hold ``<>&"``, accents, emoji and CJK. Names are ASCII as OpenAI requires, sometimes with ``-`` or
    ``.`` (MCP-style), which some tool-call parsers cannot read.

    Shrinks towards ``min_size`` tools named ``"f"`` with no properties and an empty description.
    """
    validate_sizes(min_size, None)
    if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < max(1, min_size):
        raise _bad("max_size", max_size, f"must be an int >= max(1, min_size={min_size})")
    return _tool_lists(min_size, max_size, texts())


def _draw_value(draw: DrawFn, schema: Mapping[str, Any], text: SearchStrategy[str], root: Mapping[str, Any]) -> Any:
    """A value satisfying ``schema`` (``$ref`` resolved in ``root``): optional keys shrink away, arrays to [],
    strings to "", numbers to 0, ``anyOf``/type lists to their first branch."""
    schema = deref(schema, root)
    options = branches(schema)
    if len(options) > 1:
        schema = options[draw(st.integers(0, len(options) - 1))]
    if "enum" in schema:
        return draw(st.sampled_from(tuple(schema["enum"])))
    kind = schema.get("type")
    if kind == "string":
        return draw(text)
    if kind == "integer":
        return draw(_INTEGERS)
    if kind == "number":
        return draw(_NUMBERS)
    if kind == "boolean":
        return draw(_BOOLS)
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        return [_draw_value(draw, items, text, root) for _ in range(draw(_ARRAY_SIZES))]
    if kind == "object":
        required = tuple(schema.get("required", ()))
        return {k: _draw_value(draw, v, text, root) for k, v in schema.get("properties", {}).items()
                if k in required or draw(_BOOLS)}
    return None  # "null"


@st.composite
def _calls(draw: DrawFn, tools: Sequence[Tool], text: SearchStrategy[str]) -> tuple[str, Mapping[str, Any]]:
    tool = draw(st.sampled_from(tools))
    return tool.name, _draw_value(draw, tool.parameters, text, tool.parameters)


@st.composite
def _tool_calls(draw: DrawFn, tools: Sequence[Tool] | None, text: SearchStrategy[str]) -> ToolCall:
    if tools is None:
        tools = draw(_tool_lists(1, 1, text))
    name, arguments = draw(_calls(tools, text))
    return ToolCall(name, arguments, draw(_CALL_IDS))


def tool_calls(*, tools: Sequence[Tool] | None = None) -> SearchStrategy[ToolCall]:
    """A call of one of ``tools`` (drawn from :func:`tool_definitions` when None) whose arguments
    satisfy the tool's schema (``$ref`` resolved): nested objects, unicode strings, strings that look like
    JSON or hold quotes, backslashes and newlines, ints and floats (``1.0``, ``1e21``, ``2**53 + 1``),
    booleans, lists and nulls; the id is 9 alphanumerics. Shrinks towards the first tool, only required
    arguments, and ``"000000000"``.
    """
    if tools is not None:
        if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence) or not tools \
                or not all(isinstance(t, Tool) for t in tools):
            raise InvalidOption(f"tools={tools!r}: must be None or a non-empty sequence of Tool")
        tools = tuple(tools)
    return _tool_calls(tools, _ARGUMENT_TEXTS)


# --- conversations ----------------------------------------------------------------------------------------
class _Kit:
    """The text-derived strategies of one ``conversations()`` call, built once."""

    def __init__(self, o: Options, text: SearchStrategy[str], system_text: SearchStrategy[str]) -> None:
        self.o, self.text, self.system_text = o, text, system_text
        self.arguments = _ARGUMENT_TEXTS if text is _TEXTS else text  # an override reaches string arguments too
        self.maybe_text = st.none() | text
        self.reasoning = text if o.reasoning is True else self.maybe_text if o.reasoning == "any" else st.none()
        json_values = st.one_of(text, st.integers(-1000, 1000), _BOOLS, st.none())
        objects = st.dictionaries(st.sampled_from(PROPERTY_NAMES), json_values, min_size=1, max_size=3)
        arrays = st.lists(json_values | objects, max_size=3)
        # results: text (shrinks to ""), a JSON object or array as text
        self.results = text | (objects | arrays).map(lambda d: json.dumps(d, ensure_ascii=False))


@st.composite
def _rounds(draw: DrawFn, kit: _Kit, tools: Sequence[Tool]) -> Round:
    calls = draw(st.lists(_calls(tools, kit.arguments), min_size=1,
                          max_size=MAX_PARALLEL_CALLS if kit.o.parallel_calls else 1))
    content = draw(kit.maybe_text)
    reasoning = draw(kit.reasoning)
    return Round(content, reasoning, calls, [draw(kit.results) for _ in calls])


@st.composite
def _turns(draw: DrawFn, kit: _Kit, tools: Sequence[Tool]) -> Turn:
    user = draw(kit.text)
    rounds = draw(st.lists(_rounds(kit, tools), max_size=MAX_ROUNDS)) if tools and kit.o.calls_allowed else []
    return Turn(user, rounds, draw(kit.text), draw(kit.reasoning))


@st.composite
def _checked(draw: DrawFn, strategy: SearchStrategy[Any]) -> str:
    value = draw(strategy)
    if not isinstance(value, str):
        raise InvalidOption(f"texts={strategy!r} drew {value!r} (type={type(value).__name__}): must draw str")
    return value


_SYSTEM_MODES = st.sampled_from(("absent", "empty", "text"))


@st.composite
def _conversations(draw: DrawFn, kit: _Kit) -> Conversation:
    o = kit.o
    mode = draw(_SYSTEM_MODES) if o.system == "any" else o.system
    system = None if mode == "absent" else "" if mode == "empty" else draw(kit.system_text)
    has_tools = o.tools is True or (o.tools == "any" and draw(_BOOLS))
    tools = draw(_tool_lists(1, 3, kit.text)) if has_tools else []
    turns = draw(st.lists(_turns(kit, tools), min_size=o.min_turns, max_size=o.max_turns))
    return assemble(system, tools, turns, end_with_assistant=o.end_with_assistant)


def conversations(*, min_turns: int = 1, max_turns: int = 4, system: str = "any", tools: bool | str = False,
                  reasoning: bool | str = False, roles: Sequence[str] = ROLES, parallel_calls: bool = True,
                  texts: SearchStrategy[str] | None = None, end_with_assistant: bool = True,
                  ) -> SearchStrategy[Conversation]:
    """Valid multi-turn conversations.

    An optional system message (``system``: ``"absent"``, ``"empty"`` (``""``), ``"text"`` (non-empty)
    or ``"any"``), then ``min_turns..max_turns`` turns. A turn is a user message, then, when ``tools``
    are on and ``"tool"`` is in ``roles``, up to three rounds (multi-step agent turns) of an assistant
    message with tool calls (1-4 when ``parallel_calls``; content ``None`` or text) each followed by one
    tool message per call with the matching ``tool_call_id`` and ``name`` (a JSON object or array as text,
    plain text, or ``""``), then the assistant's final answer.
    ``tools=True`` always attaches 1–3 tool definitions (calls come sometimes); ``"any"`` sometimes.
    ``reasoning=True`` gives every assistant message a reasoning string; ``"any"`` some of them.
    ``texts`` overrides the strategy for every text (messages, reasoning, tool descriptions, string
    arguments). Without ``end_with_assistant`` the last answer is left off: the conversation ends with
    the user message or tool results a server would answer.

    Shrinks towards fewer turns, no system message, no tools, no reasoning and shorter plain texts; the
    minimal example is one user and one assistant message, both ``""``.
    """
    o = validate_options(min_turns=min_turns, max_turns=max_turns, system=system, tools=tools, reasoning=reasoning,
                         roles=roles, parallel_calls=parallel_calls, end_with_assistant=end_with_assistant)
    if texts is None:
        return _conversations(_Kit(o, _TEXTS, _texts(min_size=1)))
    if not isinstance(texts, SearchStrategy):
        raise _bad("texts", texts, "must be a SearchStrategy of str or None")
    text = _checked(texts)
    return _conversations(_Kit(o, text, text.filter(bool)))
