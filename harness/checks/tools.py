"""``tools`` (prompt side): tool definitions and history tool calls reach the model as training showed them.

The rule. Let k be the first answer whose served prompt is not what training put before it (``prompt-prefix``'s
rule on ids) and whose texts differ (with reasoning removed: that is the ``reasoning`` check's). The check fails
iff that divergence is *located in a tool structure*: some element of ``tools`` (a tool, its description, any key
or item of its JSON schema) or of a call in ``messages[:k]`` (a call step, any key or item of its arguments) must
be present for the texts to part where they do (after the same 24 chars of training text: removing an element must
not merely uncover a later divergence). The element is found by delta debugging over the request JSON: every
element is tried for removal, parents before children, and kept only when removing it makes the sides agree
there; the first kept element with no kept element under it (or DeepDiff's path inside it) is reported as a
deepdiff-style path (``tools[1].function.parameters.properties.city.enum``,
``messages[3].tool_calls[0].function.arguments.unit``). Divergences no tool element is needed for (system text,
generation prompt, tokenisation) stay ``prompt-prefix``'s alone: this check adds location, not a second copy.

What each side tells the model about that element is then read back from both renderings: JSON objects found in
the text are compared with ``deepdiff.DeepDiff`` (a dropped ``description``/``enum``/``$defs`` → cause
``tool-definition-changed`` or ``tool-call-changed``, with DeepDiff's paths); objects equal as values but written
differently (key order, spacing, ``ensure_ascii``) → ``tool-json-format``; a side that writes no parseable JSON for
it → ``tools-rendered`` with both texts quoted.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from harness.checks.base import Case, Check, Failure, NotApplicable
from harness.checks.prompt import _first_difference, prompt_holds
from harness.conversation import Conversation, thaw
from harness.checks.toolsread import fmt, prune, tell
from harness.errors import ConversationError, RenderRejected

Path = tuple[Any, ...]

#: schema keywords kept in a class's ``where``; other dict keys (property / argument names) become ``*``
_KEYWORDS = frozenset({"function", "description", "parameters", "properties", "required", "enum", "items", "type",
                       "$defs", "definitions", "$ref", "anyOf", "oneOf", "allOf", "default", "additionalProperties",
                       "tool_calls", "arguments", "format", "minimum", "maximum", "title", "const", "nullable"})
#: chars of training text before the first difference that a reduced variant must still part after
ANCHOR = 24
def general(path: Path) -> str:
    """The class of ``path``: indices as ``[*]``, user-chosen names (properties, ``$defs`` entries, argument
    keys) as ``*``; ``tools[1].function.parameters.properties.city.enum`` →
    ``tools[*].function.parameters.properties.*.enum``."""
    out, data = "", False
    for i, part in enumerate(path):
        if isinstance(part, int):
            out += "[*]"
            continue
        user = data or (i > 0 and path[i - 1] in ("properties", "$defs", "definitions")) or part not in _KEYWORDS
        out += ("." if out else "") + ("*" if user and i > 0 else part)
        data = data or part == "arguments"
    out = re.sub(r"(\.properties\.\*|\.items)+", lambda m: ".properties.*" if "properties" in m.group(0) else ".items",
                 out)
    return re.sub(r"\.arguments[.\[].*$", ".arguments.*", out)


def _elements(value: Any, path: Path) -> Iterator[Path]:
    """Every key and item under ``value`` (pre-order), as paths."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield path + (key,)
            yield from _elements(sub, path + (key,))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield path + (i,)
            yield from _elements(sub, path + (i,))


def elements(request: dict[str, Any], k: int) -> list[Path]:
    """Removable tool elements of a request (dataset form) that answer ``k``'s prompt holds (the tools, calls of
    ``messages[:k]``), parents before children."""
    out: list[Path] = []
    for i, tool in enumerate(request.get("tools") or []):
        out.append(("tools", i))
        fn = tool["function"]
        if fn.get("description"):
            out.append(("tools", i, "function", "description"))
        out.append(("tools", i, "function", "parameters"))
        out.extend(_elements(fn.get("parameters") or {}, ("tools", i, "function", "parameters")))
    for m, msg in enumerate(request["messages"][:k]):
        for j, call in enumerate(msg.get("tool_calls") or []):
            out.append(("messages", m, "tool_calls", j))
            base = ("messages", m, "tool_calls", j, "function", "arguments")
            out.extend(_elements(call["function"]["arguments"], base))
    return out


def _variant(request: dict[str, Any], removed: set[Path], k: int) -> tuple[Conversation | None, int]:
    """The conversation without ``removed`` and where answer ``k`` now is. A removed call takes its tool results
    with it; a turn left with no call and no text goes whole, with the results after it (a call step is removed
    as a step, not turned into an empty answer)."""
    gone = {call.get("id") for m, msg in enumerate(request["messages"])
            for j, call in enumerate(msg.get("tool_calls") or []) if ("messages", m, "tool_calls", j) in removed}
    gone -= {None, ""}
    pruned = prune(request, removed)
    messages = pruned["messages"]
    drop: set[int] = set()
    for i, m in enumerate(messages):
        emptied = request["messages"][i].get("tool_calls") and not m.get("tool_calls") and not m.get("content") \
            and not m.get("reasoning_content")
        if emptied:
            drop.add(i)
            j = i + 1
            while j < len(messages) and messages[j]["role"] == "tool" and (
                    not messages[j].get("tool_call_id") or messages[j].get("tool_call_id") in gone):
                drop.add(j)
                j += 1
        elif m["role"] == "tool" and m.get("tool_call_id") in gone:
            drop.add(i)
    pruned["messages"] = [m for i, m in enumerate(messages) if i not in drop]
    try:
        return Conversation.from_openai(pruned), k - sum(1 for i in drop if i < k)
    except ConversationError:
        return None, k


def remap(path: Path, removed: set[Path], request: dict[str, Any], k: int) -> Path:
    """``path`` (original indices) in the reduced conversation: removed items and dropped results before it
    shift each index down."""
    out: list[Any] = []
    for n, part in enumerate(path):
        if isinstance(part, int):
            shift = sum(1 for j in range(part) if path[:n] + (j,) in removed)
            if n == 1 and path[0] == "messages":
                _, moved = _variant(request, removed, part)
                shift = part - moved
            part -= shift
        out.append(part)
    return tuple(out)


def _diverges(case: Case, variant: tuple[Conversation | None, int], anchor: str) -> bool:
    """Text rule: the served prompt text for answer ``k`` is not a prefix of the training text, and the texts part
    right after ``anchor`` (the training text before the original first difference): the same divergence, not one
    further on that removing an element merely uncovers."""
    conv, k = variant
    if conv is None:
        return False
    try:
        train = case.pair.train.render_text(conv, add_generation_prompt=False)
        prompt = case.pair.deploy.render_text(conv.prefix(k), add_generation_prompt=True)
    except (RenderRejected, ConversationError):
        return False
    if train.startswith(prompt):
        return False
    c = _first_difference(prompt, train)
    return train[max(0, c - len(anchor)):c] == anchor


def localise(case: Case, k: int) -> tuple[list[Path], list[Path], dict[str, Any], set[Path]] | None:
    """Delta debugging: (kept leaf elements and all kept elements in pre-order, the request without reasoning,
    the removed set), or None when the
    rendered texts agree or no tool element is needed for answer ``k``'s prompt to diverge where it does."""
    request = thaw(case.conv.to_openai(form="dataset"))
    for message in request["messages"]:  # reasoning is the reasoning check's: judge tools without it
        message.pop("reasoning_content", None)
    removed: set[Path] = set()
    conv, _ = _variant(request, removed, k)
    if conv is None:
        return None
    try:
        train = case.pair.train.render_text(conv, add_generation_prompt=False)
        prompt = case.pair.deploy.render_text(conv.prefix(k), add_generation_prompt=True)
    except RenderRejected:
        return None
    if train.startswith(prompt):
        return None
    c = _first_difference(prompt, train)
    anchor = train[max(0, c - ANCHOR):c]
    order = elements(request, k)
    for path in order:
        if any(path[:n] in removed for n in range(1, len(path))):
            continue
        if _diverges(case, _variant(request, removed | {path}, k), anchor):
            removed.add(path)
    kept = [p for p in order if not any(p[:n] in removed for n in range(1, len(p) + 1))]
    if not kept:
        return None
    leaves = [p for p in kept if not any(q != p and q[:len(p)] == p for q in kept)]
    return leaves, kept, request, removed


def tools(case: Case) -> Failure | None:
    conv = case.conv
    if not conv.tools and not any(m.tool_calls for m in conv.messages):
        raise NotApplicable("the conversation has no tool definitions or calls")
    train = case.train
    for ans, prompt in case.served_answers():
        k = ans.message
        if prompt_holds(prompt.ids, train.ids, ans) or ans.end <= ans.start:
            continue  # holds, or training renders nothing of the answer (prompt-prefix's history-messages-dropped)
        if prompt.text is None or train.text is None or train.text.startswith(prompt.text):
            return None  # same text, other ids: tokenisation, prompt-prefix's to report
        found = localise(case, k)
        if found is None:
            return None  # the first divergence is not in a tool structure: prompt-prefix's to report
        return _failure(case, k, *found)
    return None


def _failure(case: Case, k: int, leaves: list[Path], kept: list[Path], request: dict[str, Any],
             removed: set[Path]) -> Failure:

    path = leaves[0]
    small, k2 = _variant(request, removed, k)
    assert small is not None
    cause, said, deeper = tell(case, small, k2, path, request, frozenset(removed))
    if deeper is not None and any(deeper[:len(p)] == p for p in kept):  # DeepDiff names the field itself
        path = deeper
    path, leaves = remap(path, removed, request, k), [remap(p, removed, request, k) for p in leaves]
    k = k2
    others = ", ".join(fmt(p) for p in [q for q in leaves if q != path and path[:len(q)] != q][:3])
    needs = f" (the sides differ only while {others} is present too)" if others else ""
    explanation = (f"the served prompt for answer messages[{k}] differs from training at {fmt(path)}{needs}: "
                   f"{said}. The counterexample keeps only the tool elements the divergence needs")
    reduced = case.variant(small)  # the conversation reduced to those elements: its own ids and diff
    where = general(path)
    if cause == "tools-rendered" and len(path) == 4 and path[2] == "tool_calls":
        holder = _holder(reduced, k)  # a call step needed, its JSON written alike: is the result framed otherwise?
        if holder is not None and small.messages[holder].role == "tool":
            path, where = ("messages", holder, "content"), "messages[*](tool result)"
            around = said.split("the text around it is not: ", 1)[-1]
            explanation = (f"the served prompt for answer messages[{k}] differs from training in the framing of the "
                           f"tool result {fmt(path)} (the call before it is written alike): {around}. The "
                           "counterexample keeps only the tool elements the divergence needs")
    ans = reduced.train.answer(k)
    shown = reduced.prompt(k)
    expected = reduced.train.ids[:max(len(shown.ids), ans.start)]
    return Failure("tools", "error", explanation, small, reduced.diff(expected, shown, k), k, cause=cause,
                   where=where, tokens={"path": fmt(path), "paths": [fmt(p) for p in leaves]})


def _holder(case: Case, k: int) -> int | None:
    """The message of ``messages[:k]`` whose training rendering holds the first char where the served prompt for
    answer ``k`` leaves the training text (None: past them, e.g. the generation prompt)."""
    train, prompt = case.train.text or "", case.prompt(k).text or ""
    c = _first_difference(prompt, train)
    for i, end in enumerate(case.bounds(case.pair.train, k)):
        if c < end:
            return i
    return None


CHECKS = (Check("tools", tools, "tool definitions and history calls render alike; the divergence is located as a "
                "path into the request"),)
