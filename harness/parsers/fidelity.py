"""Upstream parser test cases as data, run through the harness's wrappers, with agreement counted.

A case (``fixtures/parsers/*_upstream.json``) is one non-streaming upstream test: ``text`` fed to ``parser`` with
the zoo tokenizer ``model`` (instead of the hub one upstream downloads) and ``expect``: exactly what the upstream
test asserts and nothing more. Rule: a case agrees when every upstream assertion holds for the wrapper's
output; ``check_case`` returns the assertions that fail (empty: agreement).
Tool expectations: ``tools_called``, ``count``, ``count_min``, ``content``, ``raises`` (a message fragment), and
per call ``name``, ``arguments_text`` (exact string), ``arguments_text_in``, ``arguments`` (decoded, exact),
``arguments_subset``, ``arguments_keys``, ``arguments_contains`` (substrings of the string), ``argument_types``.
Reasoning expectations: ``reasoning``, ``content``.
A tool case without ``tools`` is run offering a schema-less tool per expected call name (or one tool ``f``):
the server runs the tool parser only for a request with tools, upstream calls it bare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.errors import InputError
from harness.parsers.base import ParsedOutput

_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "null": type(None), "list": list, "dict": dict}


@dataclass(frozen=True)
class UpstreamCase:
    """One upstream test assertion set (see the module docstring)."""

    id: str
    kind: str  # "tool" | "reasoning"
    parser: str
    model: str | None
    text: str
    expect: Mapping[str, Any]
    source: str = ""
    tools: tuple[Mapping[str, Any], ...] = ()
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    #: why the engine version the harness runs is known to fail this upstream assertion ("": it must agree)
    divergence: str = ""


def load_cases(path: str | Path) -> list[UpstreamCase]:
    """The cases of one fixture file; InputError naming the file and the bad case."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return [UpstreamCase(id=c["id"], kind=c["kind"], parser=c["parser"], model=c.get("model"), text=c["text"],
                             expect=c["expect"], source=c.get("source", ""), tools=tuple(c.get("tools", ())),
                             chat_template_kwargs=c.get("chat_template_kwargs", {}), note=c.get("note", ""),
                             divergence=c.get("divergence", ""))
                for c in data["cases"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"parser fixture {str(path)!r} is unreadable ({type(e).__name__}: {e}); "
                         "restore it from git") from None


def check_tool_output(expect: Mapping[str, Any], out: ParsedOutput | None, error: Exception | None) -> list[str]:
    """The upstream assertions ``out`` (or the raised ``error``) fails."""
    if "raises" in expect:
        if error is None or expect["raises"] not in str(error):
            return [f"expected an error containing {expect['raises']!r}, got {error or out!r}"]
        return []
    if error is not None:
        return [f"raised {type(error).__name__}: {error}"]
    assert out is not None
    bad: list[str] = []
    calls = out.calls
    if "tools_called" in expect and bool(calls) != expect["tools_called"]:
        bad.append(f"tools_called: expected {expect['tools_called']}, got {bool(calls)}")
    if "count" in expect and len(calls) != expect["count"]:
        bad.append(f"count: expected {expect['count']}, got {len(calls)}")
    if "count_min" in expect and len(calls) < expect["count_min"]:
        bad.append(f"count: expected >= {expect['count_min']}, got {len(calls)}")
    if "content" in expect and out.content != expect["content"]:
        bad.append(f"content: expected {expect['content']!r}, got {out.content!r}")
    for i, want in enumerate(expect.get("calls", ())):
        if i >= len(calls):
            bad.append(f"calls[{i}]: missing")
            continue
        bad += [f"calls[{i}].{m}" for m in _check_call(want, calls[i].name, calls[i].arguments_text)]
    return bad


def _check_call(want: Mapping[str, Any], name: str, text: str) -> list[str]:
    bad: list[str] = []
    try:
        args: Any = json.loads(text)
        decoded = True
    except (TypeError, ValueError):
        args, decoded = None, False
    if "name" in want and name != want["name"]:
        bad.append(f"name: expected {want['name']!r}, got {name!r}")
    if "arguments_text" in want and text != want["arguments_text"]:
        bad.append(f"arguments_text: expected {want['arguments_text']!r}, got {text!r}")
    if "arguments_text_in" in want and text not in want["arguments_text_in"]:
        bad.append(f"arguments_text: expected one of {want['arguments_text_in']!r}, got {text!r}")
    if "arguments" in want and (not decoded or args != want["arguments"]):
        bad.append(f"arguments: expected {want['arguments']!r}, got {text!r}")
    for frag in want.get("arguments_contains", ()):
        if frag not in text:
            bad.append(f"arguments_text: {frag!r} not in {text!r}")
    for key, value in want.get("arguments_subset", {}).items():
        if not isinstance(args, dict) or args.get(key) != value:
            bad.append(f"arguments.{key}: expected {value!r}, got {text!r}")
    for key, tname in want.get("argument_types", {}).items():
        if not isinstance(args, dict) or key not in args or type(args[key]) is not _TYPES[tname]:
            bad.append(f"arguments.{key}: expected a {tname}, got {text!r}")
    for key in want.get("arguments_keys", ()):
        if not isinstance(args, dict) or key not in args:
            bad.append(f"arguments.{key}: missing from {text!r}")
    if want.get("arguments_nonempty") and not args:
        bad.append(f"arguments: expected non-empty, got {text!r}")
    return bad


def check_reasoning_output(expect: Mapping[str, Any], out: tuple[str | None, str | None]) -> list[str]:
    """The upstream assertions the ``(reasoning, content)`` pair fails."""
    bad = []
    for key, got in zip(("reasoning", "content"), out):
        if key in expect and got != expect[key]:
            bad.append(f"{key}: expected {expect[key]!r}, got {got!r}")
    return bad


def check_case(case: UpstreamCase, build: Callable[[UpstreamCase], Any]) -> list[str]:
    """Build the case's parser with ``build`` and return the upstream assertions its output fails."""
    from harness.conversation import Tool

    parser = build(case)
    if case.kind == "reasoning":
        return check_reasoning_output(case.expect, parser.split(case.text))
    tools = [Tool(t["function"]["name"], t["function"].get("description", ""),
                  t["function"].get("parameters", {"type": "object", "properties": {}})) for t in case.tools]
    if not tools:  # upstream calls the parser bare; the server parses only for a request that offers tools
        names = dict.fromkeys(c["name"] for c in case.expect.get("calls", ()) if "name" in c) or {"f": None}
        tools = [Tool(n) for n in names]
    try:
        out, error = parser.parse(case.text, tools), None
    except Exception as e:  # noqa: BLE001 - an upstream test may assert that the parser raises
        out, error = None, e
    return check_tool_output(case.expect, out, error)
