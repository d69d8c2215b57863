"""A seeded plain generator for bulk sweeps (``harness check --examples 100000``): no hypothesis.

Same options and the same shapes as :func:`harness.strategies.conversations`, drawn from one
``random.Random(seed)``: the sequence depends only on the seed and the options (never on global
random state, hash randomisation or set ordering), so a seed in a report reproduces its examples.

>>> convs = list(generate(3, seed=7, tools=True))
>>> convs == list(generate(3, seed=7, tools=True))
True
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from typing import Any, Callable, Iterator, Mapping, Sequence

from harness._pools import (
    ALL_TYPES, CATALOG, DEF_NAMES, EDGES, ENUM_VALUES, FLOAT_EDGES, FRAGMENT_POOLS, INT_EDGES, INT_ENUMS,
    MAX_PARALLEL_CALLS, MAX_ROUNDS, NUMBER_ENUMS, PROPERTY_NAMES, SCALAR_TYPES, STRING_EDGES, TOOL_NAMES, WORDS,
    Options, Round, Turn, _bad, assemble, branches, deref, validate_options,
)
from harness.conversation import ROLES, Conversation, Tool

__all__ = ["generate"]

TextFn = Callable[[random.Random], str]
_POOLS: tuple[tuple[str, ...], ...] = tuple(pool for _, pool in FRAGMENT_POOLS) + (WORDS, WORDS)
_CODEPOINT_RANGES = ((0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
                     (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF), (0x1, 0x1F))


def _build_corpus() -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """A fixed pseudo-English corpus (sentences of WORDS) with word start/end offsets, built once."""
    rng = random.Random(0x5EED)
    sentences = []
    for _ in range(4000):
        words = rng.choices(WORDS, k=rng.randint(3, 16))
        words[0] = words[0].capitalize()
        if rng.random() < 0.2:
            words[rng.randrange(len(words))] += ","
        sentences.append(" ".join(words) + rng.choice(".....?!"))
    text = " ".join(sentences)
    starts, ends, pos = [], [], 0
    for word in text.split(" "):
        starts.append(pos)
        ends.append(pos + len(word))
        pos += len(word) + 1
    return text, tuple(starts), tuple(ends)


_CORPUS, _STARTS, _ENDS = _build_corpus()  # ~10 ms at import
_N_WORDS = len(_STARTS)


def _plain(rng: random.Random, words: int) -> str:
    i = int(rng.random() * (_N_WORDS - words))
    return _CORPUS[_STARTS[i]:_ENDS[i + words - 1]]


def _words(rng: random.Random) -> int:
    """Message length in words: many short, most medium, some long (about 60 on average)."""
    u = rng.random()
    if u < 0.3:
        return 1 + int(rng.random() * 8)
    if u < 0.8:
        return 10 + int(rng.random() * 70)
    return 80 + int(rng.random() * 220)


def _fragment(rng: random.Random) -> str:
    if rng.random() < 0.08:
        lo, hi = _CODEPOINT_RANGES[int(rng.random() * len(_CODEPOINT_RANGES))]
        return "".join(chr(lo + int(rng.random() * (hi - lo + 1))) for _ in range(1 + int(rng.random() * 3)))
    pool = _POOLS[int(rng.random() * len(_POOLS))]
    return pool[int(rng.random() * len(pool))]


def _compose(rng: random.Random) -> str:
    parts = [_fragment(rng) for _ in range(1 + int(rng.random() * 6))]
    return (" ", "", "\n")[int(rng.random() * 3)].join(parts)


#: Fragment compositions drawn once from a fixed seed: composing per text would be the generator's
#: largest cost. Each use adds its own plain words, edges and (rarely) length.
_BODY_RNG = random.Random(0xBAD)
_HOSTILE_BODIES: tuple[str, ...] = tuple(_compose(_BODY_RNG) for _ in range(4096))
del _BODY_RNG


def _hostile(rng: random.Random) -> str:
    body = _HOSTILE_BODIES[int(rng.random() * len(_HOSTILE_BODIES))]
    u = rng.random()
    if u < 0.5:
        sep = " " if u < 0.35 else "\n"
        plain = _plain(rng, 1 + int(rng.random() * 30))
        body = plain + sep + body if rng.random() < 0.5 else body + sep + plain
    if rng.random() < 0.025:  # rarely: a few thousand characters
        target = 1000 + int(rng.random() * 3001)
        unit = body + " "
        body = (unit * (target // len(unit) + 1))[:target]
    lead = EDGES[int(rng.random() * len(EDGES))] if rng.random() < 0.35 else ""
    trail = EDGES[int(rng.random() * len(EDGES))] if rng.random() < 0.35 else ""
    return lead + body + trail


def _text_fn(hostile: bool) -> TextFn:
    def text(rng: random.Random) -> str:
        u = rng.random()
        if u < 0.03:
            return ""
        if hostile and u < 0.33:
            return _hostile(rng)
        return _plain(rng, _words(rng))
    return text


def _short(rng: random.Random, text: TextFn) -> str:
    """A string argument: a few words, an edge (JSON-looking, quotes, backslashes, newlines), or a (possibly
    hostile) message text cut short."""
    u = rng.random()
    if u < 0.6:
        return _plain(rng, 1 + int(rng.random() * 6))
    if u < 0.75:
        return STRING_EDGES[int(rng.random() * len(STRING_EDGES))]
    return text(rng)[:200]


def _pick(rng: random.Random, pool: Sequence[Any]) -> Any:
    return pool[int(rng.random() * len(pool))]


def _schema(rng: random.Random, depth: int) -> dict[str, Any]:
    """A property schema: typed, sometimes an enum (strings or numbers), nullable (a type list or ``anyOf``
    with null) or with a default; objects and arrays nest at most two levels."""
    kind = rng.choice(ALL_TYPES if depth < 2 else SCALAR_TYPES)
    schema: dict[str, Any] = {"type": kind}
    if kind == "string" and rng.random() < 0.2:
        schema["enum"] = rng.sample(ENUM_VALUES, 1 + int(rng.random() * 3))
    elif kind in ("integer", "number") and rng.random() < 0.15:
        schema["enum"] = rng.sample(INT_ENUMS if kind == "integer" else NUMBER_ENUMS, 1 + int(rng.random() * 3))
    elif kind == "array":
        schema["items"] = _schema(rng, depth + 1)
    elif kind == "object":
        schema.update(_object(rng, depth + 1))
    if rng.random() < 0.5:
        schema["description"] = _plain(rng, 1 + int(rng.random() * 8)) if rng.random() < 0.8 else \
            _pick(rng, STRING_EDGES[-2:] + ("城市名（中文）", "Größe in cm — «optional»"))
    u = rng.random()
    if "enum" in schema or u >= 0.2:
        return schema
    if u < 0.06:
        schema["type"] = [kind, "null"]
    elif u < 0.1:
        return {"anyOf": [schema, {"type": "null"}]}
    elif kind in SCALAR_TYPES:
        schema["default"] = {"string": "", "integer": 0, "number": 1.0, "boolean": False}[kind]
    return schema


def _object(rng: random.Random, depth: int) -> dict[str, Any]:
    names = rng.sample(PROPERTY_NAMES, int(rng.random() * 5))
    return {"type": "object", "properties": {n: _schema(rng, depth) for n in names},
            "required": [n for n in names if rng.random() < 0.5]}


def _parameters(rng: random.Random) -> dict[str, Any]:
    """A tool's parameters; a fifth hold ``$defs`` (an object or a string enum) that one property refers to
    with ``$ref``, directly or as its array's items."""
    params = _object(rng, 0)
    if rng.random() < 0.2:
        name = _pick(rng, DEF_NAMES)
        target = _object(rng, 2) if rng.random() < 0.7 else {"type": "string", "enum": rng.sample(ENUM_VALUES, 2)}
        ref: dict[str, Any] = {"$ref": f"#/$defs/{name}"}
        prop = _pick(rng, [n for n in PROPERTY_NAMES if n not in params["properties"]])
        params["properties"][prop] = ref if rng.random() < 0.6 else {"type": "array", "items": ref}
        if rng.random() < 0.5:
            params["required"].append(prop)
        params["$defs"] = {name: target}
    return params


def _new_tool(rng: random.Random, text: TextFn) -> Tool:
    return Tool(TOOL_NAMES[int(rng.random() * len(TOOL_NAMES))], text(rng)[:300], _parameters(rng))


@lru_cache(maxsize=2)
def _tool_pool(hostile: bool) -> tuple[Tool, ...]:
    """Generated tools built once from a fixed seed (freezing a schema costs more than drawing it)."""
    rng, text = random.Random(0x7001), _text_fn(hostile)
    return tuple(_new_tool(rng, text) for _ in range(256))


def _tools(rng: random.Random, text: TextFn, pool: Sequence[Tool] | None) -> list[Tool]:
    """1-3 tools with unique names: 70% from the catalog, 30% generated (from ``pool`` when given)."""
    tools: list[Tool] = []
    for _ in range(1 + int(rng.random() * 3)):
        if rng.random() < 0.7:
            tool = CATALOG[int(rng.random() * len(CATALOG))]
        else:
            tool = pool[int(rng.random() * len(pool))] if pool else _new_tool(rng, text)
        if all(t.name != tool.name for t in tools):
            tools.append(tool)
    return tools


def _value(rng: random.Random, schema: Mapping[str, Any], text: TextFn, root: Mapping[str, Any]) -> Any:
    """A value valid under ``schema`` (``$ref`` resolved in ``root``, one ``anyOf``/type-list branch drawn)."""
    if "$ref" in schema:
        schema = deref(schema, root)
    kind = schema.get("type")
    if kind.__class__ is not str:  # anyOf, or a type list (nullable): draw a branch
        options = branches(schema)
        schema = options[int(rng.random() * len(options))]
        kind = schema.get("type")
    if "enum" in schema:
        enum = schema["enum"]
        return enum[int(rng.random() * len(enum))]
    if kind == "string":
        return _short(rng, text)
    if kind == "integer":
        u = rng.random()
        return int(rng.random() * 2001) - 1000 if u < 0.75 else rng.randint(-(10**9), 10**9) if u < 0.9 \
            else _pick(rng, INT_EDGES)
    if kind == "number":
        u = rng.random()
        if u < 0.7:
            return round(rng.uniform(-1000, 1000), int(rng.random() * 6))
        if u < 0.8:
            return rng.uniform(-1e-6, 1e-6)  # tiny: "1e-07" in Python, "1e-7" in Go
        return _pick(rng, FLOAT_EDGES)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        return [_value(rng, items, text, root) for _ in range(int(rng.random() * 4))]
    if kind == "object":
        required = schema.get("required", ())
        return {k: _value(rng, v, text, root) for k, v in schema.get("properties", {}).items()
                if k in required or rng.random() < 0.5}
    return None  # "null"


def _reasoning(rng: random.Random, mode: bool | str, text: TextFn) -> str | None:
    if mode is True or (mode == "any" and rng.random() < 0.5):
        return text(rng)
    return None


_JSON = json.JSONEncoder(ensure_ascii=False)  # json.dumps(..., ensure_ascii=False) builds one per call


def _result(rng: random.Random, args: Mapping[str, Any], text: TextFn) -> str:
    """A tool result: half JSON (an object, sometimes echoing the arguments, or an array), some empty, else text."""
    u = rng.random()
    if u < 0.15:
        return _JSON.encode({"ok": True, "input": args})
    if u < 0.4:
        return _JSON.encode({"ok": rng.random() < 0.9, "result": _short(rng, text)})
    if u < 0.5:
        return _JSON.encode([_short(rng, text) if rng.random() < 0.5 else {"id": int(rng.random() * 100)}
                             for _ in range(int(rng.random() * 4))])
    if u < 0.53:
        return ""
    return text(rng)


def _turn(rng: random.Random, o: Options, tools: Sequence[Tool], text: TextFn) -> Turn:
    user = text(rng)
    rounds = []
    if tools:
        u = rng.random()
        for _ in range(0 if u < 0.5 else 1 if u < 0.8 else 2 if u < 0.93 else MAX_ROUNDS):
            n = 1 if not o.parallel_calls or rng.random() < 0.6 else rng.randint(2, MAX_PARALLEL_CALLS)
            calls = []
            for _ in range(n):
                tool = tools[int(rng.random() * len(tools))]
                calls.append((tool.name, _value(rng, tool.parameters, text, tool.parameters)))
            content = None if rng.random() < 0.6 else text(rng)
            reasoning = _reasoning(rng, o.reasoning, text)
            rounds.append(Round(content, reasoning, calls, [_result(rng, a, text) for _, a in calls]))
    return Turn(user, rounds, text(rng), _reasoning(rng, o.reasoning, text))


def _conversation(rng: random.Random, o: Options, text: TextFn, pool: Sequence[Tool] | None) -> Conversation:
    mode = ("absent", "empty", "text")[int(rng.random() * 3)] if o.system == "any" else o.system
    system = None if mode == "absent" else "" if mode == "empty" else (text(rng) or "You are a helpful assistant.")
    tools = _tools(rng, text, pool) if o.tools is True or (o.tools == "any" and rng.random() < 0.5) else []
    callable_tools = tools if o.calls_allowed else []
    n_turns = o.min_turns + int(rng.random() * (o.max_turns - o.min_turns + 1))
    turns = [_turn(rng, o, callable_tools, text) for _ in range(n_turns)]
    return assemble(system, tools, turns, end_with_assistant=o.end_with_assistant)


def generate(n: int, *, seed: int, min_turns: int = 1, max_turns: int = 4, system: str = "any",
             tools: bool | str = False, reasoning: bool | str = False, roles: Sequence[str] = ROLES,
             parallel_calls: bool = True, end_with_assistant: bool = True, hostile: bool = True,
             texts: TextFn | None = None) -> Iterator[Conversation]:
    """Yield ``n`` valid conversations drawn from ``random.Random(seed)``.

    Options mean what they mean for :func:`harness.strategies.conversations` (and are validated by the
    same code); ``hostile=False`` keeps every message text plain words (tool schemas and arguments keep their
    edge values: unicode names, JSON-looking strings, float/int edges), and ``texts`` (a function of the
    ``random.Random``) replaces the text source. About a third of texts are hostile; conversations
    average roughly 7 messages and 550 tokens with ``tools="any"``. Nothing shrinks: use the seed and
    the position in the sequence to reproduce one.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise _bad("n", n, "must be an int >= 0")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise _bad("seed", seed, "must be an int")
    if not isinstance(hostile, bool):
        raise _bad("hostile", hostile, "must be True or False")
    if texts is not None and not callable(texts):
        raise _bad("texts", texts, "must be None or a function of a Random")
    o = validate_options(min_turns=min_turns, max_turns=max_turns, system=system, tools=tools, reasoning=reasoning,
                         roles=roles, parallel_calls=parallel_calls, end_with_assistant=end_with_assistant)
    pool = None if texts is not None or o.tools is False else _tool_pool(hostile)
    return _generate(n, random.Random(seed), o, texts or _text_fn(hostile), pool)


def _generate(n: int, rng: random.Random, o: Options, text: TextFn, pool: Sequence[Tool] | None,
              ) -> Iterator[Conversation]:
    for _ in range(n):
        yield _conversation(rng, o, text, pool)
