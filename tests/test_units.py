"""Fast unit tests (no real tokenizer): conversation JSON, sandbox, specs, TokenDiff, shrinking."""

from __future__ import annotations

import pytest

from harness.conversation import Conversation, Message, Tool, ToolCall, plain_variant, shape_key
from harness.diff import TokenDiff, visible
from harness.errors import ConversationError, RenderRejected, SpecError, TemplateError
from harness.sandbox import ChatTemplate
from harness.shrink import shrink
from harness.specs import parse_spec


def conv(*msgs, tools=()):
    return Conversation.from_openai({"messages": list(msgs), "tools": list(tools)})


CALL = {"role": "assistant", "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1, "x"]}'}}]}


def test_openai_round_trip_keeps_forms_apart():
    c = conv({"role": "user", "content": "hi"}, CALL, {"role": "tool", "content": "ok", "tool_call_id": "c1"},
             {"role": "assistant", "content": "done", "reasoning_content": "think"},
             tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    request = c.to_openai("request")
    assert request["messages"][1]["content"] is None
    assert request["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"a": [1, "x"]}'
    dataset = c.to_openai("dataset")
    assert dataset["messages"][1]["content"] == ""
    assert dataset["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"a": [1, "x"]}
    assert Conversation.from_openai(request) == c
    assert c.messages[3].reasoning == "think" and c.assistant_indices == (1, 3)


def test_values_are_frozen():
    call = ToolCall("f", {"a": {"b": 1}})
    with pytest.raises(TypeError):
        call.arguments["a"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        call.name = "g"  # type: ignore[misc]


@pytest.mark.parametrize("bad,needle", [
    ([{"role": "robot", "content": "x"}], "messages[0].role='robot'"),
    ([{"role": "user", "content": "x"}, {"role": "system", "content": "s"}], "must come first"),
    ([{"role": "assistant", "content": None}], "needs content or tool_calls"),
    ([{"role": "user", "content": None}], "needs text content"),
    ([{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}],
     "not valid JSON"),
    ([{"role": "user", "content": [{"type": "image_url"}]}], "only text parts"),
    ({"msgs": []}, "no 'messages' key"),
])
def test_invalid_conversations_name_the_value(bad, needle):
    with pytest.raises(ConversationError, match=None) as info:
        Conversation.from_openai(bad)
    assert needle in str(info.value)


def test_plain_variant_keeps_shape_and_empties():
    c = conv({"role": "system", "content": ""}, {"role": "user", "content": "<|im_end|> {{ x }}"}, CALL,
             {"role": "tool", "content": "r", "tool_call_id": "c1"}, {"role": "assistant", "content": "\nok"})
    p = plain_variant(c)
    assert shape_key(p) == shape_key(c)
    assert p.messages[0].content == "" and p.messages[1].content == "Hello there."
    call = p.messages[2].tool_calls[0]
    assert (call.name, dict(call.arguments), call.id) == ("tool_0", {"x": "x"}, "01")  # data plain, id form kept
    assert p.messages[3].tool_call_id == "01"


def test_plain_variant_makes_tool_data_plain_and_shares_equal_messages():
    """Tool schemas, names, argument values and call ids are data: two conversations that differ only there have
    one plain variant, whose equal messages are the same objects (renders of them are cached once)."""
    def one(name, props, args, call_id):
        tool = {"type": "function", "function": {"name": name, "description": "d", "parameters":
                {"type": "object", "properties": props}}}
        call = {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]}
        return plain_variant(conv({"role": "user", "content": "q"}, call,
                                  {"role": "tool", "content": "r", "tool_call_id": call_id},
                                  {"role": "assistant", "content": "a"}, tools=[tool]))

    a = one("get.weather", {"city": {"type": "string", "enum": ["a"]}}, '{"city": "a"}', "call_AbC123xyZ")
    b = one("f-1", {"n": {"type": "integer"}}, '{"n": 3}', "call_999999999")
    assert a.to_json() == b.to_json() and all(x is y for x, y in zip(a.messages, b.messages))
    assert a.tools[0].name == "tool_0" and a.messages[1].tool_calls[0].id == "0000_000000001"
    empty = one("f", {}, "{}", "c")
    assert dict(empty.tools[0].parameters)["properties"] == {} and dict(empty.messages[1].tool_calls[0].arguments) == {}


def test_sandbox_renders_like_hf_and_refuses_hostile_templates():
    t = ChatTemplate("{% for m in messages %}{{ m.content | tojson }}{% generation %}!{% endgeneration %}{% endfor %}"
                     "{{ strftime_now('%Y') }}", "t.jinja")
    out = t.render("train", messages=[{"content": "é<"}])
    assert out.text == '"é<"!2026' and out.generation == ((4, 5),)
    with pytest.raises(TemplateError, match="syntax error"):
        ChatTemplate("{% for %}", "broken.jinja")
    with pytest.raises(TemplateError, match="unsafe"):
        ChatTemplate("{{ messages.__class__ }}", "evil.jinja").render("deploy", messages=[])
    with pytest.raises(TemplateError, match="limit"):
        ChatTemplate("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "loop.jinja",
                     timeout=0.3).render("deploy", messages=[])
    with pytest.raises(RenderRejected, match="no tools"):
        ChatTemplate("{{ raise_exception('no tools') }}", "r.jinja").render("deploy", messages=[])


def test_spec_grammar():
    s = parse_spec("hf:.,enable_thinking=false,timeout=1.5,stop=<|im_end|>")
    assert (s.kind, s.arg, s.options) == ("hf", ".", {"enable_thinking": False, "timeout": 1.5, "stop": "<|im_end|>"})
    for bad in ("train.jinja", ":x", "hf:", "hf:.,oops"):
        with pytest.raises(SpecError):
            parse_spec(bad)


def test_token_diff_leads_with_first_divergence_and_trims_ends():
    pieces = {1: "a", 2: "\n", 3: " ", 9: "<|im_end|>"}
    d = TokenDiff.compute([1, 1, 2, 9, 1], [1, 1, 3, 2, 9, 1], piece=lambda i: pieces[i])
    assert d.index == 2
    assert d.headline() == "At token 2 (?): 2 '␤' != 3 '␠'"
    assert d.opcodes == (("insert", 2, 2, 2, 3),)
    assert TokenDiff.compute([1, 2], [1, 2], piece=str).index is None
    short = TokenDiff.compute([1, 2], [1, 2, 9], piece=lambda i: pieces[i])
    assert short.index == 2 and "<end>" in short.headline()
    assert visible(" \n\t") == "␠␤⇥"


def test_shrink_finds_a_small_conversation_deterministically():
    big = conv({"role": "system", "content": "sys"}, {"role": "user", "content": "one two three"},
               {"role": "assistant", "content": "the bug is here"}, {"role": "user", "content": "again"},
               {"role": "assistant", "content": "fine"})

    def fails(c):
        return True if any("bug" in (m.content or "") for m in c.messages) else None

    small, _ = shrink(big, fails)
    assert [m.role for m in small.messages] == ["user", "assistant"]
    assert "bug" in small.messages[1].content and len(small.messages[1].content) <= 5
    assert shrink(big, fails)[0] == small
    with pytest.raises(ValueError):
        shrink(big, lambda c: None)


def test_tool_and_message_defaults():
    assert Tool("f").to_openai()["function"]["parameters"] == {"type": "object", "properties": {}}
    assert Message("user", "x").to_openai() == {"role": "user", "content": "x"}


def test_plain_key_is_equal_exactly_when_plain_variants_are():
    """The structural checks' cache key: two conversations share it iff their plain variants are equal (JSON)."""
    from harness.conversation import plain_key
    from harness.generate import generate

    convs = list(generate(400, seed=3, tools="any", reasoning=True))
    convs += [c.prefix(k) for c in convs[:100] for k in c.assistant_indices]
    by_key: dict = {}
    for c in convs:
        by_key.setdefault(plain_key(c), set()).add(plain_variant(c).to_json())
    assert all(len(v) == 1 for v in by_key.values())  # equal keys: equal plain variants
    assert len({next(iter(v)) for v in by_key.values()}) == len(by_key) > 50  # distinct keys: distinct variants
