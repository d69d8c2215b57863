"""Self-tests for harness.strategies: shapes, options, hostility, shrinking, validation."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Iterable

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from harness._pools import CATALOG
from harness.conversation import ROLES, Conversation, Message, Tool, ToolCall, thaw
from harness.strategies import conversations, texts, tool_calls, tool_definitions

try:
    import jsonschema
except ImportError:  # not a dependency of the harness; the small checker below always runs
    jsonschema = None

SETTINGS = settings(max_examples=60, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
COLLECT = settings(max_examples=400, database=None, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PLAIN_CHARS = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,?!'-")


# --- an independent checker, also used by test_generate.py -------------------------------------------------
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$", root: dict[str, Any] | None = None,
                  ) -> list[str]:
    """The JSON-schema subset tools use: type (or a list of types), enum, properties, required, items, local
    ``$ref`` to ``#/$defs/NAME``, ``anyOf``, ``default`` (which must itself be valid)."""
    root = schema if root is None else root
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        if name not in root.get("$defs", {}):
            return [f"{path}: unresolved $ref {schema['$ref']!r}"]
        return schema_errors(value, root["$defs"][name], path, root)
    if "anyOf" in schema:
        alternatives = [schema_errors(value, s, path, root) for s in schema["anyOf"]]
        return [] if any(not e for e in alternatives) else [f"{path}: {value!r} matches no anyOf branch"]
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if not kinds or any(k not in _JSON_TYPES for k in kinds):
        return [f"{path}: schema type {schema.get('type')!r}"]
    if "default" in schema and not any(_JSON_TYPES[k](schema["default"]) for k in kinds):
        return [f"{path}: default {schema['default']!r} is not {kinds}"]
    if not any(_JSON_TYPES[k](value) for k in kinds):
        return [f"{path}: {value!r} is not {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} not in {schema['enum']!r}"]
    errors: list[str] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]", root)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{path}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        errors += [f"{path}: unknown key {k!r}" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                errors += schema_errors(v, props[k], f"{path}.{k}", root)
    return errors


def assert_arguments_valid(tool: Tool, call: ToolCall) -> None:
    schema, arguments = thaw(tool.parameters), thaw(call.arguments)
    assert schema["type"] == "object" and set(schema.get("required", [])) <= set(schema["properties"]), schema
    assert not schema_errors(arguments, schema), (schema_errors(arguments, schema), arguments, schema)
    if jsonschema is not None:
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(arguments, schema)


def assert_conforms(conv: Conversation, *, min_turns: int = 1, max_turns: int = 4, system: str = "any",
                    tools: bool | str = False, reasoning: bool | str = False, roles: Iterable[str] = ROLES,
                    parallel_calls: bool = True, end_with_assistant: bool = True, **_: Any) -> None:
    """Every shape rule the options promise, checked from the messages alone."""
    msgs = conv.messages
    Conversation(msgs, conv.tools)  # re-validates
    assert {m.role for m in msgs} <= set(roles)
    has_system = bool(msgs) and msgs[0].role == "system"
    if system == "absent" or "system" not in roles:
        assert not has_system
    elif system == "empty":
        assert has_system and msgs[0].content == ""
    elif system == "text":
        assert has_system and msgs[0].content
    assert min_turns <= sum(m.role == "user" for m in msgs) <= max_turns
    if tools is False:
        assert not conv.tools and not any(m.tool_calls or m.role == "tool" for m in msgs)
    if tools is True:
        assert conv.tools
    names = [t.name for t in conv.tools]
    assert len(names) == len(set(names)), names
    by_name = {t.name: t for t in conv.tools}
    for m in msgs:
        if m.role != "assistant":
            assert m.reasoning is None
        elif reasoning is False:
            assert m.reasoning is None
        elif reasoning is True:
            assert isinstance(m.reasoning, str)
        assert len(m.tool_calls) <= (4 if parallel_calls else 1), f"{len(m.tool_calls)} parallel calls"
    # Walk the turns: user, (assistant with calls, one tool message per call)*, final assistant.
    ids: list[str] = []
    i = 1 if has_system else 0
    while i < len(msgs):
        assert msgs[i].role == "user", (i, msgs[i])
        i += 1
        rounds = 0
        while i < len(msgs) and msgs[i].tool_calls:
            rounds += 1
            assert rounds <= 3, "more than 3 call rounds in a turn"
            calls = msgs[i].tool_calls
            results = msgs[i + 1:i + 1 + len(calls)]
            assert len(results) == len(calls), "every call needs its result"
            for call, result in zip(calls, results):
                assert result.role == "tool" and result.tool_call_id == call.id and result.name == call.name
                assert call.name in by_name
                assert_arguments_valid(by_name[call.name], call)
                ids.append(call.id)
            i += 1 + len(calls)
        if i < len(msgs):
            assert msgs[i].role == "assistant" and not msgs[i].tool_calls and msgs[i].content is not None
            i += 1
    assert len(ids) == len(set(ids)), ids
    assert all(len(x) == 9 and x.isalnum() for x in ids), ids
    if end_with_assistant:
        assert msgs[-1].role == "assistant" and not msgs[-1].tool_calls
    else:
        assert msgs[-1].role in ("user", "tool")


def all_texts(conv: Conversation) -> list[str]:
    out = [t for m in conv.messages for t in (m.content, m.reasoning) if t is not None]
    return out + [t.description for t in conv.tools]


FEATURES: dict[str, Callable[[str], bool]] = {
    "leading newline": lambda s: s.startswith("\n"),
    "trailing space": lambda s: s.endswith(" "),
    "cjk": lambda s: any("\u4e00" <= c <= "\u9fff" or "\u3040" <= c <= "\u30ff" for c in s),
    "zwj emoji": lambda s: "\u200d" in s,
    "braces": lambda s: any(b in s for b in ("{{", "{%", "{#")),
    "special token": lambda s: any(t in s for t in ("<|im_end|>", "<|eot_id|>", "</s>", "[INST]", "<think>",
                                                    "</think>", "<tool_call>", "<|im_start|>", "<|endoftext|>")),
    "json": lambda s: '{"' in s,
    "tab": lambda s: "\t" in s,
}


def features(strings: Iterable[str]) -> Counter[str]:
    return Counter(name for s in strings for name, test in FEATURES.items() if test(s))


# --- texts -------------------------------------------------------------------------------------------------
def test_hostile_texts_occur() -> None:
    seen: Counter[str] = Counter()
    lengths: list[int] = []

    @COLLECT
    @given(texts())
    def collect(s: str) -> None:
        seen.update(features([s]))
        lengths.append(len(s))

    collect()
    missing = [name for name in FEATURES if seen[name] == 0]
    assert not missing, (missing, seen)
    assert max(lengths) >= 1000, "long texts never drawn"


@SETTINGS
@given(st.data(), st.integers(0, 20), st.integers(0, 60))
def test_texts_respect_sizes(data: st.DataObject, lo: int, extra: int) -> None:
    s = data.draw(texts(min_size=lo, max_size=lo + extra))
    assert lo <= len(s) <= lo + extra


@SETTINGS
@given(texts(hostile=False, min_size=0, max_size=80))
def test_plain_texts_are_plain(s: str) -> None:
    assert set(s) <= PLAIN_CHARS
    assert s == s.strip() and "  " not in s


def test_texts_shrink_to_plain() -> None:
    assert find(texts(), lambda s: True) == ""
    assert find(texts(min_size=3), lambda s: True) == "000"
    assert set(find(texts(), lambda s: len(s) >= 5)) <= PLAIN_CHARS


# --- tools ------------------------------------------------------------------------------------------------
@SETTINGS
@given(tool_definitions(min_size=1, max_size=4))
def test_tool_definitions_are_valid_schemas(tools: list[Tool]) -> None:
    assert 1 <= len(tools) <= 4 and len({t.name for t in tools}) == len(tools)
    for tool in tools:
        schema = thaw(tool.parameters)
        assert schema["type"] == "object" and set(schema.get("required", [])) <= set(schema["properties"])
        if jsonschema is not None:
            jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_checker_rejects_bad_arguments() -> None:
    schema = thaw(next(t for t in CATALOG if t.name == "create_event").parameters)
    assert schema_errors({"title": "x", "place": {"city": "Paris", "lat": 1.5}}, schema) == []
    for bad in ({}, {"title": 3}, {"title": "x", "extra": 1}, {"title": "x", "place": {"lat": 1}},
                {"title": "x", "attendees": [{"name": True}]}, {"title": "x", "place": {"city": "P", "lat": "1"}}):
        assert schema_errors(bad, schema), bad
    weather = thaw(CATALOG[0].parameters)
    assert schema_errors({"location": "x", "unit": "kelvin"}, weather)


@SETTINGS
@given(st.data(), tool_definitions())
def test_tool_calls_match_their_tool(data: st.DataObject, tools: list[Tool]) -> None:
    call = data.draw(tool_calls(tools=tools))
    tool = next(t for t in tools if t.name == call.name)
    assert_arguments_valid(tool, call)
    assert len(call.id) == 9 and call.id.isalnum()


def test_tool_call_arguments_get_rich() -> None:
    kinds: Counter[str] = Counter()

    def walk(v: Any) -> None:
        kinds[type(v).__name__] += 1
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        if isinstance(v, list):
            for x in v:
                walk(x)

    @COLLECT
    @given(tool_calls())
    def collect(call: ToolCall) -> None:
        for value in thaw(call.arguments).values():
            walk(value)

    collect()
    assert {"str", "int", "float", "bool", "list", "dict"} <= set(kinds), kinds


# --- conversations ----------------------------------------------------------------------------------------
OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"system": "absent"},
    {"system": "empty", "tools": True, "reasoning": True},
    {"system": "text", "tools": "any", "reasoning": "any", "max_turns": 2},
    {"tools": True, "parallel_calls": False},
    {"tools": True, "roles": ("user", "assistant")},
    {"tools": True, "end_with_assistant": False},
    {"min_turns": 3, "max_turns": 3, "end_with_assistant": False, "reasoning": "any"},
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_conversations_respect_options(options: dict[str, Any]) -> None:
    @SETTINGS
    @given(conversations(**options))
    def check(conv: Conversation) -> None:
        assert_conforms(conv, **options)

    check()


def test_conversations_cover_the_shapes() -> None:
    seen: Counter[str] = Counter()

    @COLLECT
    @given(conversations(tools=True, reasoning="any"))
    def collect(conv: Conversation) -> None:
        seen["system"] += conv.system is not None
        seen["empty system"] += conv.system == ""
        seen["tool call"] += any(m.tool_calls for m in conv.messages)
        seen["parallel calls"] += any(len(m.tool_calls) > 1 for m in conv.messages)
        seen["call content null"] += any(m.tool_calls and m.content is None for m in conv.messages)
        seen["reasoning"] += any(m.reasoning is not None for m in conv.messages)
        seen["multi turn"] += sum(m.role == "user" for m in conv.messages) > 1
        seen.update(features(all_texts(conv)))

    collect()
    assert all(seen[k] for k in ("system", "empty system", "tool call", "parallel calls", "call content null",
                                 "reasoning", "multi turn", *FEATURES)), seen


def test_texts_override_reaches_every_text() -> None:
    @SETTINGS
    @given(conversations(tools=True, reasoning=True, texts=st.just("x")))
    def check(conv: Conversation) -> None:
        for m in conv.messages:
            if m.role in ("user", "assistant") and m.content is not None:
                assert m.content == "x"
            if m.reasoning is not None:
                assert m.reasoning == "x"

    check()


def test_minimal_conversation() -> None:
    conv = find(conversations(), lambda c: True)
    assert conv == Conversation((Message("user", ""), Message("assistant", "")))


def test_minimal_tool_call() -> None:
    conv = find(conversations(tools=True), lambda c: any(m.tool_calls for m in c.messages))
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool", "assistant"]
    assert len(conv.messages[1].tool_calls) == 1 and len(conv.tools) == 1
    assert conv.messages[1].content is None and conv.messages[2].tool_call_id == conv.messages[1].tool_calls[0].id


def test_shrinks_to_fewest_turns_needed() -> None:
    conv = find(conversations(), lambda c: len(c.assistant_indices) >= 3)
    assert [m.role for m in conv.messages] == ["user", "assistant"] * 3
    assert all(m.content == "" for m in conv.messages)


# --- validation -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "named"), [
    ({"system": "sometimes"}, "system='sometimes'"),
    ({"system": None}, "system=None"),
    ({"min_turns": 0}, "min_turns=0"),
    ({"min_turns": 3, "max_turns": 2}, "max_turns=2"),
    ({"max_turns": 2.5}, "max_turns=2.5"),
    ({"tools": "yes"}, "tools='yes'"),
    ({"tools": 1}, "tools=1"),
    ({"reasoning": None}, "reasoning=None"),
    ({"roles": ("user", "assistant", "bot")}, "unknown role 'bot'"),
    ({"roles": ("user",)}, "must include 'assistant'"),
    ({"roles": "user"}, "roles='user'"),
    ({"roles": ("user", "assistant"), "system": "text"}, "system='text'"),
    ({"parallel_calls": "no"}, "parallel_calls='no'"),
    ({"end_with_assistant": 0}, "end_with_assistant=0"),
    ({"texts": "hello"}, "texts='hello'"),
])
def test_invalid_conversation_options_raise(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidArgument, match=named.replace("(", r"\(").replace(")", r"\)")):
        conversations(**kwargs)  # eagerly: no draw needed


@pytest.mark.parametrize(("make", "named"), [
    (lambda: texts(min_size=-1), "min_size=-1"),
    (lambda: texts(min_size=5, max_size=2), "max_size=2"),
    (lambda: texts(hostile="no"), "hostile='no'"),
    (lambda: tool_definitions(max_size=0), "max_size=0"),
    (lambda: tool_calls(tools=[]), "tools=[]"),
    (lambda: tool_calls(tools=["f"]), "tools=['f']"),
])
def test_invalid_strategy_options_raise(make: Callable[[], object], named: str) -> None:
    with pytest.raises(InvalidArgument, match=named.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_texts_override_must_draw_strings() -> None:
    with pytest.raises(InvalidArgument, match="must draw str"):
        find(conversations(texts=st.just(3)), lambda c: True)


# --- the tool and reasoning shapes of issue 11 ------------------------------------------------------------
def _walk(value: Any) -> Iterable[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def tool_shapes(conv: Conversation) -> Counter[str]:
    """Which of the tool/reasoning shapes a conversation holds (used by both generators' tests)."""
    seen: Counter[str] = Counter()
    for tool in conv.tools:
        schema = thaw(tool.parameters)
        nodes = [n for n in _walk(schema) if isinstance(n, dict)]
        seen["$ref"] += "$defs" in schema and any("$ref" in n for n in nodes)
        seen["array of objects"] += any(n.get("type") == "array" and n.get("items", {}).get("type") == "object"
                                        for n in nodes)
        seen["nullable type list"] += any(isinstance(n.get("type"), list) for n in nodes)
        seen["anyOf"] += any("anyOf" in n for n in nodes)
        seen["default"] += any("default" in n for n in nodes)
        seen["number enum"] += any(any(isinstance(e, (int, float)) for e in n.get("enum", ())) for n in nodes)
        seen["string enum"] += any(any(isinstance(e, str) for e in n.get("enum", ())) for n in nodes)
        seen["optional field"] += any(set(n.get("properties", {})) - set(n.get("required", [])) for n in nodes)
        seen["unicode property"] += any(not k.isascii() for n in nodes for k in n.get("properties", {}))
        seen["dotted or dashed name"] += "." in tool.name or "-" in tool.name
    answers = 0
    for i, m in enumerate(conv.messages):
        if m.role == "assistant":
            answers += 1
            seen["reasoning on a call-only turn"] += bool(m.tool_calls) and m.reasoning is not None
            seen["empty reasoning"] += m.reasoning == ""
        if m.role == "tool":
            text = m.content or ""
            seen["result: JSON object"] += text.startswith("{")
            seen["result: JSON array"] += text.startswith("[")
            seen["result: empty"] += text == ""
        n = len(m.tool_calls)
        seen[f"{n} parallel calls"] += n > 1
        for call in m.tool_calls:
            args = thaw(call.arguments)
            values = list(_walk(args))
            seen["empty arguments"] += args == {}
            seen["null argument"] += any(v is None for v in values)
            seen["integral float"] += any(isinstance(v, float) and v.is_integer() for v in values)
            seen["int past 2**53"] += any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53
                                          for v in values)
            seen["JSON-looking string"] += any(isinstance(v, str) and v[:1] in "{[" and v[-1:] in "}]"
                                               for v in values)
            seen["string with newline or quote"] += any(isinstance(v, str) and ("\n" in v or '"' in v)
                                                        for v in values)
    rounds = [k for k, m in enumerate(conv.messages) if m.tool_calls]
    users = [k for k, m in enumerate(conv.messages) if m.role == "user"]
    for lo, hi in zip(users, users[1:] + [len(conv.messages)]):
        n_rounds = sum(lo < k < hi for k in rounds)
        seen[f"{n_rounds} call rounds"] += n_rounds > 1
    has_reasoning = any(m.reasoning is not None for m in conv.messages)
    seen["conversation with reasoning"] += has_reasoning
    seen["conversation without reasoning"] += not has_reasoning
    return seen


#: Every shape each generator must produce with tools=True, reasoning="any".
TOOL_SHAPES = (
    "$ref", "array of objects", "nullable type list", "anyOf", "default", "number enum", "string enum",
    "optional field", "unicode property", "dotted or dashed name", "reasoning on a call-only turn", "empty reasoning",
    "result: JSON object", "result: JSON array", "result: empty", "2 parallel calls", "3 parallel calls",
    "4 parallel calls", "empty arguments", "null argument", "integral float", "int past 2**53",
    "JSON-looking string", "string with newline or quote", "2 call rounds", "3 call rounds",
    "conversation with reasoning", "conversation without reasoning",
)


def test_tool_shapes_occur_in_conversations() -> None:
    seen: Counter[str] = Counter()

    @COLLECT
    @given(conversations(tools=True, reasoning="any"))
    def collect(conv: Conversation) -> None:
        seen.update(tool_shapes(conv))

    collect()
    assert not [k for k in TOOL_SHAPES if not seen[k]], ([k for k in TOOL_SHAPES if not seen[k]], seen)


def test_schema_checker_follows_refs_and_nullables() -> None:
    schema = thaw(next(t for t in CATALOG if t.name == "set-thermostat").parameters)
    good = {"temperature": 20.0, "mode": 1, "zones": [{"名前": "salon", "floor": 2}], "until": None}
    assert schema_errors(good, schema) == []
    for bad in ({**good, "zones": [{"floor": 1}]}, {**good, "zones": [{"名前": 3}]}, {**good, "mode": 1.0},
                {**good, "mode": 4}, {**good, "until": 5}):
        assert schema_errors(bad, schema), bad
    read = thaw(next(t for t in CATALOG if t.name == "fs.read_file").parameters)
    assert schema_errors({"path": "a", "encoding": None, "range": {"start": 1}}, read) == []
    assert schema_errors({"path": "a", "range": {"end": 1}}, read)
    assert schema_errors({"path": "a"}, {**read, "properties": {"path": {"$ref": "#/$defs/Missing"}}})


def test_planted_strategy_bug_breaks_conformance(monkeypatch: pytest.MonkeyPatch) -> None:
    tool = Tool("t", "", {"type": "object", "properties": {"r": {"$ref": "#/$defs/R"}}, "required": ["r"],
                          "$defs": {"R": {"type": "object", "properties": {"x": {"type": "integer"}},
                                          "required": ["x"]}}})
    call = find(tool_calls(tools=[tool]), lambda c: True)
    assert thaw(call.arguments) == {"r": {"x": 0}} and not schema_errors(thaw(call.arguments), thaw(tool.parameters))
    import harness.strategies as strategies

    monkeypatch.setattr(strategies, "deref", lambda schema, root: schema)  # the planted bug: $ref not followed
    call = find(tool_calls(tools=[tool]), lambda c: True)
    assert schema_errors(thaw(call.arguments), thaw(tool.parameters)), call
